"""The .xlsx backend: a plan lands in a local workbook and nothing of the user's is lost."""

from __future__ import annotations

import os
import re
import stat
import zipfile

import numpy as np
import openpyxl
import pytest

from sheetsync.backends.xlsx import ooxml, render, surgery
from sheetsync.backends.xlsx.owned import OWNED_MARK
from sheetsync.backends.base import (CellError, Column, DateCell, Plan, Table, TabPlan, Text,
                                     Uncomputed)
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.errors import BackendError, OwnershipError

from xlsx_builders import (VBA_BYTES, members, plain_workbook, rewrite_zip, rich_workbook,
                           small_plan, steps_tab, with_sheet_data)

# Package-level parts sheetsync edits on purpose; every other user part must stay byte-identical.
EDITED = {"[Content_Types].xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml",
          "docProps/app.xml"}


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.xlsx"
    rich_workbook(path)
    return path


def user_parts_unchanged(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Names of user parts that changed or vanished."""
    return [name for name, data in before.items() if name not in EDITED and after.get(name) != data]


def reachable_parts(path) -> set[str]:
    pkg = ooxml.Package(str(path))
    try:
        graph = ooxml.all_rels_graph(pkg)
        return {p.lower() for p in ooxml.closure([""], graph)}
    finally:
        pkg.close()


# ---------------------------------------------------------------------------------------------
# Nothing of the user's is lost


def test_every_user_part_survives_byte_for_byte(book):
    before = members(book)
    XlsxBackend(book).apply(small_plan())
    after = members(book)
    assert user_parts_unchanged(before, after) == []
    with zipfile.ZipFile(book) as z:
        assert z.testzip() is None  # every member's CRC checks out
    for part in ("xl/drawings/drawing99.xml", "xl/media/image99.png", "customXml/item1.xml",
                 "xl/charts/chart1.xml", "xl/comments/comment1.xml"):
        assert after[part] == before[part]


def test_user_features_still_load_in_openpyxl(book):
    XlsxBackend(book).apply(small_plan())
    wb = openpyxl.load_workbook(book)
    data = wb["data"]
    assert data["A1"].comment.text == "the inputs, by the user"
    assert data["A1"].font.b and data["A1"].font.color.rgb == "00FF0000"
    assert "E1:F2" in {str(r) for r in data.merged_cells.ranges}
    assert data.data_validations.dataValidation[0].formula1 == '"sgd,adam"'
    assert len(data.conditional_formatting) == 1
    assert data["C2"].value == "=A2*B2"
    assert wb.defined_names["learning_rate"].attr_text == "experiments!$B$2"
    assert data.defined_names["xs"].attr_text == "data!$A$2:$A$11"
    assert wb["my notes"].defined_names["local_note"].attr_text == "'my notes'!$A$1"
    assert len(data._charts) == 1
    assert wb.sheetnames == ["data", "experiments", "my notes", "basic steps", "runs"]


def test_workbook_xml_edits_are_small(book):
    before = members(book)["xl/workbook.xml"].decode()
    XlsxBackend(book).apply(small_plan())
    after = members(book)["xl/workbook.xml"].decode()
    for user_sheet in re.findall(r"<sheet [^>]*/>", before):
        assert user_sheet in after
    assert after.startswith(before[: before.index("<sheets>")])
    assert 'activeTab="2"' in after  # the user's active tab stays active


def test_macro_enabled_workbook_keeps_its_vba_project(tmp_path):
    path = tmp_path / "graddesc.xlsm"
    rich_workbook(path, macro=True)
    before = members(path)
    XlsxBackend(path).apply(small_plan())
    after = members(path)
    assert after["xl/vbaProject.bin"] == VBA_BYTES
    assert "macroEnabled.main+xml" in after["[Content_Types].xml"].decode()
    assert 'Extension="bin"' in after["[Content_Types].xml"].decode()
    assert "vbaProject.bin" in after["xl/_rels/workbook.xml.rels"].decode()
    assert user_parts_unchanged(before, after) == []
    assert openpyxl.load_workbook(path, keep_vba=True).vba_archive.read("xl/vbaProject.bin") == VBA_BYTES


def test_styles_are_appended_never_renumbered(book):
    before = members(book)["xl/styles.xml"].decode()
    user_xfs = re.search(r"<cellXfs.*?</cellXfs>", before, re.S).group(0)
    user_fonts = re.search(r"<fonts.*?</fonts>", before, re.S).group(0)
    XlsxBackend(book).apply(small_plan())
    after = members(book)["xl/styles.xml"].decode()
    new_xfs = re.search(r"<cellXfs.*?</cellXfs>", after, re.S).group(0)
    old_items = re.findall(r"<xf\b[^>]*?(?:/>|>.*?</xf>)", user_xfs, re.S)
    new_items = re.findall(r"<xf\b[^>]*?(?:/>|>.*?</xf>)", new_xfs, re.S)
    assert new_items[: len(old_items)] == old_items and len(new_items) > len(old_items)
    assert f'count="{len(new_items)}"' in new_xfs
    assert re.findall(r"<font\b.*?</font>", user_fonts, re.S) == \
        re.findall(r"<font\b.*?</font>", after, re.S)[: len(re.findall(r"<font\b.*?</font>", user_fonts, re.S))]
    XlsxBackend(book).apply(small_plan())
    assert members(book)["xl/styles.xml"].decode() == after  # a second run adds nothing


# ---------------------------------------------------------------------------------------------
# The owned tabs


def test_owned_tab_numbers_read_back_bit_for_bit(tmp_path):
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, size=500),
                             [0.1, 1 / 3, 2.0 ** -1074, 1.7976931348623157e308, -0.0, 5e-324]])
    XlsxBackend(path).apply(Plan([TabPlan("t", tables=[Table([Column("v", values)])])]))
    ws = openpyxl.load_workbook(path)["t"]
    back = np.array([ws.cell(row=i + 2, column=1).value for i in range(len(values))], dtype=float)
    assert back.tobytes() == values.tobytes()
    snapshot = XlsxBackend(path).read(["t"])
    assert np.array([r[0] for r in snapshot.values["t"][1:]]).tobytes() == values.tobytes()


def test_owned_tab_layout(book):
    XlsxBackend(book).apply(small_plan())
    ws = openpyxl.load_workbook(book)["basic steps"]
    assert [c.value for c in ws[1]][:5] == ["step", "x", "loss", "double x", "label"]
    assert all(ws.cell(row=1, column=c).font.b for c in range(1, 6))
    assert ws["B2"].number_format == "0.000000" and ws["A2"].number_format == "0"
    assert ws.column_dimensions["B"].width == 12
    assert ws.freeze_panes == "B2"
    assert ws["B1"].comment.text == "the input x of this row"
    assert ws["G1"].comment.text == "why the run diverged" and ws["G1"].value == "diagnosis"
    assert ws["A6"].comment.text == "first diverging step"
    assert ws["A6"].fill.fgColor.rgb == "FFFFC7CE" and ws["E6"].fill.fgColor.rgb == "FFFFC7CE"
    assert ws["B6"].number_format == "0.000000"  # the highlight keeps the column's format
    assert ws["G4"].fill.fgColor.rgb == "FFC6EFCE"
    assert ws["G2"].value == 42.5 and ws["G2"].number_format == "0.0"
    assert ws["D2"].value == "=B2*2" and ws["G3"].value == "=SUM(A2:A4)"
    assert openpyxl.load_workbook(book)["runs"].sheet_state == "hidden"


def test_formulas_carry_their_cached_values(book):
    XlsxBackend(book).apply(small_plan())
    cached = openpyxl.load_workbook(book, data_only=True)["basic steps"]
    x = openpyxl.load_workbook(book, data_only=True)["basic steps"]["B2"].value
    assert cached["D2"].value == 2 * x
    snapshot = XlsxBackend(book).read(["basic steps"])
    assert snapshot.values["basic steps"][2][6] == Uncomputed("SUM(A2:A4)")  # no cached value given
    assert 'fullCalcOnLoad="1"' in members(book)["xl/workbook.xml"].decode()


def test_nan_and_infinity_are_blank_cells(book):
    XlsxBackend(book).apply(small_plan())
    ws = openpyxl.load_workbook(book)["basic steps"]
    assert ws["C17"].value is None and ws["C18"].value is None and ws["C19"].value is not None
    sheet = next(v for k, v in members(book).items() if k.startswith("xl/worksheets/sheet") and b"diagnosis" in v)
    assert b"<v>nan" not in sheet.lower() and b"inf</v>" not in sheet.lower()
    assert not re.search(rb'<c r="C17"[^>]*><[vfi]', sheet)  # a cell without a value, as LibreOffice reads it


def test_charts_are_native_and_quote_tab_names(book):
    XlsxBackend(book).apply(small_plan())
    ws = openpyxl.load_workbook(book)["basic steps"]
    assert len(ws._charts) == 2
    charts = [v.decode() for k, v in members(book).items() if k.startswith("xl/charts/chart")]
    ours = [c for c in charts if "basic steps" in c]
    assert any("<lineChart>" in c for c in ours) and any("<scatterChart>" in c for c in ours)
    assert any("<f>'basic steps'!$C$2:$C$31</f>" in c for c in ours)
    assert any("<f>'basic steps'!$A$2:$A$31</f>" in c for c in ours)


def test_owned_tabs_follow_user_tabs_in_plan_order(book):
    plan = Plan([TabPlan("zeta"), TabPlan("alpha"), TabPlan("compare")])
    XlsxBackend(book).apply(plan)
    info = XlsxBackend(book).read([])
    assert [(t.title, t.owned) for t in info.tabs] == [
        ("data", False), ("experiments", False), ("my notes", False),
        ("zeta", True), ("alpha", True), ("compare", True)]


def test_app_xml_lists_the_new_titles(book):
    XlsxBackend(book).apply(small_plan())
    app = members(book)["docProps/app.xml"].decode()
    titles = re.findall(r"<vt:lpstr>(.*?)</vt:lpstr>", re.search("<TitlesOfParts>.*</TitlesOfParts>", app).group(0))
    assert titles == ["data", "experiments", "my notes", "basic steps", "runs", "learning_rate", "data!xs"]
    assert '<vt:vector size="7" baseType="lpstr">' in app
    assert "<vt:i4>5</vt:i4>" in app and "<vt:i4>2</vt:i4>" in app


# ---------------------------------------------------------------------------------------------
# Replacing and removing owned tabs


def test_applying_twice_replaces_owned_tabs_without_orphans(book):
    backend = XlsxBackend(book)
    backend.apply(small_plan())
    first = members(book)
    backend.apply(small_plan())
    second = members(book)
    assert sorted(first) == sorted(second)
    not_rels = {k.lower() for k in second if not k.endswith(".rels")}
    assert not_rels - reachable_parts(book) == {"[content_types].xml"}
    assert openpyxl.load_workbook(book).sheetnames == ["data", "experiments", "my notes", "basic steps", "runs"]
    workbook = second["xl/workbook.xml"].decode()
    assert workbook.count(OWNED_MARK) == 2


def test_removing_owned_tabs_drops_their_parts(book):
    before = members(book)
    backend = XlsxBackend(book)
    backend.apply(small_plan())
    backend.apply(Plan(remove=["basic steps", "runs", "never existed"]))
    after = members(book)
    assert sorted(after) == sorted(before)
    assert user_parts_unchanged(before, after) == []
    assert OWNED_MARK not in after["xl/workbook.xml"].decode()
    for name in ("xl/_rels/workbook.xml.rels", "[Content_Types].xml"):
        assert b"sheet4.xml" not in after[name] and b"sheet5.xml" not in after[name]
    assert openpyxl.load_workbook(book).sheetnames == ["data", "experiments", "my notes"]


def test_sheet_local_names_and_active_tab_follow_their_sheets(tmp_path):
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    XlsxBackend(path).apply(Plan([TabPlan("basic steps")]))
    wb = openpyxl.load_workbook(path)  # the user adds a tab after ours, with a local name
    later = wb.create_sheet("later")
    later["A1"] = "mine"
    later.defined_names["mine"] = openpyxl.workbook.defined_name.DefinedName("mine", attr_text="later!$A$1")
    wb.active = 2
    wb.save(path)
    XlsxBackend(path).apply(Plan([TabPlan("basic steps"), TabPlan("basic epochs")]))
    wb = openpyxl.load_workbook(path)  # ours keeps its place, the new one goes beside it: 'later' moves
    assert wb.sheetnames == ["data", "basic steps", "basic epochs", "later"]
    assert wb["later"].defined_names["mine"].attr_text == "later!$A$1"
    assert wb.active.title == "later"
    assert [(t.title, t.owned) for t in XlsxBackend(path).read([]).tabs] == [
        ("data", False), ("basic steps", True), ("basic epochs", True), ("later", False)]


def test_stale_calc_chain_is_dropped(book):
    XlsxBackend(book).apply(small_plan())
    parts = members(book)
    ids = re.findall(r'<sheet [^>]*name="basic steps"[^>]*sheetId="(\d+)"', parts["xl/workbook.xml"].decode())
    chain = f'<calcChain xmlns="{ooxml.NS_MAIN}"><c r="C2" i="1"/><c r="D2" i="{ids[0]}"/></calcChain>'
    rels = parts["xl/_rels/workbook.xml.rels"].decode().replace(
        "</Relationships>", f'<Relationship Id="rIdCalc" Type="{ooxml.REL_CALC_CHAIN}" Target="calcChain.xml"/></Relationships>')
    types = parts["[Content_Types].xml"].decode().replace("</Types>", '<Override PartName="/xl/calcChain.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml"/></Types>')
    rewrite_zip(book, replace={"xl/_rels/workbook.xml.rels": rels.encode(), "[Content_Types].xml": types.encode()},
                add={"xl/calcChain.xml": chain.encode()})
    XlsxBackend(book).apply(small_plan())
    after = members(book)
    assert "xl/calcChain.xml" not in after
    assert b"calcChain" not in after["xl/_rels/workbook.xml.rels"] and b"calcChain" not in after["[Content_Types].xml"]


# ---------------------------------------------------------------------------------------------
# Refusals: nothing is written


@pytest.mark.parametrize("plan", [Plan([TabPlan("data")]), Plan([TabPlan("DATA")]), Plan(remove=["experiments"]),
                                  Plan([TabPlan("basic steps")], remove=["My Notes"])])
def test_user_tabs_are_never_overwritten_or_removed(book, plan):
    before = book.read_bytes()
    with pytest.raises(OwnershipError, match="is not a sheetsync tab"):
        XlsxBackend(book).apply(plan)
    assert book.read_bytes() == before
    assert os.listdir(book.parent) == ["book.xlsx"]


def test_read_only_workbook_is_refused(book):
    os.chmod(book, 0o444)
    before = book.read_bytes()
    with pytest.raises(BackendError, match="read-only"):
        XlsxBackend(book).apply(small_plan())
    assert book.read_bytes() == before


def test_permission_bits_are_kept(book):
    os.chmod(book, 0o640)
    XlsxBackend(book).apply(small_plan())
    assert stat.S_IMODE(os.stat(book).st_mode) == 0o640


@pytest.mark.parametrize("fail_at", [0, 10, 25])
def test_crash_mid_write_leaves_the_workbook_intact(book, monkeypatch, fail_at):
    """Whichever part is being written (a copied user part, an edited one, a new one), a
    failure leaves the original file as it was and no temporary file behind."""
    before = book.read_bytes()
    calls = []

    def failing(real):
        def write(*args):
            calls.append(args)
            if len(calls) > fail_at:
                raise RuntimeError("disk on fire")
            real(*args)
        return write

    monkeypatch.setattr(surgery, "write_part", failing(surgery.write_part))
    monkeypatch.setattr(surgery, "copy_part", failing(surgery.copy_part))
    with pytest.raises(RuntimeError, match="disk on fire"):
        XlsxBackend(book).apply(small_plan())
    assert len(calls) == fail_at + 1
    assert book.read_bytes() == before
    assert os.listdir(book.parent) == ["book.xlsx"]


def test_crash_while_streaming_rows_leaves_the_workbook_intact(book, monkeypatch):
    before = book.read_bytes()

    def exploding_rows(self):
        yield '<row r="1">'
        raise MemoryError("out of memory half way")

    monkeypatch.setattr(render.TabRenderer, "_rows", exploding_rows)
    with pytest.raises(MemoryError):
        XlsxBackend(book).apply(small_plan())
    assert book.read_bytes() == before
    assert os.listdir(book.parent) == ["book.xlsx"]


@pytest.mark.parametrize("content, message", [
    (b"", "not a valid .xlsx"),
    (b"name,value\nlr,0.1\n", "not a valid .xlsx"),
    (b"PK\x03\x04 truncated zip", "not a valid .xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "password-protected"),
])
def test_unreadable_files_get_a_clear_error(tmp_path, content, message):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(content)
    for action in (lambda b: b.read(["data"]), lambda b: b.apply(small_plan())):
        with pytest.raises(BackendError, match=message) as err:
            action(XlsxBackend(path))
        assert str(path) in str(err.value)
    assert path.read_bytes() == content


def test_missing_file_gets_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="no such workbook"):
        XlsxBackend(tmp_path / "nope.xlsx").read(["data"])
    with pytest.raises(BackendError, match="no such workbook"):
        XlsxBackend(tmp_path / "nope.xlsx").apply(small_plan())


def test_zip_that_is_not_a_workbook_is_refused(tmp_path):
    path = tmp_path / "book.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(BackendError, match="not an Excel workbook"):
        XlsxBackend(path).read([])


def test_corrupt_workbook_xml_is_refused(book):
    rewrite_zip(book, replace={"xl/workbook.xml": b"<workbook><sheets>"})
    before = book.read_bytes()
    with pytest.raises(BackendError, match="corrupt"):
        XlsxBackend(book).apply(small_plan())
    assert book.read_bytes() == before


def test_strict_open_xml_is_refused(book):
    xml = members(book)["xl/workbook.xml"].decode().replace(ooxml.NS_MAIN, ooxml.NS_STRICT)
    rewrite_zip(book, replace={"xl/workbook.xml": xml.encode()})
    before = book.read_bytes()
    with pytest.raises(BackendError, match="Strict Open XML"):
        XlsxBackend(book).apply(small_plan())
    assert book.read_bytes() == before


def test_protected_workbook_structure_is_refused(book):
    xml = members(book)["xl/workbook.xml"].decode()
    xml = re.sub(r"<workbookProtection\s*/>|(?=<bookViews)", '<workbookProtection lockStructure="1"/>', xml, count=1)
    rewrite_zip(book, replace={"xl/workbook.xml": xml.encode()})
    with pytest.raises(BackendError, match="structure is protected"):
        XlsxBackend(book).apply(small_plan())


@pytest.mark.parametrize("name", ["a/b", "x" * 32, "", "History", "what?", "bell\x07", "\ufffe"])
def test_impossible_tab_names_are_refused(book, name):
    before = book.read_bytes()
    with pytest.raises(BackendError, match="cannot be a tab name"):
        XlsxBackend(book).apply(Plan([TabPlan(name)]))
    assert book.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Reading


def test_read_gives_every_tab_and_the_values_asked_for(book):
    snapshot = XlsxBackend(book).read(["data", "experiments", "absent"])
    assert [(t.title, t.index, t.owned) for t in snapshot.tabs] == [
        ("data", 0, False), ("experiments", 1, False), ("my notes", 2, False)]
    assert set(snapshot.values) == {"data", "experiments"}
    assert snapshot.values["experiments"] == [["setting", "basic"], ["lr", 0.1], ["optimizer", "sgd"]]
    assert snapshot.values["data"][1][:2] == [1, 3]
    assert snapshot.values["data"][1][2] == Uncomputed("A2*B2")  # openpyxl wrote no cached value
    assert snapshot.tab("my notes").rows == 1 and snapshot.tab("my notes").cols == 1
    assert snapshot.tab("data").rows == 11


def test_read_cell_kinds(tmp_path):
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "data"
    wb.active["A1"].number_format = "yyyy-mm-dd"
    wb.save(path)
    with_sheet_data(path, "".join([
        '<row r="1"><c r="A1" s="1"><v>45000</v></c><c r="B1" t="inlineStr"><is><t> 3 </t></is></c>'
        '<c r="C1" t="str"><f>"1,5"</f><v>1,5</v></c></row>',
        '<row r="2"><c r="A2" t="e"><f>1/0</f><v>#DIV/0!</v></c><c r="B2" t="b"><v>1</v></c>'
        '<c r="D2"><f>A1*2</f><v>90000</v></c><c r="E2"><f>B9+1</f></c><c r="F2" t="str"><f>""</f><v></v></c>'
        '<c r="G2"><f>B9+2</f><v/></c><c r="H2" t="str"><f>B9</f></c></row>',
        '<row r="4"><c r="C4" t="inlineStr"><is><t>12%</t></is></c><c r="D4"><v>2.5E-3</v></c></row>',
    ]))
    values = XlsxBackend(path).read(["data"]).values["data"]
    assert values[0] == [DateCell(45000.0, "2023-03-15T00:00:00"), " 3 ", "1,5"]
    assert values[1] == [CellError("#DIV/0!"), True, None, 90000, Uncomputed("B9+1"), "",
                         Uncomputed("B9+2"), Uncomputed("B9")]
    assert values[2] == []
    assert values[3] == [None, None, "12%", 0.0025]


def test_owned_mark_survives_a_rename_by_the_user(tmp_path):
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    XlsxBackend(path).apply(Plan([TabPlan("basic steps", texts=[Text(0, 0, "x")])]))
    wb = openpyxl.load_workbook(path)
    wb["basic steps"].title = "my copy of steps"
    wb.save(path)
    tabs = XlsxBackend(path).read([]).tabs
    assert [(t.title, t.owned) for t in tabs] == [("data", False), ("my copy of steps", True)]


# ---------------------------------------------------------------------------------------------
# Creating


def test_create_makes_plain_user_tabs_then_apply_adds_owned_ones(tmp_path):
    path = tmp_path / "new.xlsx"
    backend = XlsxBackend.create(path, {"data": [["x", "y"], [1, 2.5]], "experiments": [["setting", "a"]]})
    assert [(t.title, t.owned) for t in backend.read([]).tabs] == [("data", False), ("experiments", False)]
    backend.apply(small_plan())
    assert openpyxl.load_workbook(path).sheetnames == ["data", "experiments", "basic steps", "runs"]
    with pytest.raises(BackendError, match="already exists"):
        XlsxBackend.create(path, {"data": []})


def test_big_table_streams_and_reads_back(tmp_path):
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    n = 20_000
    values = np.random.default_rng(1).normal(size=(n, 5))
    table = Table([Column(f"c{j}", values[:, j]) for j in range(5)] + [Column("step", np.arange(n))])
    XlsxBackend(path).apply(Plan([steps_tab("small"), TabPlan("big", tables=[table])]))
    rows = XlsxBackend(path).read(["big"]).values["big"]
    assert len(rows) == n + 1
    assert np.array([r[:5] for r in rows[1:]]).tobytes() == values.tobytes()
    assert [r[5] for r in rows[1:]] == list(range(n))


def test_prefixed_workbook_xml_keeps_its_prefixes_and_compatibility_markup(tmp_path):
    """Some writers (the Open XML SDK) prefix the main namespace; Excel marks extensions as
    ignorable. Our edits use the file's own prefixes and leave the rest alone."""
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<x:workbook xmlns:x="{ooxml.NS_MAIN}" xmlns:rel="{ooxml.NS_R}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" mc:Ignorable="x15" '
        'xmlns:x15="http://schemas.microsoft.com/office/spreadsheetml/2010/11/main">'
        '<x:fileVersion appName="xl"/><x:bookViews><x:workbookView activeTab="0"/></x:bookViews>'
        '<x:sheets><x:sheet name="data" sheetId="1" rel:id="rId1"/></x:sheets><x:calcPr calcId="191029"/>'
        "</x:workbook>")
    rewrite_zip(path, replace={"xl/workbook.xml": workbook.encode()})
    XlsxBackend(path).apply(small_plan())
    after = members(path)["xl/workbook.xml"].decode()
    assert after.startswith(workbook[: workbook.index("<x:sheets>")])
    assert '<x:sheet name="basic steps" sheetId="2" rel:id=' in after
    assert "<x:definedNames><x:definedName" in after and after.index("</x:sheets>") < after.index("<x:definedNames>")
    assert after.index("</x:definedNames>") < after.index("<x:calcPr")
    assert openpyxl.load_workbook(path).sheetnames == ["data", "basic steps", "runs"]
    assert [t.owned for t in XlsxBackend(path).read([]).tabs] == [False, True, True]
    XlsxBackend(path).apply(Plan(remove=["runs"]))
    assert openpyxl.load_workbook(path).sheetnames == ["data", "basic steps"]


