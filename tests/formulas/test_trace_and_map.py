"""The precedents map and the cell trace, end to end through `sheetsync run` and `sheetsync trace`."""

import json
import subprocess
from pathlib import Path

import openpyxl
import pytest

from sheetsync.cli import main
from sheetsync.demo import write_demo
from sheetsync.trace import parse_cell, trace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """The demo run twice in values mode, and a copy run in formula mode."""
    folder = tmp_path_factory.mktemp("books")
    values, formulas = folder / "values.xlsx", folder / "formulas.xlsx"
    for path, extra in ((values, []), (formulas, ["--formulas"])):
        write_demo(path)
        assert main(["run", str(path), *extra]) == 0
        assert main(["run", str(path), *extra]) == 0  # a second Run: carried values come in
    return values, formulas


def cell_value(wb, address):
    tab, letters, row = parse_cell(address.replace("(carried in) ", ""))
    return wb[tab][f"{letters}{row}"].value


def walk(node):
    yield node
    for child in node.get("children", []):
        yield from walk(child)


@pytest.mark.parametrize("cell", ["basic steps!N40", "momentum steps!M4", "adam steps!O77", "relu steps!K20"])
def test_a_trace_ends_at_inputs_and_shows_the_sheets_values(books, cell):
    values, _ = books
    result = trace(str(values), cell)
    wb = openpyxl.load_workbook(values, data_only=True)
    nodes = list(walk(result["tree"]))
    assert len(nodes) > 3
    for node in nodes:
        if node["kind"] in ("line", "data", "setting"):
            assert cell_value(wb, node["cell"]) == pytest.approx(node["value"], rel=0, abs=0)
        if not node.get("children") and not node.get("seen") and not node.get("truncated"):
            assert node["kind"] in ("data", "setting", "constant", "carried") or node["label"] in ("epoch", "step", "row")
    kinds = {n["kind"] for n in nodes}
    assert "data" in kinds


def test_trace_of_a_formula_mode_sheet_shows_the_formulas_in_the_cells(books):
    _, formulas = books
    result = trace(str(formulas), "adam steps!O40", depth=3)
    wb = openpyxl.load_workbook(formulas)
    lines = [n for n in walk(result["tree"]) if n["kind"] == "line" and n.get("formula")]
    assert len(lines) > 5
    for node in lines:
        tab, letters, row = parse_cell(node["cell"])
        assert wb[tab][f"{letters}{row}"].value == node["formula"]


def test_dependents_walk_the_other_way(books):
    values, _ = books
    result = trace(str(values), "basic steps!F5", dependents=True, depth=1)
    labels = {c["label"] for c in result["tree"]["children"]}
    assert {"pred", "new a"} <= labels


def test_the_map_pattern_is_the_formula_in_the_sheet(books):
    _, formulas = books
    wb = openpyxl.load_workbook(formulas)
    for name in ("basic", "momentum", "adam", "relu"):
        rows = list(wb[f"{name} map"].iter_rows(min_row=4, values_only=True))
        steps = wb[f"{name} steps"]
        header = [c.value for c in steps[3]]
        checked = 0
        for tab, column, cells, a1, *_ in rows:
            if tab != f"{name} steps" or not str(a1).startswith("="):
                continue
            letter = cells.split(":")[0].rstrip("0123456789")
            # find the typical row: the map says which row its patterns come from
            typical = [r for r in range(4, steps.max_row + 1) if steps[f"{letter}{r}"].value == a1]
            assert typical, f"{name} map: {column}'s pattern {a1} is in no cell of its column"
            assert header.index(column) == openpyxl.utils.column_index_from_string(letter) - 1
            checked += 1
        assert checked >= 8


def test_cli_trace_prints_a_tree_and_json(books, capsys):
    values, _ = books
    assert main(["trace", str(values), "basic steps!K10", "--depth", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("'basic steps'!K10 = ") and "└─ " in text
    assert main(["trace", str(values), "basic steps!K10", "--json", "--depth", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["tree"]["label"] == "de/da"
    assert main(["trace", str(values), "basic steps!ZZ9"]) == 1
    assert "outside the steps table" in capsys.readouterr().err


def test_formula_mode_workbook_recalculated_by_libreoffice_equals_values_mode(books):
    values, formulas = books
    tabs = ["basic steps", "momentum steps", "adam steps"]  # graddesc: bit for bit
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(formulas), *tabs],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recalculated = json.loads(proc.stdout)
    wb = openpyxl.load_workbook(values, data_only=True)
    for tab in tabs:
        header = [c.value for c in wb[tab][3]]
        width = header.index("margin")  # the steps table's loop columns; blocks beside it differ by mode
        expected = [list(row[:width]) for row in wb[tab].iter_rows(min_row=4, values_only=True)]
        got = recalculated[tab]["values"][3:]
        compared = 0
        for erow, grow in zip(expected, got):
            for e, g in zip(erow, grow):
                if isinstance(e, float):
                    assert float(g) == e, f"{tab}: {g} != {e}"
                    compared += 1
        assert compared > 1000
