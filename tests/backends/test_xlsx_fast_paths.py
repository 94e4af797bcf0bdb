"""The fast paths of the .xlsx backend give exactly what the reference paths give.

Reading: `SheetScan` (text scanning) against `WorkbookReader.cells_by_elementtree` on every
workbook the suite builds, files made by openpyxl (normal and write_only), LibreOffice's saves,
the demo, and hypothesis-made sheet XML (including malformed XML: the same error either way).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import zipfile

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sheetsync import a1
from sheetsync.backends.xlsx import ooxml, render, scan, zipstream
from sheetsync.backends.xlsx.celltext import _number
from sheetsync.backends.xlsx import SheetScan, WorkbookReader, XlsxBackend

from xlsx_builders import members, plain_workbook, rewrite_zip, rich_workbook, small_plan, with_sheet_data

# ---------------------------------------------------------------------------------------------
# Reading: both ways, every worksheet


def outcome(read, part):
    """The rows read, each value as (type, repr) so that NaN equals NaN and -0.0 differs from
    0.0 and 1 from 1.0; or the error raised."""
    try:
        return exact(read(part))
    except Exception as e:  # noqa: BLE001 - the error itself is what is compared
        return ("raised", type(e), str(e))


def exact(rows):
    return [[(type(v), repr(v)) for v in row] for row in rows]


def worksheets(path) -> list[str]:
    pkg = ooxml.Package(str(path))
    try:
        reader = WorkbookReader(pkg)
        return [rel.target for rel in reader.rels.values()
                if rel.type == ooxml.REL_WORKSHEET and pkg.has(rel.target)]
    finally:
        pkg.close()


def read_both_ways(path) -> list[bool]:
    """Every worksheet read by ElementTree, by `cells` (scan with fallback) and by the scan
    alone; asserts they agree and returns, per sheet, whether the scan handled it itself."""
    handled = []
    pkg = ooxml.Package(str(path))
    try:
        for part in worksheets(path):
            reader = WorkbookReader(pkg)
            reference = outcome(reader.cells_by_elementtree, part)
            assert outcome(WorkbookReader(pkg).cells, part) == reference, part
            reader = WorkbookReader(pkg)
            reader._dates = reader.date_xfs()
            scanned = SheetScan(reader).rows(part)
            if scanned is not None:
                assert exact(scanned) == reference, part
            handled.append(scanned is not None)
    finally:
        pkg.close()
    return handled


def varied_rows(n: int = 40) -> list[list]:
    rng = np.random.default_rng(3)
    rows = [["x", "y", "when", "flag", "label", "int", "big", "tiny"]]
    for i in range(n):
        rows.append([float(rng.normal()), float(rng.normal()) * 1e-7, dt.datetime(2024, 1, 1 + i % 28, i % 24),
                     bool(i % 2), f"  text {i} & <b> ", i - 20, 1e22 * (i + 1), 5e-324 * i])
    rows.append([None, 1, None, None, "_x0041_ looks escaped", 0, -0.0, 1.7976931348623157e308])
    rows.append([])
    rows.append(["=A2*2", "=SUM(A2:A5)", "=1/0", None, "=\"a\"&\"b\"", None, None, None])
    return rows


def test_workbooks_the_suite_builds(tmp_path):
    plain = tmp_path / "plain.xlsx"
    plain_workbook(plain)
    rich = tmp_path / "rich.xlsx"
    rich_workbook(rich)
    macro = tmp_path / "rich.xlsm"
    rich_workbook(macro, macro=True)
    applied = tmp_path / "applied.xlsx"
    rich_workbook(applied)
    XlsxBackend(applied).apply(small_plan())
    for path in (plain, rich, macro, applied):
        read_both_ways(path)
    # the plain tabs and our own steps tab go through the scan itself, not the fallback
    assert all(read_both_ways(plain))
    assert any(read_both_ways(applied))


@pytest.mark.parametrize("write_only", [False, True])
def test_openpyxl_workbooks(tmp_path, write_only):
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook(write_only=write_only)
    if not write_only:
        wb.remove(wb.active)
    ws = wb.create_sheet("data")
    for row in varied_rows():
        ws.append(row)
    numbers = wb.create_sheet("numbers")
    for row in np.random.default_rng(0).normal(size=(3000, 4)).tolist():
        numbers.append(row + [int(row[0] * 100)])
    wb.create_sheet("empty")
    wb.save(path)
    handled = read_both_ways(path)
    assert handled[1]  # the numbers sheet


def test_benchmark_shaped_workbook_in_small_chunks(tmp_path, monkeypatch):
    """A data tab like the benchmark's, read in chunks so small that rows straddle them."""
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "data"
    ws.append(["x", "y"])
    rng = np.random.default_rng(0)
    for x in rng.random(500):
        ws.append([float(x), float(2 * x + 30 + rng.normal(0, 0.1))])
    ws.append([3, 4])  # integers: the chunk is no longer "plain floats"
    ws.append([None, 5.5])
    wb.save(path)
    assert all(read_both_ways(path))
    for size in (64, 1000, 4096):
        monkeypatch.setattr(scan, "_SCAN_CHUNK", size)
        assert all(read_both_ways(path))


