"""Hostile and corrupt workbooks through the server: 422 with the reader's one-line message,
never 500."""

from __future__ import annotations

import zipfile

import pytest
from server_support import auth

H = auth()

XXE = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
       '<row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t></is></c></row></sheetData></worksheet>')
FAR = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
       '<row r="2000000000"><c r="A2000000000"><v>1</v></c></row></sheetData></worksheet>')
LOOSE = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
         '<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c><c r="B1" t="inlineStr"><is><t>y</t></is></c></row>'
         '<row r="2"><c r="A2"><v>1_000</v></c><c r="B2"><v>1</v></c></row></sheetData></worksheet>')


def with_data_sheet(src, dst, xml: str) -> None:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        names = {n: n for n in z.namelist()}
        wb = z.read("xl/workbook.xml").decode()
        assert 'name="data"' in wb
        for name in names:
            data = z.read(name)
            if name == "xl/worksheets/sheet1.xml":
                data = xml.encode()
            out.writestr(name, data)


@pytest.mark.parametrize("xml, fragment", [(XXE, "xl/worksheets/sheet1.xml"), (FAR, "row 2,000,000,000"),
                                           (LOOSE, "data!A2")], ids=["xxe", "far-row", "loose-number"])
def test_a_corrupt_workbook_is_a_422_naming_the_part_or_cell(client, folder, xml, fragment):
    with_data_sheet(folder / "demo.xlsx", folder / "bad.xlsx", xml)
    r = client.post("/v1/runs", json={"spreadsheet": "bad.xlsx"}, headers=H)
    assert r.status_code == 422, r.json
    assert "corrupt" in r.json["error"]["message"] and fragment in r.json["error"]["message"]
