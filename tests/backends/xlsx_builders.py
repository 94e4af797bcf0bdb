"""Builders of user workbooks for the .xlsx backend tests: no binary fixtures, everything made here.

`rich_workbook` holds what a learner's workbook holds and what openpyxl drops on a re-save: a
chart, comments, data validation, conditional formats, merged cells, global and sheet-local
defined names, and parts added by hand (a text box shape and a picture in a drawing, custom XML,
and for `.xlsm` a VBA project).
"""

from __future__ import annotations

import struct
import zipfile
import zlib

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

import numpy as np

from sheetsync.backends.base import (Chart, Column, Highlight, Plan, RangeRef, Series, Table,
                                     TabPlan, Text)

NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
VBA_BYTES = b"\xd0\xcf\x11\xe0 not really a VBA project, but bytes that must survive \x00\x01\x02"


def png_bytes() -> bytes:
    """A valid 2x2 red PNG, made by hand (Pillow is not a dependency)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def rewrite_zip(path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
                drop: set[str] | None = None) -> None:
    with zipfile.ZipFile(path) as z:
        members = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in members:
            if drop and info.filename in drop:
                continue
            z.writestr(info.filename, (replace or {}).get(info.filename, data))
        for name, data in (add or {}).items():
            z.writestr(name, data)


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def plain_workbook(path, tabs: dict[str, list[list]] | None = None) -> None:
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in (tabs or {"data": [["x", "y"], [1, 2], [2, 4]]}).items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)


def rich_workbook(path, macro: bool = False) -> None:
    """A user workbook with features openpyxl models and parts it does not."""
    wb = Workbook()
    data = wb.active
    data.title = "data"
    data.append(["x", "y", "x*y"])
    for i in range(1, 11):
        data.append([i, 2 * i + 1, f"=A{i + 1}*B{i + 1}"])
    data["A1"].comment = Comment("the inputs, by the user", "learner")
    data["A1"].font = Font(bold=True, color="FF0000")
    data.merge_cells("E1:F2")
    data["E1"] = "merged title"
    validation = DataValidation(type="list", formula1='"sgd,adam"', allow_blank=True)
    data.add_data_validation(validation)
    validation.add("H2")
    data.conditional_formatting.add(
        "B2:B11", CellIsRule(operator="greaterThan", formula=["10"], fill=PatternFill("solid", fgColor="FFEB9C")))
    wb.defined_names["learning_rate"] = DefinedName("learning_rate", attr_text="experiments!$B$2")
    data.defined_names["xs"] = DefinedName("xs", attr_text="data!$A$2:$A$11")
    chart = BarChart()
    chart.title = "user chart"
    chart.add_data(Reference(data, min_col=2, min_row=1, max_row=11), titles_from_data=True)
    data.add_chart(chart, "J2")
    experiments = wb.create_sheet("experiments")
    for row in [["setting", "basic"], ["lr", 0.1], ["optimizer", "sgd"]]:
        experiments.append(row)
    notes = wb.create_sheet("my notes")
    notes["A1"] = "a sheet with a text box and a picture"
    notes.defined_names["local_note"] = DefinedName("local_note", attr_text="'my notes'!$A$1")
    wb.active = 2
    wb.save(path)
    _add_shape_and_picture(path)
    _add_custom_xml(path)
    rewrite_zip(path, replace={"docProps/app.xml": EXCEL_APP_XML.encode()})
    if macro:
        _make_macro_enabled(path)


# docProps/app.xml as Excel writes it: sheet titles, then named ranges, counted in HeadingPairs.
EXCEL_APP_XML = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity><ScaleCrop>false</ScaleCrop><HeadingPairs><vt:vector size="4" baseType="variant"><vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant><vt:variant><vt:i4>3</vt:i4></vt:variant><vt:variant><vt:lpstr>Named Ranges</vt:lpstr></vt:variant><vt:variant><vt:i4>2</vt:i4></vt:variant></vt:vector></HeadingPairs><TitlesOfParts><vt:vector size="5" baseType="lpstr"><vt:lpstr>data</vt:lpstr><vt:lpstr>experiments</vt:lpstr><vt:lpstr>my notes</vt:lpstr><vt:lpstr>learning_rate</vt:lpstr><vt:lpstr>data!xs</vt:lpstr></vt:vector></TitlesOfParts><AppVersion>16.0300</AppVersion></Properties>"""