def soffice() -> str | None:
    return shutil.which("soffice")


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed")
def test_libreoffice_saved_workbooks(tmp_path):
    source = tmp_path / "source.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "data"
    for row in varied_rows():
        ws.append(row)
    ws["C2"].number_format = "yyyy-mm-dd hh:mm"
    wb.create_sheet("other").append(["a", 1, True])
    wb.save(source)
    applied = tmp_path / "applied.xlsx"
    rich_workbook(applied)
    XlsxBackend(applied).apply(small_plan())
    out = tmp_path / "out"
    for book in (source, applied):
        subprocess.run([soffice(), "--headless", f"-env:UserInstallation=file://{tmp_path / 'profile'}",
                        "--convert-to", "xlsx", "--outdir", str(out), str(book)],
                       check=True, capture_output=True, timeout=180)
        handled = read_both_ways(out / book.name)
        assert any(handled)


def test_the_demo_workbook(tmp_path):
    from sheetsync import cli

    book = tmp_path / "lab.xlsx"
    assert cli.main(["demo", str(book)]) == 0
    assert all(read_both_ways(book)[:2])  # data and experiments


# ---------------------------------------------------------------------------------------------
# Reading: hand-written and generated sheet XML


def base_workbook(path) -> None:
    """Style 1 is a date; shared strings hold 'zero', 'one & two', ' three' (openpyxl writes
    inline strings only, so the part is added by hand)."""
    wb = openpyxl.Workbook()
    wb.active.title = "data"
    wb.active["A1"].number_format = "yyyy-mm-dd"
    wb.save(path)
    parts = members(path)
    strings = (f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{ooxml.NS_MAIN}" count="3" uniqueCount="3">'
               '<si><t>zero</t></si><si><t>one &amp; two</t></si><si><r><t xml:space="preserve"> three</t></r></si></sst>')
    rels = parts["xl/_rels/workbook.xml.rels"].decode().replace(
        "</Relationships>", f'<Relationship Id="rIdStrings" Type="{ooxml.REL_SHARED_STRINGS}" '
        'Target="sharedStrings.xml"/></Relationships>')
    types = parts["[Content_Types].xml"].decode().replace(
        "</Types>", '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    rewrite_zip(path, replace={"xl/_rels/workbook.xml.rels": rels.encode(), "[Content_Types].xml": types.encode()},
                add={"xl/sharedStrings.xml": strings.encode()})


def sheet_agrees(path, sheet_data: str) -> None:
    with_sheet_data(path, sheet_data)
    read_both_ways(path)


