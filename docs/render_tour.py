"""Render the README's pictures from the demo's real output, with LibreOffice headless.

    python docs/render_tour.py        # writes docs/tour-*.png

Runs `sheetsync demo` into a temporary folder, sets the pictured tabs to print landscape, one
page wide, converts the workbook to PDF with `soffice --headless`, finds each tab's first page
by its text (`pdftotext`) and renders it to PNG with `pdftoppm` (poppler-utils).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# tab -> (picture name, text on its first page, text on a page before it, crop (w, h) in px)
TABS = {"basic steps": ("tour-basic-steps", "basic: linear model", None, (1240, 330)),
        "relu epochs": ("tour-relu-epochs", "Diagnostics", "relu: two_relu model", (1240, 520)),
        "compare": ("tour-compare", "Loss per epoch, every", None, (1240, 340))}
PAGE = ('<pageMargins left="0.3" right="0.3" top="0.3" bottom="0.3" header="0" footer="0"/>'
        '<pageSetup orientation="landscape" fitToWidth="1" fitToHeight="0"/>')


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


def printable(src: Path, dst: Path, tabs) -> None:
    """A copy whose pictured tabs print landscape, one page wide."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        parts = {sheet_parts(zin)[tab] for tab in tabs}
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename in parts:
                text = data.decode()
                text = re.sub(r"<dimension", '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr><dimension', text, 1)
                anchor = re.search(r"<drawing|<legacyDrawing|</worksheet>", text).start()
                data = (text[:anchor] + PAGE + text[anchor:]).encode()
            zout.writestr(item, data)


def page_with(pdf: Path, text: str, after: str | None) -> int:
    """The first page holding `text` (after the first page holding `after`, if given)."""
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                             text=True).stdout).group(1))
    seen_after = after is None
    for page in range(1, pages + 1):
        content = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"],
                                 capture_output=True, text=True).stdout
        seen_after = seen_after or after in content
        if seen_after and text in content:
            return page
    raise SystemExit(f"no page of {pdf} shows {text!r}")


def main() -> None:
    for tool in ("soffice", "pdftoppm"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install libreoffice-calc-nogui poppler-utils)")
    work = Path(tempfile.mkdtemp(prefix="sheetsync-tour-"))
    book = work / "demo.xlsx"
    subprocess.run([sys.executable, "-m", "sheetsync", "demo", str(book)], check=True, capture_output=True)
    profile = (work / "profile").as_uri()
    printed = work / "printed.xlsx"
    printable(book, printed, TABS)
    subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(work), str(printed)], check=True, capture_output=True, timeout=180)
    pdf = work / "printed.pdf"
    for tab, (name, text, after, (width, height)) in TABS.items():
        page = page_with(pdf, text, after)
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", str(page), "-l", str(page), "-singlefile",
                        "-x", "0", "-y", "0", "-W", str(width), "-H", str(height), str(pdf), str(DOCS / name)],
                       check=True)
        print(DOCS / f"{name}.png")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
