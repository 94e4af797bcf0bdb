"""A corpus of malformed workbooks. Each gives its cell-addressed problems (all of them, in one
pass), exits 2, and leaves every part of the file that held the user's work byte-identical:
the only change is the `runs` tab, the run log that says why nothing else was written."""

import datetime
import json
import shutil
import subprocess

import pytest

from sheetsync import cli
from sheetsync.demo import demo_tabs
from workbooks import parts, rows_of, sheet_names, write_book

# Package parts that adding the runs tab must touch: the workbook's tab list and its indexes.
WORKBOOK_PARTS = {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml",
                  "xl/styles.xml", "docProps/app.xml"}


def set_cell(tab, ref, value):
    def edit(wb):
        wb[tab][ref] = value
    return edit


def drop_tab(tab):
    def edit(wb):
        del wb[tab]
    return edit


def many(*edits):
    def edit(wb):
        for e in edits:
            e(wb)
    return edit


CORPUS = {
    "text in data": (set_cell("data", "B7", "abc"), {"data!B7": "expected a number, found 'abc'"}),
    "decimal comma": (set_cell("data", "A3", "1,5"), {"data!A3": "a number stored as text ('1,5')"}),
    "percent text": (set_cell("data", "A4", "12%"), {"data!A4": "0.12"}),
    "padded number": (set_cell("data", "B5", " 3 "), {"data!B5": "a number stored as text (' 3 ')"}),
    "date": (set_cell("data", "A6", datetime.date(2024, 3, 1)), {"data!A6": "a date"}),
    "error value": (set_cell("data", "B8", "#DIV/0!"), {"data!B8": "#DIV/0!"}),
    "ref error": (set_cell("data", "B9", "#REF!"), {"data!B9": "#REF!"}),
    "n/a": (set_cell("data", "A10", "#N/A"), {"data!A10": "#N/A"}),
    "uncomputed formula": (set_cell("data", "B3", "=A3*2+30"), {"data!B3": "no computed value"}),
    "hole in data": (set_cell("data", "A11", None), {"data!A11": "empty cell"}),
    "missing data tab": (drop_tab("data"), {"data": "missing tab 'data'"}),
    "missing experiments tab": (drop_tab("experiments"), {"experiments": "missing tab 'experiments'"}),
    "duplicate header": (set_cell("data", "B1", "x"), {"data!B1": "duplicate header 'x'"}),
    "unknown header": (set_cell("data", "B1", "target"), {"data!B1": "unexpected header 'target'"}),
    "unknown setting": (set_cell("experiments", "A5", "learning rate"), {"experiments!A5": "unknown setting"}),
    "duplicate setting": (set_cell("experiments", "A6", "LR"), {"experiments!A6": "duplicate setting 'lr'"}),
    "unknown model": (set_cell("experiments", "E2", "two_relux"), {"experiments!E2": "did you mean 'two_relu'"}),
    "unknown optimizer": (set_cell("experiments", "C4", "momentun"), {"experiments!C4": "did you mean 'momentum'"}),
    "optimizer of another flavour": (set_cell("experiments", "B4", "adamw"), {"experiments!B4": "graddesc flavour has no 'adamw'"}),
    "unknown flavour": (set_cell("experiments", "E3", "torch"), {"experiments!E3": "expected one of graddesc"}),
    "negative lr": (set_cell("experiments", "B5", -0.1), {"experiments!B5": "> 0"}),
    "billion epochs": (set_cell("experiments", "D6", 10**9), {"experiments!D6": "1 to 10,000,000"}),
    "bad tab name": (set_cell("experiments", "C1", "mom/entum"), {"experiments!C1": "contains /"}),
    "long tab name": (set_cell("experiments", "B1", "a very long experiment name"), {"experiments!B1": "at most 24"}),
    "init of a missing parameter": (set_cell("experiments", "B9", 3), {"experiments!B9": "no parameter 'c'"}),
    "two problems at once": (many(set_cell("data", "B7", "abc"), set_cell("experiments", "B5", "fast")),
                             {"data!B7": "expected a number", "experiments!B5": "expected a number"}),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_malformed_workbook(case, tmp_path, capsys):
    edit, expected = CORPUS[case]
    book = write_book(tmp_path / "bad.xlsx", edit=edit)
    before = parts(book)
    names_before = sheet_names(book)
    assert cli.main(["run", str(book)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    for cell, words in expected.items():
        assert any(line.startswith(f"error: {cell}: ") and words in line for line in lines), (cell, err)
    assert "Traceback" not in err
    after = parts(book)
    kept = {n: h for n, h in before.items() if n not in WORKBOOK_PARTS}
    assert {n: after.get(n) for n in kept} == kept  # every sheet of the user's, byte for byte
    assert sheet_names(book) == names_before + ["runs"]
    log = rows_of(book, "runs")
    assert log[1][5] == "input errors" and list(expected)[0] in log[1][6]


def test_the_run_log_grows_across_failed_runs_and_nothing_else_appears(tmp_path, capsys):
    book = write_book(tmp_path / "bad.xlsx", edit=set_cell("data", "B7", "abc"))
    cli.main(["run", str(book)])
    cli.main(["run", str(book), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 2 and out["problems"] == [
        {"cell": "data!B7", "message": "expected a number, found 'abc'"}]
    assert sheet_names(book) == ["data", "experiments", "runs"]
    assert len(rows_of(book, "runs")) == 3


def test_formulas_are_read_by_their_computed_values(tmp_path):
    """A workbook saved by a spreadsheet keeps each formula's value: that value is the input."""
    tabs = demo_tabs()
    src = write_book(tmp_path / "formulas.xlsx", tabs,
                     edit=lambda wb: [wb["data"].cell(r, 2, f"=2*A{r}+30") for r in range(2, 31)])
    out = tmp_path / "out"
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "xlsx",
                    "--outdir", str(out), str(src)], check=True, capture_output=True, timeout=180)
    book = out / "formulas.xlsx"
    assert cli.main(["run", str(book), "--experiment", "basic"]) == 0
    plain = write_book(tmp_path / "plain.xlsx")
    assert cli.main(["run", str(plain), "--experiment", "basic"]) == 0
    assert rows_of(book, "basic epochs") == rows_of(plain, "basic epochs")
    assert shutil.which("soffice")


def test_a_read_only_workbook_with_bad_input_still_gets_its_problems(tmp_path, capsys):
    book = write_book(tmp_path / "bad.xlsx", edit=set_cell("data", "B7", "abc"))
    book.chmod(0o444)
    before = book.read_bytes()
    assert cli.main(["run", str(book)]) == 2
    assert "data!B7" in capsys.readouterr().err
    assert book.read_bytes() == before