SHAPES = [
    '<row r="1"><c r="A1" s="1"><v>45000</v></c><c r="B1" t="inlineStr"><is><t> 3 </t></is></c>'
    '<c r="C1" t="str"><f>"1,5"</f><v>1,5</v></c></row>',
    '<row r="2"><c t="n" r="B2" s="0"><v>1</v></c><c s="1" r="C2"><v>2.5</v></c><c r="D2"/><c r="E2"></c></row>',
    '<row r="3" spans="1:3" ht="12.8" customHeight="1"><c r="A3" t="b"><v>0</v></c><c r="B3" t="e"><v>#N/A</v></c>'
    '<c r="C3" t="s"><v>1</v></c><c r="E3" t="s"><v>2</v></c><c r="D3" t="str"><v>plain _x0041_</v></c></row>',
    '<row><c><v>7</v></c><c t="inlineStr"><is><t xml:space="preserve"> a </t></is></c><c r="E9"><v>-0</v></c></row>',
    '<row r="5"/><row r="7"><c r="C7"><v>1e5</v></c><c r="A7"><v>3</v></c><c r="B7"><v>00012</v></c></row>',
    "<row r='8'><c r='A8' t='s'><v>0</v></c></row><row r=\"9\"><c r=\"A9\" t=\"s\"><v>0</v></c></row>",
    '<row r="9">\n  <c r="A9">\n    <v>1</v>\n  </c>\n</row>\n',
    '<row r="10"><c r="A10" t="inlineStr"><is><r><t>rich </t></r><r><t>text</t></r></is></c>'
    '<c r="B10"><v>a &amp; b</v></c><c r="C10" t="str"><v>a &lt; b</v></c></row>',
    '<row r="3"><c r="A3"><v>99</v></c></row>',  # a row again: its cells land in the earlier row
    '<row r="12"><c r="AB12" t="d"><v>2024-02-03T04:05:06</v></c><c r="B12" t="inlineStr"><v>1</v></c>'
    '<c r="C12" t="n"><is><t>x</t></is></c></row>',
    '<row r="13"><c r="A13"><v>nan</v></c><c r="B13"><v>-inf</v></c><c r="C13"><v>1_000</v></c></row>',
    '<row r="14" x14ac:dyDescent="0.25"><c r="A14"><v>1</v></c></row>',  # undeclared prefix: an error
    '<row r="15"><c r="A15"><v>1</v></c>',  # unclosed row
    '<row r="16"><c r="A16"><v>x</v></c></row>',  # not a number
    '<row r="17"><c r="A17" t="s"><v>5</v></c></row>',  # no such shared string
    '<row r="0"><c r="A1"><v>1</v></c></row>',
    '<!-- a comment --><row r="1"><c r="A1"><v>1</v></c></row>',
    '<row r="1"><c r="A1" s="1" s="2"><v>1</v></c></row>',  # duplicate attribute
    '<row r="1"><c r="A1" xmlns="urn:other"><v>1</v></c><c r="B1"><v>2</v></c></row>',
    '<row r="1"><c r="A1"><v>1\x01</v></c></row>',
    '<row r="1"><c r="A1"><v>1]]>2</v></c></row>',
    '<row r="20"><c r="A20" t="inlineStr"><is><t></t></is></c><c r="B20" t="str"><v></v></c><c r="C20"><v/></c></row>',
    '<row r="21"><c r="A21"><v>1</v></c><c r="B21" s="1" s="2"/></row>',  # duplicate, in an empty cell
    '<row r="22"><c r="A22"><v>1</v></c><c r="B22" x:y="1"/></row>',  # undeclared prefix, ditto
    # characters XML forbids that the scan's text class leaves to a whole-text check
    '<row r="23"><c r="A23" t="inlineStr"><is><t>a\ufffeb</t></is></c></row>',
    '<row r="24"><c r="A24"><v>1</v></c><c r="B24" t="str"><v>\uffff</v></c></row>',
]


@pytest.mark.parametrize("sheet_data", SHAPES)
def test_hand_written_cells(tmp_path, sheet_data):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    sheet_agrees(path, sheet_data)


def test_hand_written_cells_all_together_and_shaped_rows_among_them(tmp_path):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    regular = "".join(f'<row r="{i}"><c r="A{i}" t="n"><v>{i / 7!r}</v></c><c r="B{i}" s="1"><v>{i}</v></c></row>'
                      for i in range(30, 60))
    sheet_agrees(path, "".join(SHAPES[:11]) + regular + SHAPES[3] + regular.replace('r="3', 'r="6'))


attr_value = st.sampled_from(["0", "1", "2", "n", "s", "b", "e", "str", "inlineStr", "d", "x", ""])
texts = st.sampled_from(["1", "-2", "1.5", "2.5E-3", "1e5", " 3 ", "0", "1", "true", "#DIV/0!", "٣", "nan",
                         "x", "", "a &amp; b", "_x0041_", "0.1", "-0", "1e400", "5e-324", "00", "--1"])


@st.composite
def cell_xml(draw, row: int, col: int) -> str:
    ref = draw(st.sampled_from([f"{'ABCDEFGH'[col]}{row}", "", f"{'ABCDEFGH'[col].lower()}{row}",
                                f"${'ABC'[col % 3]}$1", "Z9"]))
    attrs = []
    if ref:
        attrs.append(("r", ref))
    if draw(st.booleans()):
        attrs.append(("s", draw(st.sampled_from(["0", "1", "2"]))))
    if draw(st.booleans()):
        attrs.append(("t", draw(attr_value)))
    if draw(st.booleans()):
        attrs.append(("cm", "1"))
    attrs = draw(st.permutations(attrs))
    quote = draw(st.sampled_from(['"', '"', "'"]))
    start = "<c" + "".join(f" {k}={quote}{v}{quote}" for k, v in attrs)
    text = draw(texts)
    body = draw(st.sampled_from(["", "v", "v", "v", "is", "is-space", "f", "rich", "space"]))
    return {
        "": start + "/>",
        "v": f"{start}><v>{text}</v></c>",
        "is": f"{start}><is><t>{text}</t></is></c>",
        "is-space": f'{start}><is><t xml:space="preserve">{text}</t></is></c>',
        "f": f"{start}><f>A1*2</f><v>{text}</v></c>",
        "rich": f"{start}><is><r><t>{text}</t></r></is></c>",
        "space": f"{start}> <v>{text}</v> </c>",
    }[body]


