"""The C row scanner (`backends.xlsx.rowscan`) reads number rows exactly as the reference
reading (ElementTree, `_number`) does, and leaves whatever it cannot vouch for to the scan:
the same values, types and errors. Every chunk goes through it here (`MIN_BYTES` = 0)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sheetsync.backends.xlsx import rowscan, scan
from sheetsync.engine.loop import cc

from test_xlsx_fast_paths import base_workbook, read_both_ways
from xlsx_builders import with_sheet_data

HARD = ["5e-324", "4.9e-324", "2.2250738585072014e-308", "2.225073858507201e-308", "0.30000000000000004",
        "1.7976931348623157e308", "1e308", "1e309", "1e400", "-1e400", "-0", "-0.0", "0", "0.0", "00012",
        "-00012", "123456789012345678", "-999999999999999999", "9007199254740993",
        "1E5", "2.5e+3", "2.5E-3", "+1", ".5", "5.", "-.5", "1e-400", "-1e-400", "1e22", "1e23",
        "8.98846567431158e307", "0.1", "100", "-7", "3.141592653589793", "1.0000000000000002",
        "4.940656458412465441765687928682213723651e-324", "0.000001", "1e-7"]


@pytest.fixture
def scanner_everywhere(monkeypatch):
    """Every chunk through the C scanner; the rows it read are counted."""
    assert cc.compiler() is None or rowscan._load() is not None  # a machine with cc builds it
    monkeypatch.setattr(rowscan, "MIN_BYTES", 0)
    read = []
    plain = rowscan.number_rows

    def counted(*args):
        out = plain(*args)
        read.append(0 if out is None else len(out[0]))
        return out

    monkeypatch.setattr(rowscan, "number_rows", counted)
    return read


def number_rows(texts: list[list[str]], first: int = 1, attrs: str = "", gap: str = "") -> str:
    return gap.join(f'<row r="{i}"{attrs}>' + "".join(f'<c r="{"ABCD"[j]}{i}"><v>{t}</v></c>' for j, t in enumerate(row))
                    + "</row>" for i, row in enumerate(texts, first))


def test_hard_numbers_read_exactly(tmp_path, scanner_everywhere):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    rng = np.random.default_rng(7)
    scales = 10.0 ** rng.integers(-300, 300, 3 * len(HARD))
    texts = [[h, repr(float(x))] for h, x in zip(HARD * 3, rng.normal(size=3 * len(HARD)) * scales)]
    texts.append(["1234567890123456789", "-12345678901234567890123"])  # beyond int64: the scan reads them
    with_sheet_data(path, number_rows(texts))
    assert read_both_ways(path) == [True]
    assert scanner_everywhere == [len(texts) - 1] * 2  # (read twice: the scan, then `cells`)


@pytest.mark.parametrize("odd", ["1e", "--1", "1,5", "1 ", " 1", "x", "1e5e5", "", "1.2.3", "-", "."])
def test_a_bad_number_among_scanned_rows_is_named_as_before(tmp_path, scanner_everywhere, odd):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    texts = [[str(i), repr(i / 7)] for i in range(300)]
    texts[211][1] = odd
    with_sheet_data(path, number_rows(texts))
    read_both_ways(path)  # the same rows or the same error (the cell named) as ElementTree
    assert scanner_everywhere[0] == 211  # read up to the odd cell, the rest left to the scan


def test_rows_out_of_sequence_white_space_and_other_shapes(tmp_path, scanner_everywhere):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    texts = [[str(i), repr(i * 1.5)] for i in range(100)]
    sheet = (number_rows(texts[:40], gap="\n  ") + number_rows(texts[40:50], first=45) + number_rows(texts[:5], first=3)
             + '<row r="60"><c r="A60" s="1"><v>45000</v></c></row>' + number_rows(texts[50:60], first=61, attrs=' spans="1:2"')
             + number_rows(texts[60:], first=71))  # the last row's shape is the scanner's: no spans
    with_sheet_data(path, sheet)
    assert read_both_ways(path) == [True]
    assert scanner_everywhere[0] == 40


def test_a_header_row_is_placed_apart_and_the_rows_under_it_scanned(tmp_path, scanner_everywhere):
    """A data tab's first chunk starts with its header (texts): the scanner cannot vouch for
    that row, so it is read on its own and the scanner starts again after it."""
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    header = ('<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c>'
              '<c r="B1" t="inlineStr"><is><t>é y</t></is></c></row>')  # not ASCII: bytes and characters differ
    texts = [[str(i), repr(i / 3)] for i in range(500)]
    with_sheet_data(path, header + number_rows(texts, first=2))
    assert read_both_ways(path) == [True]
    assert scanner_everywhere == [0, len(texts)] * 2  # refused at the header, then every row after it


def test_without_a_compiler_the_scan_reads_as_before(tmp_path, monkeypatch):
    monkeypatch.setattr(rowscan, "MIN_BYTES", 0)
    monkeypatch.setattr(rowscan, "_load", lambda: None)
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    with_sheet_data(path, number_rows([[h, h] for h in HARD]))
    assert read_both_ways(path) == [True]


number_text = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.17g}"),
    st.integers(-10**20, 10**20).map(str),
    st.from_regex(r"\A[-+]?[0-9]{0,4}(\.[0-9]{0,4})?([eE][-+]?[0-9]{1,3})?\Z"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(number_text, min_size=2, max_size=2), min_size=1, max_size=40),
       attrs=st.sampled_from(["", ' spans="1:2"']), gap=st.sampled_from(["", "\n"]),
       chunk=st.sampled_from([64, 1 << 22]))
def test_generated_number_rows(tmp_path_factory, monkeypatch, scanner_everywhere, texts, attrs, gap, chunk):
    monkeypatch.setattr(scan, "_SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("rowscan") / "book.xlsx"
    base_workbook(path)
    with_sheet_data(path, number_rows(texts, attrs=attrs, gap=gap))
    read_both_ways(path)