def test_an_empty_plan_writes_nothing(book):
    before = os.stat(book)
    XlsxBackend(book).apply(Plan())
    assert os.stat(book).st_mtime_ns == before.st_mtime_ns


class _Unseekable:
    """A write-only stream: zipfile then writes data descriptors after each member."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def test_user_parts_are_copied_without_recompression_even_with_data_descriptors(tmp_path):
    source = tmp_path / "plain.xlsx"
    plain_workbook(source, {"data": [["x", "y"]] + [[i, i * 0.5] for i in range(2000)]})
    path = tmp_path / "streamed.xlsx"
    with open(path, "wb") as f, zipfile.ZipFile(_Unseekable(f), "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for name, data in members(source).items():
            out.writestr(name, data)
    with zipfile.ZipFile(path) as z:
        assert all(i.flag_bits & 0x08 for i in z.infolist())
    sheet = "xl/worksheets/sheet1.xml"
    raw_before = _compressed_bytes(path, sheet)
    XlsxBackend(path).apply(small_plan())
    assert _compressed_bytes(path, sheet) == raw_before
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    assert XlsxBackend(path).read(["data"]).values["data"][2000] == [1999, 999.5]


def _compressed_bytes(path, name: str) -> bytes:
    import struct

    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        f.seek(info.header_offset + 30 + sum(struct.unpack("<HH", header[26:30])))
        return f.read(info.compress_size)


def test_a_workbook_saved_by_someone_else_meanwhile_wins(book, monkeypatch):
    """Excel (or another run) saving the file while we write: our write is dropped, theirs kept."""
    theirs = members(book)
    real = surgery.write_part

    def save_by_excel_meanwhile(zf, info, data):
        if not book.with_suffix(".saved").exists():
            book.with_suffix(".saved").write_text("")
            rewrite_zip(book, add={"xl/excel-was-here.xml": b"<x/>"})
        real(zf, info, data)

    monkeypatch.setattr(surgery, "write_part", save_by_excel_meanwhile)
    with pytest.raises(BackendError, match="changed since it was read"):
        XlsxBackend(book).apply(small_plan())
    after = members(book)
    assert after["xl/excel-was-here.xml"] == b"<x/>" and set(after) - set(theirs) == {"xl/excel-was-here.xml"}
    assert sorted(os.listdir(book.parent)) == ["book.saved", "book.xlsx"]


def test_chart_sheets_are_listed_and_kept(tmp_path):
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "data"
    for i in range(1, 6):
        wb.active.append([i, i * i])
    chart_sheet = wb.create_chartsheet("my chart")
    chart = openpyxl.chart.LineChart()
    chart.add_data(openpyxl.chart.Reference(wb["data"], min_col=2, min_row=1, max_row=5))
    chart_sheet.add_chart(chart)
    wb.save(path)
    before = members(path)
    snapshot = XlsxBackend(path).read(["data", "my chart"])
    assert [(t.title, t.owned) for t in snapshot.tabs] == [("data", False), ("my chart", False)]
    assert "my chart" not in snapshot.values
    with pytest.raises(OwnershipError):
        XlsxBackend(path).apply(Plan([TabPlan("My Chart")]))
    XlsxBackend(path).apply(small_plan())
    assert user_parts_unchanged(before, members(path)) == []
    assert openpyxl.load_workbook(path).sheetnames == ["data", "my chart", "basic steps", "runs"]


def test_a_workbook_without_styles_gets_one(tmp_path):
    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    parts = members(path)
    rels = re.sub(r'<Relationship[^>]*styles"[^>]*/>', "", parts["xl/_rels/workbook.xml.rels"].decode())
    rels = re.sub(r'<Relationship[^>]*Target="[^"]*styles.xml"[^>]*/>', "", rels)
    types = re.sub(r'<Override PartName="/xl/styles.xml"[^>]*/>', "", parts["[Content_Types].xml"].decode())
    rewrite_zip(path, replace={"xl/_rels/workbook.xml.rels": rels.encode(), "[Content_Types].xml": types.encode()},
                drop={"xl/styles.xml"})
    assert "styles" not in members(path)["xl/_rels/workbook.xml.rels"].decode()
    XlsxBackend(path).apply(small_plan())
    after = members(path)
    assert "xl/styles.xml" in after and "styles" in after["xl/_rels/workbook.xml.rels"].decode()
    ws = openpyxl.load_workbook(path)["basic steps"]
    assert ws["A1"].font.b and ws["B2"].number_format == "0.000000"


def test_app_xml_of_an_unexpected_shape_is_left_alone(book):
    odd = members(book)["docProps/app.xml"].decode().replace("<vt:i4>3</vt:i4>", "<vt:i4>2</vt:i4>")
    rewrite_zip(book, replace={"docProps/app.xml": odd.encode()})
    XlsxBackend(book).apply(small_plan())
    assert members(book)["docProps/app.xml"].decode() == odd


def test_comment_shapes_never_share_ids_with_the_users(book):
    XlsxBackend(book).apply(Plan([steps_tab("one"), steps_tab("two")]))
    vml = {k: v.decode() for k, v in members(book).items() if k.endswith(".vml")}
    assert len(vml) == 3  # the user's note on data!A1 and one per owned tab
    blocks = [re.search(r'idmap [^>]*data="([\d,]+)"', v).group(1) for v in vml.values()]
    assert len(set(blocks)) == 3
    ids = [i for v in vml.values() for i in re.findall(r'id="(_x0000_s\d+)"', v)]
    assert len(ids) == len(set(ids)) == 1 + 4 + 4  # one user note, four notes per owned tab


def test_pandas_columns_with_missing_values_are_written_blank(tmp_path):
    import pandas as pd

    path = tmp_path / "book.xlsx"
    plain_workbook(path)
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "t": ["a", pd.NA, "c"],
                          "x": [0.5, float("nan"), 2.5]})
    table = Table([Column(name, frame[name]) for name in frame.columns])
    XlsxBackend(path).apply(Plan([TabPlan("t", tables=[table])]))
    assert XlsxBackend(path).read(["t"]).values["t"] == [["n", "t", "x"], [1, "a", 0.5], [], [3, "c", 2.5]]


def test_create_makes_only_xlsx_files(tmp_path):
    with pytest.raises(BackendError, match="creates .xlsx"):
        XlsxBackend.create(tmp_path / "new.xlsm", {"data": []})
    assert not (tmp_path / "new.xlsm").exists()


def test_overlapping_tables_are_refused_and_side_by_side_ones_share_rows(book):
    before = book.read_bytes()
    a = Table([Column("a", [1.0, 2.0])])
    with pytest.raises(BackendError, match="two tables overlap"):
        XlsxBackend(book).apply(Plan([TabPlan("t", tables=[a, Table([Column("b", [3.0])], row=2)])]))
    assert book.read_bytes() == before
    side = Table([Column("b", [3.0, 4.0, 5.0]), Column("c", ["x", "y", "z"])], col=2)
    XlsxBackend(book).apply(Plan([TabPlan("t", tables=[side, a], texts=[Text(4, 0, "end")])]))
    assert XlsxBackend(book).read(["t"]).values["t"] == [
        ["a", None, "b", "c"], [1, None, 3, "x"], [2, None, 4, "y"], [None, None, 5, "z"], ["end"]]