@st.composite
def sheet_xml(draw) -> str:
    rows = []
    for i in range(draw(st.integers(0, 6))):
        number = draw(st.sampled_from([i + 1, i + 1, i + 1, None, 1, i + 3]))
        attrs = f' r="{number}"' if number is not None else ""
        attrs += draw(st.sampled_from(["", "", ' spans="1:4"', ' ht="15" customHeight="1"']))
        cells = [draw(cell_xml(number or i + 1, j)) for j in range(draw(st.integers(0, 5)))]
        gap = draw(st.sampled_from(["", "", "\n"]))
        rows.append(f"<row{attrs}/>" if not cells and draw(st.booleans()) else
                    f"<row{attrs}>{gap.join(cells)}</row>{gap}")
    return "".join(rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sheet_data=sheet_xml())
def test_generated_sheets(tmp_path_factory, sheet_data):
    path = tmp_path_factory.mktemp("gen") / "book.xlsx"
    base_workbook(path)
    sheet_agrees(path, sheet_data)


def test_the_scan_handles_the_common_shapes_itself(tmp_path):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    with_sheet_data(path, "".join(SHAPES[:7]))
    assert read_both_ways(path) == [True]
    with_sheet_data(path, SHAPES[16])  # a comment: ElementTree reads it
    assert read_both_ways(path) == [False]


def test_a_sheet_in_another_encoding_or_with_a_doctype_is_left_to_elementtree(tmp_path):
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    with_sheet_data(path, '<row r="1"><c r="A1" t="inlineStr"><is><t>é</t></is></c></row>')
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    body = xml[xml.index("<worksheet"):]
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + body).encode("latin-1")
    rewrite_zip(path, replace={"xl/worksheets/sheet1.xml": latin})
    assert read_both_ways(path) == [False]
    doctype = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY e "1">]>' + body).encode()
    rewrite_zip(path, replace={"xl/worksheets/sheet1.xml": doctype})
    assert read_both_ways(path) == [False]


# ---------------------------------------------------------------------------------------------
# Writing: numbers as orjson writes them, rows a chunk at a time, read back by openpyxl and us


EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 1e-5, 1e-7, 1e16, 1e22, 1e21, 1e15, 123456789012345678.0,
               9007199254740993.0, 2.0 ** 53, 5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
               1.7976931348623157e308, -1.7976931348623157e308, 0.30000000000000004, 1.2345678901234567,
               100.0, 1e-300, 4.9406564584124654e-300, 12345.678, -2.5e-10, 1e100]


def edge_floats(n: int, seed: int = 0) -> np.ndarray:
    """Edge values, values of 17 significant digits and random bit patterns, NaN and
    infinities among them (blank cells)."""
    rng = np.random.default_rng(seed)
    bits = np.frombuffer(rng.bytes(8 * n), dtype=np.float64).copy()
    values = np.concatenate([EDGE_FLOATS, [np.nan, np.inf, -np.inf], rng.normal(size=n), bits])
    return values[: n + len(EDGE_FLOATS) + 3]


def expected_cell(value):
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else ("float", float(value).hex())
    if isinstance(value, (int, np.integer)):
        return ("int", int(value))
    return ("str", value) if value not in (None, "") else None


def read_cell(value):
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, int):
        return ("int", value)
    return ("str", value) if value not in (None, "") else None


def numbers_plan(n: int):
    from sheetsync.backends.base import Column, Highlight, Plan, Table, TabPlan, Text

    floats = edge_floats(n)
    n = len(floats)
    ints = np.arange(n, dtype=np.int64) * 7919 - 10**6
    ints[:3] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0]
    big = np.arange(n, dtype=np.uint64) + np.uint64(2**64 - n)
    small = (np.arange(n) % 100).astype(np.int16)
    single = np.linspace(-3, 3, n).astype(np.float32)
    main = Table([Column("step", ints, number_format="0"), Column("x", floats),
                  Column("rev", floats[::-1]),  # a strided view
                  Column("u64", big), Column("i16", small), Column("f32", single, number_format="0.000")],
                 row=2, col=1)
    mixed = Table([Column("label", [f"row {i}" if i % 3 else "" for i in range(40)]),
                   Column("y", floats[:40]), Column("n", list(range(40)))], row=0, col=10)
    plan = TabPlan("numbers", tables=[main, mixed], frozen_rows=3,
                   texts=[Text(0, 0, "title"), Text(5, 8, "beside the table, in its rows")],
                   highlights=[Highlight(row=10, col=2, n_rows=3, n_cols=2, color="FFFF00")])
    alone = TabPlan("alone", tables=[Table([Column("x", floats), Column("i", ints)], row=1, col=0)],
                    texts=[Text(0, 0, "above")],
                    highlights=[Highlight(row=7, col=0, n_rows=1, n_cols=2, color="FF0000")])
    return Plan([plan, alone])


