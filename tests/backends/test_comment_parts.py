"""A tab's notes (comments.xml and its VML) are written from templates, so a run does not load
openpyxl; they must be the bytes openpyxl's CommentSheet wrote (kept here as the oracle)."""

import re

import pytest
from openpyxl.comments.comment_sheet import CommentRecord, CommentSheet
from openpyxl.xml.functions import tostring

from sheetsync.backends.base import col_letter
from sheetsync.backends.xlsx.celltext import excel_escape
from sheetsync.backends.xlsx.render import comment_parts


def openpyxl_parts(notes, blocks):
    """comment_parts as it was: openpyxl's serialisers, its shape ids moved into our blocks."""
    records = []
    for r, c, note in notes:
        record = CommentRecord(ref=f"{col_letter(c)}{r + 1}", author="sheetsync", height=120, width=240)
        record.text.t = excel_escape(note)
        records.append(record)
    sheet = CommentSheet.from_comments(records)
    vml = sheet.write_shapes().decode("utf-8")
    vml = re.sub(r'(<(?:\w+:)?idmap\b[^>]*\bdata=")1"', lambda m: m.group(1) + ",".join(map(str, blocks)) + '"', vml)
    first_id = blocks[0] * 1024
    vml = re.sub(r"_x0000_s(\d+)", lambda m: f"_x0000_s{first_id + int(m.group(1)) - 1024}", vml)
    return tostring(sheet.to_tree()), vml.encode("utf-8")


NOTES = ["the stability margin: lr × curvature", "  leading", "trailing\n", "a & b < c > d \"q\" 'r'", "\t tab",
         "line 1\nline 2", "ünïcödé → ✓", "_x0041_ looks escaped", "bell \x07 and \x1f", "   ", "x\r\ny", "\u00a0nbsp"]


@pytest.mark.parametrize("blocks", [[1], [2, 3], [40]])
def test_notes_are_written_as_openpyxl_wrote_them(blocks):
    notes = [(k % 7, k * 3, text) for k, text in enumerate(NOTES)]
    assert comment_parts(notes, blocks) == openpyxl_parts(notes, blocks)


def test_one_note():
    assert comment_parts([(0, 0, "n")], [5]) == openpyxl_parts([(0, 0, "n")], [5])
