"""sheetsync.a1, the ground floor for tab names and A1 geometry: each function at its edges."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sheetsync import a1
from sheetsync.a1 import (A1Error, CellRef, col_letter, column_index, epochs_tab_name, experiment_tabs,
                          forbidden_in_tab_name, landscape_tab_name, map_tab_name, parse_cell, parse_range,
                          quote_tab, range_ref, steps_tab_name, tab_name_problem, unquote_tab)


def test_it_imports_nothing_from_the_rest_of_sheetsync():
    tree = ast.parse(Path(a1.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith(("sheetsync", "."))] and \
        not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]


@pytest.mark.parametrize("col, letters", [(0, "A"), (25, "Z"), (26, "AA"), (51, "AZ"), (52, "BA"),
                                          (701, "ZZ"), (702, "AAA"), (16383, "XFD")])
def test_column_letters_both_ways(col, letters):
    assert col_letter(col) == letters
    assert column_index(letters) == col
    assert column_index(letters.lower()) == col and column_index("$" + letters) == col


def test_the_tab_names_of_an_experiment():
    assert (steps_tab_name("basic"), epochs_tab_name("basic"), map_tab_name("basic")) == \
        ("basic steps", "basic epochs", "basic map")
    assert landscape_tab_name("basic") == "basic landscape"
    assert experiment_tabs("b") == ("b steps", "b epochs", "b map", "b landscape", "b boundary", "b factors",
                                    "b similar")
    assert a1.boundary_tab_name("x" * 30) == "x" * 21 + "~ boundary"  # shortened as the landscape's


def test_the_longest_experiment_name_fits_every_tab_it_makes():
    name = "n" * a1.MAX_EXPERIMENT_NAME
    assert all(len(t) <= a1.MAX_TAB_NAME for t in experiment_tabs(name))
    assert max(len(t) for t in experiment_tabs(name)[:3]) == a1.MAX_TAB_NAME  # no room to spare
    assert landscape_tab_name(name) == "n" * 20 + "~ landscape" and len(landscape_tab_name(name)) == 31
    assert landscape_tab_name("n" * 21) == "n" * 21 + " landscape"  # 31 exactly: kept whole


@pytest.mark.parametrize("name, bad", [
    ("a[b]", ["[", "]"]), ("x:y*z?", ["*", ":", "?"]), ("a/b\\c", ["/", "\\"]),
    ("tab\x01", ["control characters"]), ("two\nlines", ["control characters"]),
    ("a\tb", ["control characters"]), ("a\ufffeb", ["control characters"]), ("Bob's data", []),
])
def test_forbidden_characters(name, bad):
    assert forbidden_in_tab_name(name) == bad


@pytest.mark.parametrize("name, problem", [
    ("", "must be 1-31 characters"), ("x" * 32, "must be 1-31 characters"), ("x" * 31, None),
    ("'quoted", "not start or end with '"), ("quoted'", "not start or end with '"),
    ("history", "not be History"), ("HISTORY", "not be History"), ("History 2", None),
    ("what?", "contains ?"), ("Bob's data", None),
])
def test_tab_name_problems(name, problem):
    found = tab_name_problem(name)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize("name, quoted", [
    ("data", "data"), ("my_data", "my_data"), ("basic steps", "'basic steps'"), ("Bob's", "'Bob''s'"),
    ("''", "''''''"), ("2024", "'2024'"), ("1st", "'1st'"), ("a-b", "'a-b'"),
    ("A1", "'A1'"), ("xfd3", "'xfd3'"), ("R1C1", "'R1C1'"), ("rc", "'rc'"), ("data1", "data1"),
])
def test_quoting_a_tab_name_where_a_reference_needs_it(name, quoted):
    assert quote_tab(name) == quoted
    assert unquote_tab(quoted) == name


def test_quoting_always():
    assert quote_tab("data", always=True) == "'data'"
    assert quote_tab("it's", always=True) == "'it''s'"


def test_absolute_ranges():
    assert range_ref("basic steps", 1, 0, 30, 1) == "'basic steps'!$A$2:$A$30"
    assert range_ref("Bob's", 0, 0, 1, 1) == "'Bob''s'!$A$1"
    assert range_ref("t", 0, 0, 1, 1, collapse=False) == "'t'!$A$1:$A$1"
    assert range_ref("t", 3, 26, 148, 28) == "'t'!$AA$4:$AB$148"


@pytest.mark.parametrize("text, ref", [
    ("basic steps!H17", CellRef("basic steps", "H", 17)),
    ("'basic steps'!H17", CellRef("basic steps", "H", 17)),
    ("'Bob''s tab'!$b$2", CellRef("Bob's tab", "B", 2)),
    ("  data!XFD1048576 ", CellRef("data", "XFD", 1_048_576)),
    ("h17", CellRef(None, "H", 17)),
    ("'it!s'!A1", CellRef("it!s", "A", 1)),
])
def test_parsing_cells(text, ref):
    assert parse_cell(text) == ref


def test_a_cell_ref_knows_its_column_and_how_it_is_written():
    ref = parse_cell("'basic steps'!AB3")
    assert ref.col == 27 and str(ref) == "'basic steps'!AB3"
    assert str(parse_cell("data!B7")) == "data!B7"


@pytest.mark.parametrize("text, words", [
    ("basic steps", "expected a cell like"),
    ("data!17", "expected a cell like"),
    ("data!B", "expected a cell like"),
    ("data!B2:C3", "expected a cell like"),
    ("data!XFE1", "column XFE is beyond XFD"),
    ("data!AAAA1", "column AAAA is beyond XFD"),
    ("data!A0", "row 0 is outside"),
    ("data!A1048577", "row 1,048,577 is outside"),
])
def test_bad_cells_are_named_in_the_error(text, words):
    with pytest.raises(A1Error) as e:
        parse_cell(text)
    assert words in str(e.value) and repr(text.strip()) in str(e.value)


def test_a_cell_without_its_tab_when_one_is_needed():
    with pytest.raises(A1Error, match=r"'H17': expected a cell like \"basic steps!H17\""):
        parse_cell("H17", need_tab=True)


def test_parsing_ranges():
    assert parse_range("data!A2:B30") == (CellRef("data", "A", 2), CellRef("data", "B", 30))
    assert parse_range("'x y'!$C$4") == (CellRef("x y", "C", 4), CellRef("x y", "C", 4))
    for text, words in [("data!B30:A2", "runs backwards"), ("data!A2:", "expected a range"),
                        ("data!A2:ZZZZ3", "beyond XFD")]:
        with pytest.raises(A1Error, match=words) as e:
            parse_range(text)
        assert repr(text) in str(e.value)


def test_references_inside_formulas():
    formula = "='basic steps'!$K$4*experiments!B5+LOG10(C3)-'Bob''s'!A1:B2"
    found = [m.group(0) for m in a1.FORMULA_REF.finditer(formula)]
    assert found == ["'basic steps'!$K$4", "experiments!B5", "C3", "'Bob''s'!A1", "B2"]
    ranges = [(unquote_tab(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5))
              for m in a1.FORMULA_RANGE.finditer(formula)]
    assert ranges == [("basic steps", "K", "4", None, None), ("experiments", "B", "5", None, None),
                      ("Bob's", "A", "1", "B", "2")]


def test_a_cell_named_for_a_message():
    assert a1.a1(0, 1, "data") == "data!B1"
    assert a1.a1(6, 27) == "AB7"
    assert a1.a1(0, 0, "basic steps") == "basic steps!A1"  # messages do not quote