def expected_grid(tab) -> dict[tuple[int, int], object]:
    """(row, col) -> expected read value of every table and text cell of a TabPlan."""
    cells = {}
    for t in tab.tables:
        for j, col in enumerate(t.columns):
            cells[(t.row, t.col + j)] = expected_cell(col.header)
            for i, v in enumerate(col.values):
                cells[(t.row + 1 + i, t.col + j)] = expected_cell(v)
    for x in tab.texts:
        cells[(x.row, x.col)] = expected_cell(x.value)
    return cells


@pytest.mark.parametrize("read_only", [False, True])
def test_written_numbers_read_back_exactly_by_openpyxl(tmp_path, monkeypatch, read_only):
    monkeypatch.setattr(render, "CHUNK_ROWS", 97)  # many chunks, NaN rows and patches inside them
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 5000)  # many blocks deflated apart
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    plan = numbers_plan(1500)
    XlsxBackend(path).apply(plan)
    wb = openpyxl.load_workbook(path, read_only=read_only)
    for tab in plan.tabs:
        ws = wb[tab.name]
        got = {(c.row - 1, c.column - 1): read_cell(c.value) for row in ws.iter_rows() for c in row
               if read_cell(c.value) is not None}
        want = {k: v for k, v in expected_grid(tab).items() if v is not None}
        assert got == want, tab.name


def test_written_numbers_read_back_exactly_by_sheetsync(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "CHUNK_ROWS", 97)
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    plan = numbers_plan(1500)
    XlsxBackend(path).apply(plan)
    values = XlsxBackend(path).read([t.name for t in plan.tabs]).values
    for tab in plan.tabs:
        got = {(r, c): read_cell(v) for r, row in enumerate(values[tab.name]) for c, v in enumerate(row)
               if read_cell(v) is not None}
        assert got == {k: v for k, v in expected_grid(tab).items() if v is not None}, tab.name
    assert all(read_both_ways(path))


def test_rows_are_written_whole_only_when_alone(tmp_path):
    """The written XML: every row once, in order, its cells in column order with their r."""
    import re as regex

    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    XlsxBackend(path).apply(numbers_plan(300))
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.startswith("xl/worksheets/sheet") or name.endswith("sheet1.xml"):
                continue
            xml = z.read(name).decode()
            rows = [int(r) for r in regex.findall(r'<row r="(\d+)"', xml)]
            assert rows == sorted(set(rows)), name
            for number, body in regex.findall(r'<row r="(\d+)">(.*?)</row>', xml):
                refs = regex.findall(r'<c r="([A-Z]+)(\d+)"', body)
                assert all(digits == number for _, digits in refs), name
                columns = [a1.column_index(letters) for letters, _ in refs]
                assert columns == sorted(set(columns)), name
            assert "null" not in xml and "\0" not in xml


