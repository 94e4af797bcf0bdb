"""The add-on: its Node tests pass, its manifest asks for the scopes it needs and no more, its
example sheet is the demo workbook, and its sidebar works in headless Chromium with a fake
``google.script.run`` (DOM checked, screenshot checked)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path


from sheetsync.demo import demo_tabs

ADDON = Path(__file__).resolve().parents[2] / "server" / "addon"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=10000"]


def test_node_tests_of_code_gs_pass():
    node = shutil.which("node")
    assert node, "Node 20 is needed for the add-on tests (Debian package nodejs)"
    done = subprocess.run([node, "--test", "tests/"], cwd=ADDON, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
    passed = int(done.stdout.split("# pass ")[1].split()[0])
    assert passed >= 20


def test_manifest_scopes_are_exactly_the_needed_ones():
    manifest = json.loads((ADDON / "appsscript.json").read_text())
    assert set(manifest["oauthScopes"]) == {
        "https://www.googleapis.com/auth/spreadsheets",  # the backend calls the Sheets API with the user's token
        "https://www.googleapis.com/auth/script.external_request",  # UrlFetchApp
        "https://www.googleapis.com/auth/script.container.ui",  # menu and sidebar
        "https://www.googleapis.com/auth/script.scriptapp",  # Schedule…: an hourly trigger
        "openid",  # ScriptApp.getIdentityToken()
        "https://www.googleapis.com/auth/userinfo.email",  # the email claim in that token
    }
    assert manifest["runtimeVersion"] == "V8"
    assert all(p.startswith("https://") and p.endswith("/") for p in manifest["urlFetchWhitelist"])
    readme = (ADDON / "README.md").read_text()
    for scope in manifest["oauthScopes"]:
        assert f"`{scope}`" in readme  # each scope is justified there


def node_value(expression: str):
    script = (f"const {{load}} = require('./tests/fakes'); const {{gs}} = load();"
              f"process.stdout.write(JSON.stringify({expression}));")
    done = subprocess.run(["node", "-e", script], cwd=ADDON, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_example_sheet_is_the_demo_workbook():
    tabs = demo_tabs()
    xs = node_value("gs.EXAMPLE_X")
    assert [[x, 2 * x + 30] for x in xs] == tabs["data"][1:]
    assert node_value("gs.EXAMPLE_EXPERIMENTS") == tabs["experiments"]


# -- the sidebar in Chromium -------------------------------------------------------------------

FAKE_GOOGLE = """
<script>
window.__calls = [];
function __log(name, args) {
  window.__calls.push([name, args]);
  var pre = document.getElementById('fake-calls');
  if (!pre) { pre = document.createElement('pre'); pre.id = 'fake-calls'; pre.style.display = 'none'; document.body.appendChild(pre); }
  pre.textContent = JSON.stringify(window.__calls);
}
var google = {script: {run: (function () {
  var script = __SCRIPT__;
  function runner(success, failure) {
    var r = {
      withSuccessHandler: function (f) { return runner(f, failure); },
      withFailureHandler: function (f) { return runner(success, f); }
    };
    Object.keys(script).forEach(function (name) {
      r[name] = function () {
        var args = Array.prototype.slice.call(arguments);
        __log(name, args);
        var replies = script[name];
        var reply = replies.length > 1 ? replies.shift() : replies[0];
        setTimeout(function () { if (success) success(reply); }, 20);
      };
    });
    return r;
  }
  return runner(null, null);
})()}};
</script>
"""

PROBLEMS = [{"cell": "data!A3", "message": "expected a number, found 'abc'"},
            {"cell": "experiments!B7", "message": "lr: expected a positive number, found 'fast'"}]

RUN_SCRIPT = {
    "takePendingAction": [{"kind": "run", "action": "run", "experiments": None}],
    "startRun": [{"state": "running", "message": "Training… 120 of 580 steps",
                  "run": {"id": "r1", "status": "running", "progress": {"done": 120, "total": 580}}}],
    "getRun": [{"state": "running", "message": "Training… 400 of 580 steps",
                "run": {"id": "r1", "status": "running", "progress": {"done": 400, "total": 580}}},
               {"state": "failed", "message": "2 problem(s) in the sheet's inputs; nothing was written but the run log",
                "run": {"id": "r1", "status": "failed", "progress": {"done": 0, "total": 0}},
                "error": {"code": "input_error", "message": "2 problem(s)", "problems": PROBLEMS}}],
    "selectCell": ["data!A3"],
}

TRACE_SCRIPT = {
    "takePendingAction": [{"kind": "trace", "cell": "basic steps!H5"}],
    "tracePrecedents": [{"ok": True, "cell": "basic steps!H5",
                         "cells": ["basic steps!F5", "basic steps!G5", "data!A2", "experiments!B5"],
                         "nodes": [{"cell": "basic steps!F5", "label": "a", "value": 1.1204},
                                   {"cell": "basic steps!G5", "label": "b", "value": 1.0086},
                                   {"cell": "data!A2", "label": "x (data row 1)", "value": 14},
                                   {"cell": "experiments!B5", "label": "lr", "value": 0.0001}]}],
    "highlightCells": [4],
    "clearHighlight": [4],
}

CLICK_FIRST_LINK = "setTimeout(function () { document.querySelector('a.cell').click(); }, 6000);"
CLICK_CLEAR = "setTimeout(function () { document.getElementById('clear').click(); }, 6000);"


def harness(tmp_path: Path, script: dict, after: str = "") -> Path:
    html = (ADDON / "Sidebar.html").read_text()
    fake = FAKE_GOOGLE.replace("__SCRIPT__", json.dumps(script))
    html = html.replace("<script>", fake + "<script>", 1)
    html = html.replace("</body>", f"<script>{after}</script></body>")
    page = tmp_path / "sidebar.html"
    page.write_text(html)
    return page


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "the Debian package chromium is needed for the sidebar tests"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    done = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dom(tmp_path: Path, page: Path) -> str:
    return chromium(tmp_path, "--dump-dom", page.as_uri()).stdout


def text_of(html: str, element_id: str) -> str:
    import re

    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no element #{element_id}"
    return match.group(1)


def test_sidebar_runs_polls_and_shows_errors_as_cell_links(tmp_path):
    html = dom(tmp_path, harness(tmp_path, RUN_SCRIPT, CLICK_FIRST_LINK))
    calls = json.loads(text_of(html, "fake-calls").replace("&quot;", '"'))
    names = [c[0] for c in calls]
    assert names[:2] == ["takePendingAction", "startRun"]
    assert calls[1][1] == ["run", None]
    assert names.count("getRun") == 2 and calls[names.index("getRun")][1] == ["r1"]  # polled until done
    assert 'class="failed"' in html and "2 problem(s) in the sheet" in text_of(html, "status")
    for p in PROBLEMS:
        assert f'data-cell="{p["cell"]}"' in html
    assert "expected a number, found 'abc'" in html.replace("&#39;", "'")
    assert ["selectCell", ["data!A3"]] in calls  # clicking the link selects the cell
    assert 'id="progress" class="hidden"' in html  # no progress bar once finished


def test_sidebar_traces_highlights_and_clears(tmp_path):
    html = dom(tmp_path, harness(tmp_path, TRACE_SCRIPT, CLICK_CLEAR))
    calls = json.loads(text_of(html, "fake-calls").replace("&quot;", '"'))
    assert ["tracePrecedents", ["basic steps!H5"]] in calls
    assert ["highlightCells", [TRACE_SCRIPT["tracePrecedents"][0]["cells"]]] in calls
    assert [c[0] for c in calls][-1] == "clearHighlight"
    assert "Highlight removed." in text_of(html, "status")
    assert 'id="precedents-section" class="hidden"' in html


def test_sidebar_shows_the_traced_cells_before_clearing(tmp_path):
    html = dom(tmp_path, harness(tmp_path, TRACE_SCRIPT))
    assert "Precedents of basic steps!H5: 4 cells, highlighted." in text_of(html, "status")
    for cell in TRACE_SCRIPT["tracePrecedents"][0]["cells"]:
        assert f'data-cell="{cell}"' in html
    assert "x (data row 1) = 14" in html
    assert '<button id="clear" class="">' in html or '<button id="clear">' in html  # Clear is offered


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of an 8-bit RGB/RGBA PNG (what Chromium writes), unfiltered."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_sidebar_screenshot_shows_the_failed_run(tmp_path):
    page = harness(tmp_path, RUN_SCRIPT)
    shot = tmp_path / "sidebar.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=300,600", page.as_uri())
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (300, 600)  # the Apps Script sidebar is 300 px wide
    assert len(set(pixels)) > 50  # text and colours were drawn, not a blank page
    white = sum(p == b"\xff\xff\xff" for p in pixels)
    assert 0.5 < white / len(pixels) < 0.995
    blue_button = sum(p == b"\x1a\x73\xe8" for p in pixels)  # the primary button (#1a73e8)
    error_box = sum(p == b"\xfc\xe8\xe6" for p in pixels)  # the failed status box (#fce8e6)
    assert blue_button > 200 and error_box > 1000
