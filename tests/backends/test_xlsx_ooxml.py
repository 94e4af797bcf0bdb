"""The package-level text edits on parts shaped the way Excel writes them (extension lists,
markup-compatibility blocks, differential formats), checked on the text itself."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from sheetsync.backends.xlsx import ooxml

EXCEL_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
    f'<workbook xmlns="{ooxml.NS_MAIN}" xmlns:r="{ooxml.NS_R}" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" mc:Ignorable="x15 xr xr6 xr10 xr2" '
    'xmlns:x15="http://schemas.microsoft.com/office/spreadsheetml/2010/11/main" '
    'xmlns:xr="http://schemas.microsoft.com/office/spreadsheetml/2014/revision" '
    'xmlns:xr6="http://schemas.microsoft.com/office/spreadsheetml/2016/revision6" '
    'xmlns:xr10="http://schemas.microsoft.com/office/spreadsheetml/2016/revision10" '
    'xmlns:xr2="http://schemas.microsoft.com/office/spreadsheetml/2015/revision2">'
    '<fileVersion appName="xl" lastEdited="7" lowestEdited="7" rupBuild="27328"/>'
    '<workbookPr defaultThemeVersion="166925"/>'
    '<mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
    '<mc:Choice Requires="x15"><x15ac:absPath url="C:\\Users\\me\\" '
    'xmlns:x15ac="http://schemas.microsoft.com/office/spreadsheetml/2010/11/ac"/></mc:Choice></mc:AlternateContent>'
    '<xr:revisionPtr revIDLastSave="0" documentId="8_{1}" xr6:coauthVersionLast="47" xr6:coauthVersionMax="47" '
    'xr10:uidLastSave="{00000000-0000-0000-0000-000000000000}"/>'
    '<bookViews><workbookView xWindow="-120" yWindow="-120" windowWidth="29040" windowHeight="15840" '
    'activeTab="3" xr2:uid="{A1}"/></bookViews>'
    '<sheets><sheet name="data" sheetId="1" r:id="rId1"/><sheet name="old steps" sheetId="4" r:id="rId2"/>'
    '<sheet name="experiments" sheetId="2" r:id="rId3"/><sheet name="notes" sheetId="3" r:id="rId4"/></sheets>'
    '<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="3" hidden="1">notes!$A$1:$B$9'
    '</definedName><definedName name="lr">experiments!$B$2</definedName>'
    '<definedName name="_sheetsync_owned" localSheetId="1" hidden="1">\'old steps\'!$A$1</definedName>'
    '</definedNames><calcPr calcId="191029"/>'
    '<extLst><ext uri="{140A7094-0E35-4892-8432-C4D2E57EDEB5}" '
    'xmlns:x15="http://schemas.microsoft.com/office/spreadsheetml/2010/11/main">'
    '<x15:workbookPr chartTrackingRefBase="1"/></ext></extLst></workbook>')


def test_excel_workbook_edit_keeps_everything_around_the_sheet_list():
    wb = ooxml.WorkbookXml(EXCEL_WORKBOOK, "book.xlsx", "xl/workbook.xml")
    assert [s.name for s in wb.sheets] == ["data", "old steps", "experiments", "notes"]
    kept = [0, 2, 3]
    position = {old: new for new, old in enumerate(kept)}
    sheets = [wb.sheets[i].xml for i in kept] + [
        ooxml.sheet_element(wb.main_prefix(), wb.r_prefix(), "new steps", 5, "rId9", hidden=False)]
    names = [wb.defined_names[0].xml.replace('localSheetId="3"', 'localSheetId="2"'), wb.defined_names[1].xml,
             ooxml.defined_name_element("", "_sheetsync_owned", 3, "'new steps'!$A$1")]
    text = wb.rewrite(sheets, names, position, full_calc=True)
    ET.fromstring(text.encode())  # still well-formed
    assert text[: text.index("<bookViews>")] == EXCEL_WORKBOOK[: EXCEL_WORKBOOK.index("<bookViews>")]
    assert text[text.index("<extLst>"):] == EXCEL_WORKBOOK[EXCEL_WORKBOOK.index("<extLst>"):]
    assert 'activeTab="2"' in text and 'xr2:uid="{A1}"' in text  # "notes" stays the active tab
    assert '<sheet name="new steps" sheetId="5" r:id="rId9"/>' in text
    assert '<calcPr calcId="191029" fullCalcOnLoad="1"/>' in text
    again = ooxml.WorkbookXml(text, "book.xlsx", "xl/workbook.xml")
    assert [(d.name, d.local) for d in again.defined_names] == [
        ("_xlnm._FilterDatabase", 2), ("lr", None), ("_sheetsync_owned", 3)]


EXCEL_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
    f'<styleSheet xmlns="{ooxml.NS_MAIN}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'mc:Ignorable="x14ac x16r2" xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.0000"/></numFmts>'
    '<fonts count="2" x14ac:knownFonts="1"><font><sz val="11"/><color theme="1"/><name val="Aptos Narrow"/>'
    '<family val="2"/><scheme val="minor"/></font><font><i/><sz val="11"/><name val="Aptos Narrow"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="1" fillId="0" borderId="0" xfId="0" applyNumberFormat="1">'
    '<alignment horizontal="center"/></xf></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '<dxfs count="1"><dxf><font><b/><color rgb="FF9C0006"/></font><fill><patternFill><bgColor rgb="FFFFC7CE"/>'
    '</patternFill></fill></dxf></dxfs><tableStyles count="0" defaultTableStyle="TableStyleMedium2"/>'
    '<extLst><ext uri="{EB79DEF2-80B8-43e5-95BD-54CBDDF9020C}" '
    'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
    '<x14:slicerStyles defaultSlicerStyle="SlicerStyleLight1"/></ext></extLst></styleSheet>')


def test_excel_styles_get_appended_entries_and_nothing_else_moves():
    sheet = ooxml.StyleSheet(EXCEL_STYLES)
    assert sheet.xf("0.0000") != 1  # same format, but xf 1 is italic and centred: a new xf
    bold = sheet.xf(None, bold=True)
    filled = sheet.xf("0.000000", fill="FFC7CE")
    assert sheet.xf(None, bold=True) == bold and sheet.xf(None) == 0
    text = sheet.render()
    ET.fromstring(text.encode())
    assert re.search(r'<fonts count="3"', text) and re.search(r'<fills count="3">', text)
    assert '<cellXfs count="5">' in text and '<numFmts count="2">' in text
    assert '<numFmt numFmtId="165" formatCode="0.000000"/>' in text
    assert '<font><b/><sz val="11"/><color theme="1"/><name val="Aptos Narrow"/>' in text  # the user's font, bold
    assert text[text.index("<dxfs"):] == EXCEL_STYLES[EXCEL_STYLES.index("<dxfs"):]
    user_xfs = re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", EXCEL_STYLES, re.S).group(1)
    assert re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", text, re.S).group(1).startswith(user_xfs)
    assert (bold, filled) == (3, 4)
    assert ooxml.StyleSheet(text).xf("0.000000", fill="FFC7CE") == 4  # a second run reuses it
    reread = ooxml.StyleSheet(text)
    reread.xf(None, bold=True)
    reread.xf("0.000000", fill="FFC7CE")
    assert not reread.changed()


def test_parts_shared_with_something_that_stays_are_kept():
    graph = {
        "": ["xl/workbook.xml"],
        "xl/workbook.xml": ["xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"],
        "xl/worksheets/sheet1.xml": ["xl/drawings/drawing1.xml"],  # the user's
        "xl/worksheets/sheet2.xml": ["xl/drawings/drawing2.xml"],  # ours, being replaced
        "xl/drawings/drawing1.xml": ["xl/media/image1.png"],
        "xl/drawings/drawing2.xml": ["xl/media/image1.png", "xl/charts/chart2.xml"],
    }
    candidates = ooxml.closure(["xl/worksheets/sheet2.xml"], graph)
    dropped = ooxml.unreachable(candidates, graph, cut={"xl/worksheets/sheet2.xml"})
    assert dropped == {"xl/worksheets/sheet2.xml", "xl/drawings/drawing2.xml", "xl/charts/chart2.xml"}


def test_content_types_and_rels_edits():
    types = (f'<?xml version="1.0"?><Types xmlns="{ooxml.NS_CT}"><Default Extension="xml" ContentType="application/xml"/>'
             '<Override PartName="/xl/worksheets/Sheet2.xml" ContentType="x"/><Override PartName="/xl/a.xml" ContentType="y"/></Types>')
    edited = ooxml.edit_content_types(types, {"xl/worksheets/sheet2.xml"}, [("xl/new.xml", "z")])
    assert "Sheet2" not in edited and '/xl/a.xml' in edited
    assert '<Override PartName="/xl/new.xml" ContentType="z"/></Types>' in edited
    assert 'Extension="rels"' in edited  # added when missing
    rels = (f'<Relationships xmlns="{ooxml.NS_PKG_RELS}"><Relationship Id="rId1" Type="t" Target="a.xml"/>'
            '<Relationship Id="rId2" Type="t" Target="b.xml"/></Relationships>')
    edited = ooxml.edit_rels(rels, {"rId2"}, [("rId3", "t", "c.xml")])
    assert [m for m in re.findall(r'Id="(\w+)"', edited)] == ["rId1", "rId3"]