LO_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed")
def test_libreoffice_reads_orjson_numbers_as_it_reads_repr(tmp_path):
    """Each float written both ways (repr, as sheetsync wrote them before, and orjson's
    notation) in one sheet: LibreOffice reads the same double from both, and (where its parser
    is exact, which the test reports otherwise) the double written."""
    import json
    from pathlib import Path

    import orjson

    values = edge_floats(200)
    values = values[np.isfinite(values)]
    texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")
    rows = "".join(f'<row r="{i + 1}"><c r="A{i + 1}"><v>{float(v)!r}</v></c><c r="B{i + 1}"><v>{t}</v></c></row>'
                   for i, (v, t) in enumerate(zip(values.tolist(), texts)))
    path = tmp_path / "both.xlsx"
    plain_workbook(path)
    with_sheet_data(path, rows)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([LO_PYTHON, str(root / "tests/support/lo_recalc.py"), str(path), "data"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    read = json.loads(proc.stdout)["data"]["values"]
    assert len(read) == len(values)
    for (by_repr, by_orjson), value in zip(read, values.tolist()):
        assert by_repr == by_orjson, (value, by_repr, by_orjson)
    assert [float(by_repr) for by_repr, _ in read] == values.tolist()


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed")
def test_libreoffice_reads_an_applied_table_exactly(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    monkeypatch.setattr(render, "CHUNK_ROWS", 97)
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 5000)
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    plan = numbers_plan(400)
    XlsxBackend(path).apply(plan)
    if shutil.which("unzip"):  # Info-ZIP's own check of every member's deflate stream and CRC
        subprocess.run(["unzip", "-tq", str(path)], check=True, capture_output=True)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([LO_PYTHON, str(root / "tests/support/lo_recalc.py"), str(path), "alone"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    read = json.loads(proc.stdout)["alone"]["values"]
    assert read[0][0] == "above" and read[1][:2] == ["x", "i"]
    numbers = [[float(v) if v != "" else None for v in row[:2]] for row in read[2:]]
    table = plan.tabs[1].tables[0]
    floats, ints = table.columns[0].values, table.columns[1].values
    assert [x.hex() if x is not None else None for x, _ in numbers] == \
        [float(v).hex() if np.isfinite(v) else None for v in floats]
    # LibreOffice holds every number as a double: the int64 column reads back rounded to one
    assert [i for _, i in numbers] == [float(v) for v in ints.tolist()]


def stream_into_zip(chunks) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(zipstream.new_info("part.xml"), "w", force_zip64=True) as w:
            zipstream.write_streamed(w, chunks)
    return buffer.getvalue()


@pytest.mark.parametrize("library", ["isal", "zlib"])
@pytest.mark.parametrize("block", [10, 1000, 1 << 21])
def test_blocks_deflated_apart_make_one_valid_member(monkeypatch, block, library):
    import io
    import zlib

    if library == "isal":
        from isal import isal_zlib

        assert zipstream.deflate_lib is isal_zlib  # a declared dependency: used when installed
    else:  # the fallback where isal has no wheel
        monkeypatch.setattr(zipstream, "deflate_lib", zlib)
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", block)
    rng = np.random.default_rng(0)
    chunks = [f"<row r='{i}'><v>{x!r}</v></row>" if i % 2 else f"<row r='{i}'/>".encode()
              for i, x in enumerate(rng.normal(size=20_000))]
    text = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    data = stream_into_zip(iter(chunks))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None and z.read("part.xml") == text
    assert stream_into_zip(iter([])) and zipfile.ZipFile(io.BytesIO(stream_into_zip(iter([])))).read("part.xml") == b""


def test_a_small_part_of_several_segments_is_deflated_without_threads_to_the_same_bytes(monkeypatch):
    """A part whose SEGMENTs end its blocks early, less than a STREAM_BLOCK in all (a demo's
    tabs), is deflated in the writing thread: the bytes a pool makes of the same blocks."""
    import concurrent.futures
    import io

    def segments():
        for k in range(10):
            yield from (f"<row r='{i}'><v>{k * i}</v></row>" for i in range(k * 20, k * 20 + 20))
            yield zipstream.SEGMENT

    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 1000)  # more than a segment, less than them all
    pooled = stream_into_zip(segments())
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 1 << 21)

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool started for a small part")

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", no_pool)
    alone = stream_into_zip(segments())
    assert alone == pooled
    with zipfile.ZipFile(io.BytesIO(alone)) as z:
        assert z.testzip() is None and z.read("part.xml") == "".join(segments()).encode()
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 1000)
    with pytest.raises(AssertionError, match="a pool started"):  # the check above can fail
        stream_into_zip(segments())


def test_a_failing_deflate_stops_the_rendering_and_its_error_is_raised(monkeypatch):
    import sys

    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 10)
    real, calls, rendered = zipstream._deflate_block, [], []

    def failing(block, previous):
        calls.append(block)
        if len(calls) == 3:
            raise OSError("no memory for the deflate")
        return real(block, previous)

    monkeypatch.setattr(zipstream, "_deflate_block", failing)

    def chunks():
        for i in range(1000):
            rendered.append(i)
            yield f"<row r='{i}'/>"

    interval = sys.getswitchinterval()
    with pytest.raises(OSError, match="no memory"):
        stream_into_zip(chunks())
    assert len(rendered) < 20
    assert sys.getswitchinterval() == interval


class PlainMember:
    def __init__(self):
        self.blocks = []

    def write(self, data: bytes) -> None:
        self.blocks.append(data)


def test_a_member_without_zlib_is_written_plainly(monkeypatch):
    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 100)
    member = PlainMember()
    chunks = [f"<row r='{i}'/>" if i % 2 else f"<row r='{i}'/>".encode() for i in range(500)]
    zipstream.write_streamed(member, iter(chunks))
    assert b"".join(member.blocks) == b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)


