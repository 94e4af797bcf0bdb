"""Render the README's pictures from real output: each tab's first screen, and the sidebar.

    python docs/render_tour.py            # writes docs/tour-*.png
    python docs/render_tour.py classify   # writes docs/tour-classify-*.png (the outputs lab)
    python docs/render_tour.py embeddings # writes docs/tour-embeddings-*.png (the embeddings lab)

Builds the demo workbook plus the thread's experiment (`two_linear`, lr 0.0001, every init 1,
numeric gradients, one epoch: the one whose error explodes), runs it with sheetsync, and has
LibreOffice headless print the first screen of each pictured tab (the range A1:T32, one page,
landscape) to PDF; pdftoppm renders each page to PNG (poppler-utils). The sidebar is the add-on's
own Sidebar.html in headless Chromium, fed the run summary of that workbook by a stand-in for
`google.script.run`. The classification pictures are the outputs lab's tabs (`sheetsync demo --lab
outputs`), each printed over its own range; the embeddings pictures the embeddings lab's
(`sheetsync demo --lab embeddings`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

FIRST_SCREEN = ("$A$1:$T$32", "$A$1:$X$24")  # about 1,300 x 700 px of cells; the landscape's narrow columns
# tab -> picture name (each rendered from its own first screen)
TABS = {"thread steps": "tour-thread-steps", "thread epochs": "tour-thread-epochs",
        "thread landscape": "tour-thread-landscape", "relu epochs": "tour-relu-epochs",
        "compare": "tour-compare"}
THREAD = [["thread"], ["two_linear"], ["graddesc"], ["sgd"], [0.0001], [1], [1], [1], [None], [None]]
PAGE = ('<pageMargins left="0.2" right="0.2" top="0.2" bottom="0.2" header="0" footer="0"/>'
        '<pageSetup orientation="landscape" fitToWidth="1" fitToHeight="1"/>')


def sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Tab name -> its worksheet part."""
    workbook = z.read("xl/workbook.xml").decode()
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    targets = dict(re.findall(r'Id="([^"]+)"[^>]*Target="([^"]+)"', rels))
    targets.update({k: v for v, k in re.findall(r'Target="([^"]+)"[^>]*Id="([^"]+)"', rels)})
    parts = {}
    for tag in re.findall(r"<sheet [^>]*>", workbook):
        name = re.search(r'name="([^"]*)"', tag).group(1)
        rid = re.search(r'r:id="([^"]*)"', tag).group(1)
        parts[name] = "xl/" + targets[rid].lstrip("/").removeprefix("xl/")
    return parts


def printable(src: Path, dst: Path, tabs, areas: dict[str, str] | None = None) -> list[str]:
    """A copy that prints only the first screen of each pictured tab (the others are hidden, which
    LibreOffice does not print); returns the pictured tabs in print order."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        parts = sheet_parts(zin)
        order = list(parts)
        wanted = {parts[t]: t for t in tabs}
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/workbook.xml":
                text = data.decode()
                def hide(tag: re.Match) -> str:  # only the pictured tabs print
                    name = re.search(r'name="([^"]*)"', tag.group()).group(1)
                    plain = re.sub(r'\s+state="[^"]*"', "", tag.group())
                    return plain if name in tabs else plain.replace("<sheet ", '<sheet state="hidden" ', 1)

                text = re.sub(r"<sheet [^>]*>", hide, text)
                first = min(order.index(t) for t in tabs)
                text = re.sub(r'activeTab="\d+"', f'activeTab="{first}"', text)
                names = "".join(f'<definedName name="_xlnm.Print_Area" localSheetId="{order.index(t)}">'
                                f"'{t}'!{(areas or {}).get(t) or FIRST_SCREEN[t.endswith('landscape')]}</definedName>"
                                for t in tabs)
                if "<definedNames>" in text:
                    text = text.replace("<definedNames>", "<definedNames>" + names, 1)
                else:
                    text = text.replace("</sheets>", "</sheets><definedNames>" + names + "</definedNames>", 1)
                data = text.encode()
            elif item.filename in wanted:
                text = data.decode()
                text = re.sub(r"<dimension", '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr><dimension', text, 1)
                anchor = re.search(r"<drawing|<legacyDrawing|</worksheet>", text).start()
                data = (text[:anchor] + PAGE + text[anchor:]).encode()
            zout.writestr(item, data)
    return [t for t in order if t in tabs]


def sidebar(report: dict, out: Path, work: Path) -> None:
    """The add-on's sidebar showing `report` as a finished run, screenshotted by Chromium."""
    addon = DOCS.parent / "server" / "addon"
    html = (addon / "Sidebar.html").read_text()
    node = shutil.which("node")
    answer = subprocess.run([node, "-e", f"""
        const {{load}} = require('./tests/fakes'); const {{gs}} = load();
        process.stdout.write(JSON.stringify(gs.describe({{ok: true, body: {json.dumps(
            {"id": "r1", "status": "succeeded", "summary": report})}}})));"""],
        cwd=addon, capture_output=True, text=True, check=True).stdout
    fake = ("<script>var google = {script: {run: (function () { function r(ok) { var o = {"
            "withSuccessHandler: function (f) { return r(f); }, withFailureHandler: function () { return r(ok); }};"
            "['takePendingAction','startRun','getRun','selectCell','sidebarState'].forEach(function (n) {"
            "o[n] = function () { var reply = n === 'takePendingAction' ? null : " + answer + ";"
            "setTimeout(function () { if (ok) ok(reply); }, 10); }; }); return o; } return r(null); })()}};"
            "</script>")
    page = work / "sidebar.html"
    page.write_text(html.replace("<script>", fake + "<script>", 1).replace(
        "</body>", "<script>renderRun(" + answer + ");</script></body>"))
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={work / 'chromium'}", f"--screenshot={out}",
                    "--window-size=300,760", page.as_uri()], check=True, capture_output=True, timeout=120)


