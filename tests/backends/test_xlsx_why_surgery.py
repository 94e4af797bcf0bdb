"""Why the backend edits the package instead of re-saving with openpyxl: what a load-and-save
round trip through openpyxl loses, side by side with what `apply` keeps."""

from __future__ import annotations

import openpyxl

from sheetsync.backends.xlsx import XlsxBackend

from xlsx_builders import VBA_BYTES, members, rich_workbook, small_plan

USER_ONLY_PARTS = ["xl/drawings/drawing99.xml",  # a text box shape and a picture
                   "xl/media/image99.png",
                   "customXml/item1.xml",
                   "xl/vbaProject.bin"]


def test_openpyxl_resave_drops_shapes_pictures_custom_xml_and_macros(tmp_path):
    path, resaved = tmp_path / "book.xlsm", tmp_path / "resaved.xlsm"
    rich_workbook(path, macro=True)
    openpyxl.load_workbook(path).save(resaved)
    after = members(resaved)
    assert [p for p in USER_ONLY_PARTS if p in after] == []
    assert "<vt:lpstr>my notes</vt:lpstr>" not in after["docProps/app.xml"].decode()
    kept_vba = tmp_path / "kept_vba.xlsm"
    openpyxl.load_workbook(path, keep_vba=True).save(kept_vba)
    assert members(kept_vba)["xl/vbaProject.bin"] == VBA_BYTES  # macros need keep_vba...
    assert "xl/drawings/drawing99.xml" not in members(kept_vba)  # ...and shapes are lost anyway


def test_apply_keeps_them(tmp_path):
    path = tmp_path / "book.xlsm"
    rich_workbook(path, macro=True)
    before = members(path)
    XlsxBackend(path).apply(small_plan())
    after = members(path)
    assert {p: after[p] for p in USER_ONLY_PARTS} == {p: before[p] for p in USER_ONLY_PARTS}
    assert after["xl/worksheets/_rels/sheet3.xml.rels"] == before["xl/worksheets/_rels/sheet3.xml.rels"]