def test_concurrent_writes_restore_the_switch_interval(monkeypatch):
    import sys
    import threading

    monkeypatch.setattr(zipstream, "STREAM_BLOCK", 1)  # blocks deflated by a pool (one block is not)
    interval = sys.getswitchinterval()
    started, release = threading.Barrier(3), threading.Event()

    def slow_chunks():
        yield "x"
        yield "y"
        started.wait()
        release.wait(5)
        yield "z"

    threads = [threading.Thread(target=stream_into_zip, args=(slow_chunks(),)) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    assert sys.getswitchinterval() <= 0.0002
    release.set()
    for t in threads:
        t.join()
    assert sys.getswitchinterval() == interval


@st.composite
def regular_sheet_xml(draw) -> str:
    """Many rows of one shape (what the scan reads in bulk), row numbers mostly in sequence,
    with odd rows, gaps, repeats and rows of another shape among them."""
    shape = []
    for j in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["", ' t="n"', ' s="1"', ' t="s"', ' t="b"', ' t="e"', ' t="str"',
                                     ' t="inlineStr"', ' s="2" t="n"', ' t="n" s="0"',
                                     ' s="1" s="1"', ' x:y="1"', ' xmlns="urn:x"', ' t="n&amp;"']))
        form = draw(st.sampled_from(["v", "v", "v", "is", "empty"]))
        shape.append(("ABCDEF"[j + draw(st.integers(0, 1))] if j else "A", kind, form))
    columns = sorted({letter for letter, _, _ in shape})
    shape = [next(s for s in shape if s[0] == letter) for letter in columns]
    numbers = st.sampled_from(["0.5", "-1.25", "3e-7", "1e16", "2", "-3", "0", "1", "0.1", "٣", "1e400"])
    text = st.sampled_from(["1", "0", "#N/A", "a", " b ", "_x0041_", "true"])
    row_attrs = draw(st.sampled_from(["", "", "", "", ' spans="1:3"', ' ht="1" ht="2"', ' x14ac:dyDescent="1"']))
    rows, number = [], 0
    for _ in range(draw(st.integers(1, 60))):
        step = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 0, -1]))
        number = max(1, number + step)
        cells = []
        for letter, kind, form in shape:
            value = draw(numbers if kind in ("", ' t="n"', ' s="1"', ' s="2" t="n"', ' t="n" s="0"') else text)
            cells.append({"v": f'<c r="{letter}{number}"{kind}><v>{value}</v></c>',
                          "is": f'<c r="{letter}{number}"{kind}><is><t>{value}</t></is></c>',
                          "empty": f'<c r="{letter}{number}"{kind}/>'}[form])
        odd = draw(st.sampled_from([None] * 8 + ["formula", "other", "self-closing", "no r"]))
        if odd == "formula":
            cells[0] = f'<c r="A{number}"><f>1+1</f><v>2</v></c>'
        elif odd == "other":
            cells.append(f'<c r="H{number}" t="inlineStr"><is><t>odd</t></is></c>')
        if odd == "self-closing":
            rows.append(f'<row r="{number}"{row_attrs}/>')
        elif odd == "no r":
            rows.append(f'<row>{"".join(cells)}</row>')
        else:
            rows.append(f'<row r="{number}"{row_attrs}>{"".join(cells)}</row>')
    return "".join(rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sheet_data=regular_sheet_xml(), chunk=st.sampled_from([64, 300, 1 << 22]))
