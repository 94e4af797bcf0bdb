"""The sidebar after a run whose experiment diverged: a warning (not a green "Done") with the
story's sentences and links that select the highlighted rows, in headless Chromium."""

from __future__ import annotations

import json

from test_addon import dom, harness, text_of

from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.demo import demo_tabs
from sheetsync.runner import run


def diverged_summary(tmp_path) -> dict:
    tabs = demo_tabs()
    tabs["experiments"] = [["setting", "thread"], ["model", "two_linear"], ["lr", 0.0001], ["epochs", 1]]
    book = tmp_path / "thread.xlsx"
    XlsxBackend.create(str(book), tabs)
    report = run(str(book))
    return json.loads(json.dumps({"experiments": report.to_dict()["experiments"]}, default=str))


def test_the_sidebar_warns_with_the_story_and_links_to_the_rows(tmp_path):
    summary = diverged_summary(tmp_path)
    rows = summary["experiments"][0]["diagnostics"]["rows"]
    assert set(rows) == {"started", "diverged"}
    finished = {"state": "warning", "message": "Written, but thread diverged: see why below.",
                "run": {"id": "r1", "status": "succeeded", "summary": summary}}
    script = {"takePendingAction": [{"kind": "run", "action": "run", "experiments": None}],
              "startRun": [finished], "selectCell": [rows["started"]]}
    click = "setTimeout(function () { document.querySelector('li.warning a.cell').click(); }, 6000);"
    html = dom(tmp_path, harness(tmp_path, script, click))
    assert 'class="warning"' in html and "thread diverged: see why below" in text_of(html, "status")
    assert "It started at epoch 1, step" in html and "lr 3e-05 trains" in html
    for cell in rows.values():
        assert f'data-cell="{cell}"' in html
    calls = json.loads(text_of(html, "fake-calls").replace("&quot;", '"'))
    assert ["selectCell", [rows["started"]]] in calls  # the link selects the orange row
