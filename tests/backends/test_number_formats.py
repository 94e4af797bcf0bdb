"""The write path knows the built-in number formats without importing openpyxl (a run does not
load it); its table must be openpyxl's, id for id, so a workbook's formats resolve as before."""

from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_REVERSE

from sheetsync.backends.xlsx.ooxml import BUILTIN_NUMBER_FORMATS, MINIMAL_STYLES, StyleSheet


def test_the_built_in_number_formats_are_openpyxls():
    assert BUILTIN_NUMBER_FORMATS == BUILTIN_FORMATS


def test_a_built_in_format_is_used_by_its_id_and_only_a_new_one_is_added():
    sheet = StyleSheet(MINIMAL_STYLES)
    assert sheet.formats == BUILTIN_FORMATS_REVERSE  # the sheet adds no formats of its own
    sheet.xf("0.00")
    assert sheet._new["numFmts"] == []  # id 2
    sheet.xf("0.000")
    assert sheet._new["numFmts"] == ['<numFmt numFmtId="164" formatCode="0.000"/>']