def test_generated_regular_sheets(tmp_path_factory, monkeypatch, sheet_data, chunk):
    monkeypatch.setattr(scan, "_SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("regular") / "book.xlsx"
    base_workbook(path)
    sheet_agrees(path, sheet_data)


@pytest.mark.parametrize("odd", [
    "1e400", "-1e400", "18446744073709551616", "-9223372036854775809", "9223372036854775807",
    "9007199254740993", "-0", "-0.0", "1E5", "4.9e-324", "1e-400", "0.1", " 1", "1 ", "+1", ".5",
    "5.", "01", "1,5", "--1", "1e", "2.5e+3", "1234567890123456789012",
])
def test_a_column_of_numbers_with_an_odd_one_reads_as_elementtree_reads_it(tmp_path, odd):
    """Plain number rows are read a column at a time (orjson); one odd text among them gives
    what `_number` gives it (or the same error), cell by cell as ElementTree's reading."""
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    texts = [repr(v) for v in (np.random.default_rng(5).normal(size=200) * 1e3).tolist()]
    texts[117] = odd
    rows = "".join(f'<row r="{i + 1}"><c r="A{i + 1}"><v>{i}</v></c><c r="B{i + 1}"><v>{t}</v></c></row>'
                   for i, t in enumerate(texts))
    with_sheet_data(path, rows)
    number = True
    try:
        _number(odd)
    except ValueError:
        number = False
    assert read_both_ways(path) == [number]  # a number: the scan reads it; else ElementTree names it


@st.composite
def many_shaped_sheet_xml(draw) -> str:
    """Stretches of rows of a few shapes (columns with gaps, as the tables of a tab sheetsync
    wrote end at different rows), each stretch read by its own shape; numbers mostly in
    sequence, with repeats, steps back, rows without r and odd cells among them."""
    shapes = []
    for _ in range(draw(st.integers(1, 6))):
        letters = sorted(draw(st.sets(st.sampled_from("ABCDEFGHKLMN"), min_size=1, max_size=5)))
        shapes.append([(letter, draw(st.sampled_from(["", ' s="2"', ' s="1"', ' t="inlineStr"', ' t="s"'])))
                       for letter in letters])
    numbers = st.sampled_from(["0.5", "-1.25", "3e-7", "1e16", "2", "-0", "0.1", "5e-324", "1e400", "x"])
    rows, number = [], 0
    for _ in range(draw(st.integers(1, 8))):
        shape = draw(st.sampled_from(shapes))
        for _ in range(draw(st.integers(1, 12))):
            number = max(1, number + draw(st.sampled_from([1, 1, 1, 1, 1, 1, 1, 2, 0, -3])))
            cells = []
            for letter, kind in shape:
                if kind == ' t="inlineStr"':
                    cells.append(f'<c r="{letter}{number}"{kind}><is><t>{draw(st.sampled_from(["a", "_x0041_"]))}</t></is></c>')
                elif kind == ' t="s"':
                    cells.append(f'<c r="{letter}{number}"{kind}><v>{draw(st.sampled_from(["0", "2", "7"]))}</v></c>')
                else:
                    cells.append(f'<c r="{letter}{number}"{kind}><v>{draw(numbers)}</v></c>')
            odd = draw(st.sampled_from([None] * 12 + ["formula", "no r"]))
            if odd == "formula":
                cells[-1] = f'<c r="Z{number}"><f>1+1</f><v>2</v></c>'
            rows.append(f'<row>{"".join(cells)}</row>' if odd == "no r" else
                        f'<row r="{number}">{"".join(cells)}</row>')
    return "".join(rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sheet_data=many_shaped_sheet_xml(), chunk=st.sampled_from([64, 700, 1 << 22]))
def test_generated_sheets_of_many_row_shapes(tmp_path_factory, monkeypatch, sheet_data, chunk):
    monkeypatch.setattr(scan, "_SCAN_CHUNK", chunk)
    path = tmp_path_factory.mktemp("shapes") / "book.xlsx"
    base_workbook(path)
    sheet_agrees(path, sheet_data)


def test_stretches_of_a_few_row_shapes_are_read_shape_by_shape(tmp_path, monkeypatch):
    """A tab like sheetsync's epochs tab (an epochs table beside a longer plot table): no row
    is read token by token, and the values are ElementTree's."""
    path = tmp_path / "book.xlsx"
    base_workbook(path)
    both = "".join(f'<row r="{i}"><c r="A{i}" s="2"><v>{i}</v></c><c r="B{i}"><v>{i / 3!r}</v></c>'
                   f'<c r="K{i}"><v>{i * 1e-3!r}</v></c></row>' for i in range(1, 40))
    plot = "".join(f'<row r="{i}"><c r="K{i}"><v>{-i / 7!r}</v></c></row>' for i in range(40, 90))
    epochs = "".join(f'<row r="{i}"><c r="A{i}" s="2"><v>{i}</v></c><c r="B{i}"><v>{i / 9!r}</v></c></row>'
                     for i in range(90, 120))
    with_sheet_data(path, both + plot + epochs + plot.replace('r="4', 'r="5').replace('r="K4', 'r="K5'))
    tokens, placed = [], []
    plain, place = scan.SheetScan._tokens, scan._place_rows
    monkeypatch.setattr(scan.SheetScan, "_tokens", lambda self, text, *a: tokens.append(text) or plain(self, text, *a))
    monkeypatch.setattr(scan, "_place_rows", lambda run, *a: placed.append(len(run)) or place(run, *a))
    assert read_both_ways(path) == [True]
    assert tokens == []
    assert sum(placed) == 2 * 50  # only the stretch that goes back (read twice); the rest in bulk, gaps too