TEXT_BOX_DRAWING = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="{NS_R}">
<xdr:twoCellAnchor><xdr:from><xdr:col>2</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>2</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>6</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>8</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>
<xdr:sp macro="" textlink=""><xdr:nvSpPr><xdr:cNvPr id="2" name="TextBox 1"/><xdr:cNvSpPr txBox="1"/></xdr:nvSpPr><xdr:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="2438400" cy="1143000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr>
<xdr:txBody><a:bodyPr wrap="square" rtlCol="0" anchor="t"/><a:lstStyle/><a:p><a:r><a:rPr lang="en-US" sz="1100"/><a:t>My text box: remember to try lr=0.01</a:t></a:r></a:p></xdr:txBody></xdr:sp><xdr:clientData/></xdr:twoCellAnchor>
<xdr:oneCellAnchor><xdr:from><xdr:col>8</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>2</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:ext cx="952500" cy="952500"/>
<xdr:pic><xdr:nvPicPr><xdr:cNvPr id="3" name="Picture 2"/><xdr:cNvPicPr><a:picLocks noChangeAspect="1"/></xdr:cNvPicPr></xdr:nvPicPr><xdr:blipFill><a:blip r:embed="rId1"/><a:stretch><a:fillRect/></a:stretch></xdr:blipFill><xdr:spPr><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr></xdr:pic><xdr:clientData/></xdr:oneCellAnchor>
</xdr:wsDr>"""


def _add_shape_and_picture(path) -> None:
    parts = members(path)
    sheet = "xl/worksheets/sheet3.xml"
    xml = parts[sheet].decode()
    if f'xmlns:r="{NS_R}"' not in xml:
        xml = xml.replace("<worksheet ", f'<worksheet xmlns:r="{NS_R}" ', 1)
    xml = xml.replace("</worksheet>", '<drawing r:id="rIdShape"/></worksheet>')
    types = parts["[Content_Types].xml"].decode().replace(
        "</Types>",
        '<Default Extension="png" ContentType="image/png"/>'
        '<Override PartName="/xl/drawings/drawing99.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.drawing+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
            '"http://schemas.openxmlformats.org/package/2006/relationships">{}</Relationships>')
    rewrite_zip(path, replace={sheet: xml.encode(), "[Content_Types].xml": types.encode()}, add={
        "xl/worksheets/_rels/sheet3.xml.rels": rels.format(
            f'<Relationship Id="rIdShape" Type="{NS_R}/drawing" Target="../drawings/drawing99.xml"/>').encode(),
        "xl/drawings/drawing99.xml": TEXT_BOX_DRAWING.encode(),
        "xl/drawings/_rels/drawing99.xml.rels": rels.format(
            f'<Relationship Id="rId1" Type="{NS_R}/image" Target="../media/image99.png"/>').encode(),
        "xl/media/image99.png": png_bytes(),
    })


def _add_custom_xml(path) -> None:
    parts = members(path)
    rels = parts["xl/_rels/workbook.xml.rels"].decode().replace(
        "</Relationships>",
        f'<Relationship Id="rIdCustom" Type="{NS_R}/customXml" Target="../customXml/item1.xml"/></Relationships>')
    rewrite_zip(path, replace={"xl/_rels/workbook.xml.rels": rels.encode()}, add={
        "customXml/item1.xml": b'<?xml version="1.0"?><course xmlns="urn:example:fastai">lesson 5</course>',
    })


def _make_macro_enabled(path) -> None:
    parts = members(path)
    types = parts["[Content_Types].xml"].decode()
    types = types.replace("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                          "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    types = types.replace("</Types>", '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
    rels = parts["xl/_rels/workbook.xml.rels"].decode().replace(
        "</Relationships>",
        '<Relationship Id="rIdVBA" Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" '
        'Target="vbaProject.bin"/></Relationships>')
    rewrite_zip(path, replace={"[Content_Types].xml": types.encode(), "xl/_rels/workbook.xml.rels": rels.encode()},
                add={"xl/vbaProject.bin": VBA_BYTES})


def with_sheet_data(path, sheet_data: str, part: str = "xl/worksheets/sheet1.xml") -> None:
    """Replace a sheet's <sheetData> with hand-written cells (cached values, errors, ...)."""
    xml = members(path)[part].decode()
    start, end = xml.index("<sheetData"), xml.index("</sheetData>") + len("</sheetData>")
    if "<sheetData/>" in xml:
        start, end = xml.index("<sheetData/>"), xml.index("<sheetData/>") + len("<sheetData/>")
    rewrite_zip(path, replace={part: (xml[:start] + f"<sheetData>{sheet_data}</sheetData>" + xml[end:]).encode()})


# ---------------------------------------------------------------------------------------------
# Plans


def steps_tab(name: str = "basic steps", n: int = 30, seed: int = 0) -> TabPlan:
    """A steps-like tab with every feature a plan has: formats, widths, notes, formulas,
    highlights, frozen panes and a line and a scatter chart referring to it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    loss = np.abs(rng.normal(size=n)) * 1e-3
    loss[n // 2] = np.nan
    loss[n // 2 + 1] = np.inf
    table = Table([
        Column("step", np.arange(1, n + 1), number_format="0", width=6),
        Column("x", x, number_format="0.000000", width=12, note="the input x of this row"),
        Column("loss", loss, note="squared error"),
        Column("double x", 2 * x, formulas=[f"=B{r + 2}*2" for r in range(n)]),
        Column("label", ["row"] * n),
    ])
    rows = RangeRef(name, 1, 0, n + 1, 1)
    charts = [
        Chart("line", "loss per step", [Series("loss", RangeRef(name, 1, 2, n + 1, 3))],
              x_title="step", y_title="loss", domain=rows, anchor=(1, 7)),
        Chart("scatter", "x against 2x", [Series("2x", RangeRef(name, 1, 3, n + 1, 4), x=RangeRef(name, 1, 1, n + 1, 2))],
              anchor=(20, 7)),
    ]
    texts = [Text(0, 6, "diagnosis", bold=True, note="why the run diverged"),
             Text(1, 6, 42.5, number_format="0.0"), Text(2, 6, None, formula="=SUM(A2:A4)")]
    highlights = [Highlight(5, 0, 1, 5, note="first diverging step"), Highlight(3, 6, color="C6EFCE")]
    return TabPlan(name, tables=[table], texts=texts, highlights=highlights, charts=charts,
                   frozen_rows=1, frozen_cols=1, kind="steps")


def small_plan() -> Plan:
    return Plan([steps_tab("basic steps"), TabPlan("runs", texts=[Text(0, 0, "run 1")], hidden=True, kind="runs")])
