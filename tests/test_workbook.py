"""The whole sheet path on real .xlsx files: inputs written with openpyxl, the CLI run, outputs
read back with openpyxl. The graddesc checkpoints hold exactly (float equality) through it."""

import pytest

from sheetsync import cli
from sheetsync.demo import demo_tabs
from workbooks import parts, record, rows_of, write_book


@pytest.fixture
def book(tmp_path):
    return write_book(tmp_path / "book.xlsx")


def test_basic_after_reset_row_4_is_the_workbooks_first_step(book):
    assert cli.main(["reset", str(book), "--experiment", "basic"]) == 0
    row4 = record(book, "basic steps", 3, 4)
    assert (row4["epoch"], row4["step"], row4["row"], row4["x"], row4["y"]) == (1, 1, 1, 14, 58)
    assert (row4["pred"], row4["loss"]) == (15, 1849)
    assert (row4["de/db"], row4["de/da"]) == (-86, -1204)
    assert row4["de/db est"] == -85.9899999999925
    assert row4["de/da est"] == -1202.0400000000109
    assert (row4["new a"], row4["new b"]) == (1.1204, 1.0086)
    epoch1 = record(book, "basic epochs", 2, 3)  # header in row 2 (row 1: diagnosis and charts)
    assert epoch1["b"] == 1.0666479742323505
    assert epoch1["a"] == 2.5741401222765083


def test_momentum_after_reset_carries_the_forum_numbers(book):
    assert cli.main(["reset", str(book), "--experiment", "momentum"]) == 0
    row4 = record(book, "momentum steps", 3, 4)
    # row 4's momentum is beta * carried + (1 - beta) * gradient, as the workbook computes it
    assert row4["m_b"] == -18.33392669020789 * 0.9 + (1 - 0.9) * row4["de/db"]
    assert row4["m_a"] == 98.24583039212854 * 0.9 + (1 - 0.9) * row4["de/da"]


def test_run_twice_equals_one_run_of_twice_the_epochs(tmp_path):
    twice = write_book(tmp_path / "twice.xlsx")
    assert cli.main(["run", str(twice)]) == 0
    assert cli.main(["run", str(twice)]) == 0
    tabs = demo_tabs()
    tabs["experiments"][5] = ["epochs", 10, 10, 10, 10]
    once = write_book(tmp_path / "once.xlsx", tabs)
    assert cli.main(["run", str(once)]) == 0
    for name in ("basic", "momentum", "adam", "relu"):  # the history (row 1 describes the last Run)
        assert rows_of(twice, f"{name} epochs")[1:] == rows_of(once, f"{name} epochs")[1:]
    assert len(rows_of(twice, "runs")) == 3  # header and two runs


def test_reset_starts_over(book):
    cli.main(["run", str(book)])
    first = rows_of(book, "adam epochs")
    cli.main(["run", str(book)])
    assert len([r for r in rows_of(book, "adam epochs")[1:] if r[0] is not None]) == 11  # header + 10
    assert cli.main(["reset", str(book)]) == 0
    assert rows_of(book, "adam epochs") == first


def test_outputs_land_after_the_users_tabs_and_state_is_hidden(book):
    cli.main(["run", str(book)])
    import openpyxl

    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames[:2] == ["data", "experiments"]
    assert set(wb.sheetnames) >= {"basic steps", "relu epochs", "compare", "runs", "sheetsync state"}
    assert wb["sheetsync state"].sheet_state == "hidden"
    assert wb["basic steps"].freeze_panes == "A4"
    # compare: one chart; relu epochs: the loss, the fit and one per parameter (a, b, c, d)
    assert len(wb["compare"]._charts) == 1 and len(wb["relu epochs"]._charts) == 6


def test_a_user_tab_named_like_an_output_is_never_touched(tmp_path):
    tabs = demo_tabs()
    tabs["compare"] = [["my comparison"]]
    book = write_book(tmp_path / "clash.xlsx", tabs)
    before = book.read_bytes()
    assert cli.main(["run", str(book)]) == 3
    assert book.read_bytes() == before


def test_a_full_run_leaves_every_part_of_the_users_tabs_byte_identical(tmp_path):
    from openpyxl.chart import LineChart, Reference
    from openpyxl.comments import Comment
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation

    def decorate(wb):
        data = wb["data"]
        data["D1"] = "my notes"
        data["D1"].comment = Comment("keep me", "learner")
        data["D2"] = "=AVERAGE(B2:B30)"
        rule = DataValidation(type="decimal", operator="greaterThan", formula1="0")
        data.add_data_validation(rule)
        rule.add("A2:A30")
        chart = LineChart()
        chart.add_data(Reference(data, min_col=2, min_row=1, max_row=30), titles_from_data=True)
        data.add_chart(chart, "F2")
        wb.defined_names["xs"] = DefinedName("xs", attr_text="data!$A$2:$A$30")

    book = write_book(tmp_path / "decorated.xlsx", edit=decorate)
    before = parts(book)
    assert cli.main(["run", str(book)]) == 0
    after = parts(book)
    user_parts = [n for n in before if n.startswith(("xl/worksheets/sheet1", "xl/worksheets/sheet2",
                                                    "xl/charts/", "xl/drawings/", "xl/comments"))]
    assert len(user_parts) >= 4
    assert {n: after.get(n) for n in user_parts} == {n: before[n] for n in user_parts}
    import openpyxl

    wb = openpyxl.load_workbook(book)
    assert "xs" in wb.defined_names and wb["data"]["D1"].comment.text == "keep me"


def test_formula_mode_writes_formulas_whose_cached_values_are_the_values(tmp_path):
    import openpyxl

    tabs = demo_tabs()
    tabs["experiments"].append(["mode", "formulas", "values", "formulas", "formulas"])
    book = write_book(tmp_path / "formulas.xlsx", tabs)
    values = write_book(tmp_path / "values.xlsx")
    assert cli.main(["run", str(book)]) == 0
    assert cli.main(["run", str(values)]) == 0
    ws = openpyxl.load_workbook(book)["basic steps"]
    header = [c.value for c in ws[3]]
    pred = ws.cell(4, header.index("pred") + 1).value
    assert isinstance(pred, str) and pred.startswith("=")
    assert str(ws.cell(5, header.index("a") + 1).value).startswith("=")  # a comes from the row above
    assert "Formula mode" in ws["A1"].value
    for name in ("basic", "adam", "relu"):  # the steps table (formula mode adds a settings block beside it)
        mine, theirs = rows_of(book, f"{name} steps")[2:], rows_of(values, f"{name} steps")[2:]
        width = mine[0].index("margin") + 1
        assert [r[:width] for r in mine] == [r[:width] for r in theirs]
