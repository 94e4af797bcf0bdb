"""LibreOffice accepts the XML sheetsync writes: it opens an applied workbook, computes the
formulas, shows the values, and keeps our charts, notes and ownership marks through its own save."""

from __future__ import annotations

import csv
import shutil
import subprocess
import time

import numpy as np
import openpyxl
import pytest

from sheetsync.backends.xlsx import XlsxBackend

from xlsx_builders import rich_workbook, small_plan, steps_tab

CSV_ALL_SHEETS = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"


def soffice() -> str:
    """The soffice binary; it may still be being installed when the tests start."""
    deadline = time.monotonic() + 600
    while not (path := shutil.which("soffice")) and time.monotonic() < deadline:
        time.sleep(5)
    assert path, "LibreOffice (soffice) is required: apt-get install libreoffice-calc-nogui"
    return path


def convert(book, target: str, outdir, profile) -> None:
    subprocess.run([soffice(), "--headless", f"-env:UserInstallation=file://{profile}",
                    "--convert-to", target, "--outdir", str(outdir), str(book)],
                   check=True, capture_output=True, timeout=180)


@pytest.fixture
def applied(tmp_path):
    book = tmp_path / "book.xlsx"
    rich_workbook(book)
    XlsxBackend(book).apply(small_plan())
    return book


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_libreoffice_opens_the_workbook_and_shows_our_values(applied, tmp_path):
    convert(applied, CSV_ALL_SHEETS, tmp_path / "csv", tmp_path / "profile")
    steps = read_csv(tmp_path / "csv" / "book-basic steps.csv")
    expected = steps_tab()
    x = np.asarray(expected.tables[0].columns[1].values)
    assert steps[0][:5] == ["step", "x", "loss", "double x", "label"]
    assert [int(r[0]) for r in steps[1:31]] == list(range(1, 31))
    # LibreOffice prints 15 significant digits in CSV, so compare to that precision.
    assert np.allclose([float(r[1]) for r in steps[1:31]], x, rtol=1e-14, atol=0)
    assert np.allclose([float(r[3]) for r in steps[1:31]], 2 * x, rtol=1e-14, atol=0)
    assert steps[16][2] == "" and steps[17][2] == ""  # NaN and inf became blanks
    assert steps[0][6] == "diagnosis" and steps[1][6] == "42.5"
    assert steps[2][6] == "6"  # =SUM(A2:A4), written without a cached value, computed on load
    assert read_csv(tmp_path / "csv" / "book-runs.csv") == [["run 1"]]
    data = read_csv(tmp_path / "csv" / "book-data.csv")
    assert data[0][:3] == ["x", "y", "x*y"] and data[1][:3] == ["1", "3", "3"]


def test_libreoffice_keeps_our_charts_notes_fills_and_marks(applied, tmp_path):
    convert(applied, "xlsx", tmp_path / "saved", tmp_path / "profile")
    saved = tmp_path / "saved" / "book.xlsx"
    wb = openpyxl.load_workbook(saved)
    steps = wb["basic steps"]
    assert len(steps._charts) == 2
    assert steps["B1"].comment is not None and "the input x" in steps["B1"].comment.text
    assert steps["A6"].fill.fgColor.rgb.endswith("FFC7CE")
    # (Frozen panes are not checked here: headless LibreOffice drops every workbook's view
    # settings on save, openpyxl's own included.)
    assert wb["runs"].sheet_state == "hidden"
    owned = {t.title: t.owned for t in XlsxBackend(saved).read([]).tabs}
    assert owned == {"data": False, "experiments": False, "my notes": False, "basic steps": True, "runs": True}
    # ...so a run on the file LibreOffice saved replaces our tabs and still refuses the user's.
    XlsxBackend(saved).apply(small_plan())
    assert openpyxl.load_workbook(saved).sheetnames[-2:] == ["basic steps", "runs"]


def test_openpyxl_loads_the_applied_workbook(applied):
    wb = openpyxl.load_workbook(applied)
    assert wb.sheetnames == ["data", "experiments", "my notes", "basic steps", "runs"]
    assert openpyxl.load_workbook(applied, read_only=True)["basic steps"].max_row == 31