# the outputs lab: tab -> (picture name, print range); the boundary grids and their chart are wide
CLASSIFY = {"softmax": ("tour-classify-softmax", "$A$1:$H$12"),
            "softmax shift": ("tour-classify-shift", "$A$1:$K$12"),
            "binary cross-entropy": ("tour-classify-binary", "$A$1:$J$12"),
            "cross-entropy": ("tour-classify-cross-entropy", "$A$1:$F$12"),
            "focal loss": ("tour-classify-focal", "$A$1:$Q$32"),
            "toy steps": ("tour-classify-toy-steps", "$A$1:$T$32"),
            "toy epochs": ("tour-classify-toy-epochs", "$A$1:$T$32"),
            "toy boundary": ("tour-classify-toy-boundary", "$A$1:$AG$32"),
            "penguins steps": ("tour-classify-penguins-steps", "$A$1:$T$32"),
            "penguins epochs": ("tour-classify-penguins-epochs", "$A$1:$T$32"),
            "penguins boundary": ("tour-classify-penguins-boundary", "$A$1:$AG$32")}


def render(book: Path, work: Path, pictures: dict[str, tuple]) -> None:
    """Each tab of `pictures` (tab -> (picture name, print range or None[, height in pixels]))
    as docs/NAME.png."""
    printed = work / "printed.xlsx"
    order = printable(book, printed, pictures, {t: p[1] for t, p in pictures.items()})
    subprocess.run(["soffice", f"-env:UserInstallation={(work / 'profile').as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(work), str(printed)],
                   check=True, capture_output=True, timeout=300)
    for page, tab in enumerate(order, start=1):
        crop = ["-x", "0", "-y", "0", "-W", "1100", "-H", str(pictures[tab][2])] if len(pictures[tab]) > 2 else []
        subprocess.run(["pdftoppm", "-png", "-r", "100", "-f", str(page), "-l", str(page), "-singlefile", *crop,
                        str(work / "printed.pdf"), str(DOCS / pictures[tab][0])], check=True)
        print(DOCS / f"{pictures[tab][0]}.png")


# the embeddings lab: tab -> (picture name, print range)
# (a third number: the picture's height in pixels, the blank page below cut off)
EMBEDDINGS = {"sgd factors": ("tour-embeddings-factors", "$A$1:$W$27", 390),
              "sgd epochs": ("tour-embeddings-epochs", "$A$1:$P$24", 460)}


def lab(name: str, pictures: dict[str, tuple[str, str | None]]) -> None:
    """A lab, written and trained as `sheetsync demo --lab NAME` does, pictured."""
    import sheetsync
    from sheetsync.demo import demo_runs, write_demo

    work = Path(tempfile.mkdtemp(prefix="sheetsync-tour-"))
    book = write_demo(work / f"{name}.xlsx", name)
    for data_tab, experiments_tab in demo_runs(name):
        sheetsync.run(str(book), data_tab=data_tab, experiments_tab=experiments_tab)
    render(book, work, pictures)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if sys.argv[1:] == ["classify"]:
        return lab("outputs", CLASSIFY)
    if sys.argv[1:] == ["embeddings"]:
        return lab("embeddings", EMBEDDINGS)
    for tool in ("soffice", "pdftoppm", "chromium", "node"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install libreoffice-calc-nogui poppler-utils chromium nodejs)")
    import sheetsync
    from sheetsync.backends.xlsx import XlsxBackend
    from sheetsync.demo import demo_tabs

    work = Path(tempfile.mkdtemp(prefix="sheetsync-tour-"))
    tabs = demo_tabs()
    settings = ["setting", "model", "flavour", "optimizer", "lr", "epochs", "init a", "init b", "init c", "init d"]
    tabs["experiments"] = [row + THREAD[i] if i < len(THREAD) else row for i, row in enumerate(tabs["experiments"])]
    assert [r[0] for r in tabs["experiments"]] == settings
    tabs["experiments"].append(["gradient"] + [None] * 4 + ["numeric"])
    book = work / "tour.xlsx"
    XlsxBackend.create(str(book), tabs)
    report = sheetsync.run(str(book))
    printed = work / "printed.xlsx"
    order = printable(book, printed, TABS)
    subprocess.run(["soffice", f"-env:UserInstallation={(work / 'profile').as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(work), str(printed)],
                   check=True, capture_output=True, timeout=300)
    for page, tab in enumerate(order, start=1):
        subprocess.run(["pdftoppm", "-png", "-r", "100", "-f", str(page), "-l", str(page), "-singlefile",
                        str(work / "printed.pdf"), str(DOCS / TABS[tab])], check=True)
        print(DOCS / f"{TABS[tab]}.png")
    summary = {"spreadsheet": "tour.xlsx", "action": "run", "tabs_written": report.tabs_written,
               "experiments": [e for e in report.to_dict()["experiments"] if e["name"] in ("thread", "adam")]}
    sidebar(json.loads(json.dumps(summary, default=str).replace("NaN", "null")), DOCS / "tour-sidebar.png", work)
    print(DOCS / "tour-sidebar.png")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
