"""Appending rows to an owned log tab (the run log: `TabPlan.append_after`) without rewriting it.

A log's worksheet part is written (`render`, with `zipstream.SEGMENT` marks) as one deflate
stream in three segments, each ended by a sync flush and none reaching back into the one before:

    head    ``<?xml …><worksheet …><dimension …/>…<sheetData>``
    rows    the rows written whole (2 MB blocks primed by each other, as every part)
    recent  the rows appended since the rows segment last grew, then ``</sheetData>…</worksheet>``

followed by the empty final block. An append finds the head (the first sync mark whose prefix
inflates to text ending in ``<sheetData>``) and the recent segment (the last sync mark from which
the rest inflates to ``[<row…]</sheetData>…</worksheet>`` and ends the stream), re-deflates those
two small pieces with the dimension moved and the new rows added, and copies the compressed rows
between as they are: its cost is that of the recent rows (at most RECENT_TEXT bytes of text;
beyond that they are sealed into the rows segment), not of the log. The member's CRC follows by
CRC arithmetic (`zipstream.crc32_combine`): the middle's CRC is worked out from the old one and
the two ends, never by reading the middle.

A part not laid out that way (an older sheetsync's, or one Excel or LibreOffice saved) is
inflated whole once, the rows inserted before ``</sheetData>``, and written in segments, so the
next append is cheap. Appended rows continue the numbering after the last row the part holds;
nothing else of the tab changes. The cell XML is `render`'s, so an appended log reads back
cell for cell as the same log written whole.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from dataclasses import dataclass

from ... import budgets
from ...a1 import column_index
from ...errors import BackendError
from ..base import TabPlan, col_letter
from . import ooxml
from .render import cell_xml, _row_xml
from .zipstream import (FINAL_BLOCK, SEGMENT, SYNC_MARK, _deflate_block, copy_info, crc32_combine,
                        crc32_uncombine, write_compressed, write_part)

RECENT_TEXT = 1 << 16  # bytes of appended rows re-deflated per append before they are sealed
HEAD_WINDOW = 1 << 16  # where the head segment's end is looked for
TAIL_WINDOW = 1 << 20  # … and the recent segment's start, from the member's end

_DIMENSION = re.compile(rb'<dimension ref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"\s*/>')
_ROW_NUMBER = re.compile(rb'<row\b[^>]*?\sr="(\d+)"')
_SHEET_DATA = re.compile(rb"<sheetData\s*(/?)>")


@dataclass
class LogStream:
    """A log part in its three segments (see the module's docstring)."""

    head: bytes  # text, up to and including <sheetData>
    middle: bytes  # compressed, kept as it is
    middle_crc: int
    middle_len: int
    recent: bytes  # text: the rows appended since the rows segment last grew
    end: bytes  # text: </sheetData> to the end


class Append:
    """One owned tab's appended rows: its part's new member, written in place of the old."""

    def __init__(self, plan: TabPlan, part: str, styles: ooxml.StyleSheet):
        if len(plan.tables) != 1 or plan.tables[0].row or plan.tables[0].col or plan.texts or plan.highlights \
                or plan.charts or plan.color_scales:
            raise BackendError(f"tab {plan.name!r}: only one table at A1 can be appended to")
        self.plan, self.part = plan, part
        self.table = plan.tables[0]
        self.styles = [styles.xf(c.number_format, wrap=c.wrap) for c in self.table.columns]

    def rows_xml(self, first: int) -> bytes:
        """The table's rows as <row> elements, the first numbered `first` (1-based)."""
        out = []
        for i in range(self.table.n_rows):
            r = first + i
            cells = "".join(cell_xml(f"{col_letter(j)}{r}", c.values[i], style)
                            for j, (c, style) in enumerate(zip(self.table.columns, self.styles)))
            out.append(_row_xml(r - 1, [(0, cells)]))
        return "".join(out).encode("utf-8")

    def write(self, pkg: ooxml.Package, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        data = raw_member(pkg.zip, info)
        stream = split(data, info.CRC, info.file_size) if data is not None else None
        last = last_row(stream.head, stream.recent) if stream is not None else None
        if stream is None or last is None:
            self._write_whole(pkg, dst, info)
            return
        rows = self.rows_xml(last + 1)
        head = with_dimension(stream.head, last + self.table.n_rows, len(self.table.columns))
        recent = stream.recent + rows
        sealed, tail = (recent, stream.end) if len(recent) > RECENT_TEXT else (b"", recent + stream.end)
        pieces = [_deflate_block(head, b""), stream.middle]
        pieces += [_deflate_block(sealed, b"")] if sealed else []
        pieces += [_deflate_block(tail, b""), FINAL_BLOCK]
        crc = crc32_combine(zlib.crc32(head), stream.middle_crc, stream.middle_len)
        crc = zlib.crc32(tail, zlib.crc32(sealed, crc))
        write_compressed(dst, info, pieces, crc, len(head) + stream.middle_len + len(sealed) + len(tail))

    def _write_whole(self, pkg: ooxml.Package, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        """A part not in segments: inflated whole, the rows inserted, written in segments."""
        if info.file_size > budgets.WHOLE_PART_BYTES:
            raise BackendError(f"{pkg.path}: the '{self.plan.name}' tab is too big to add to "
                               f"({info.file_size:,} bytes of XML); delete the tab to start it afresh")
        text = pkg.read(self.part)
        opening = _SHEET_DATA.search(text)
        if opening is None:
            raise BackendError(f"{pkg.path}: the '{self.plan.name}' tab has no <sheetData> sheetsync "
                               "can add rows to; delete the tab to start it afresh")
        if opening.group(1):  # <sheetData/>: no rows at all
            head, rows, end = text[:opening.start()] + b"<sheetData>", b"", b"</sheetData>" + text[opening.end():]
        else:
            close = text.rfind(b"</sheetData>")
            head, rows, end = text[:opening.end()], text[opening.end():close], text[close:]
        last = _last_row_number(rows)
        if last is None:  # rows without numbers: count them
            last = len(re.findall(rb"<row\b", rows))
        new = self.rows_xml(last + 1)
        head = with_dimension(head, last + self.table.n_rows, len(self.table.columns))
        write_part(dst, copy_info(info), lambda: [head, SEGMENT, rows, SEGMENT, new, end])


def raw_member(src: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """A deflated member's compressed bytes (None: stored, encrypted, or too big)."""
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1 \
            or info.compress_size > budgets.WHOLE_PART_BYTES:
        return None
    src.fp.seek(info.header_offset)
    header = src.fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    src.fp.seek(info.header_offset + 30 + name_len + extra_len)
    data = src.fp.read(info.compress_size)
    return data if len(data) == info.compress_size else None


def split(data: bytes, crc: int, size: int) -> LogStream | None:
    """The part's segments, or None when it is not laid out in them."""
    head_end, head = _head(data)
    if head is None:
        return None
    found = _tail(data, head_end)
    if found is None:
        return None
    tail_start, tail = found
    middle_len = size - len(head) - len(tail)
    if middle_len < 0:
        return None
    close = tail.index(b"</sheetData>")
    crc_head_middle = crc32_uncombine(crc, zlib.crc32(tail), len(tail))
    middle_crc = crc_head_middle ^ crc32_combine(zlib.crc32(head), 0, middle_len)
    return LogStream(head, data[head_end:tail_start], middle_crc, middle_len, tail[:close], tail[close:])


def _head(data: bytes) -> tuple[int, bytes | None]:
    at = data.find(SYNC_MARK, 0, HEAD_WINDOW)
    while at >= 0:
        end = at + len(SYNC_MARK)
        d = zlib.decompressobj(-15)
        try:
            text = d.decompress(data[:end])
        except zlib.error:
            text = b""
        if text.endswith(b"<sheetData>") and not d.eof:
            return end, text
        at = data.find(SYNC_MARK, at + 1, HEAD_WINDOW)
    return 0, None


def _tail(data: bytes, after: int) -> tuple[int, bytes] | None:
    if not data.endswith(SYNC_MARK + FINAL_BLOCK):
        return None
    lowest = max(after, len(data) - TAIL_WINDOW)
    at = data.rfind(SYNC_MARK, lowest, len(data) - len(FINAL_BLOCK) - len(SYNC_MARK))
    while at >= lowest:
        start = at + len(SYNC_MARK)
        d = zlib.decompressobj(-15)
        try:
            text = d.decompress(data[start:])
        except zlib.error:
            text = b""
        if d.eof and not d.unused_data and (text.startswith(b"<row ") or text.startswith(b"</sheetData>")) \
                and b"</sheetData>" in text and text.endswith(b"</worksheet>"):
            return start, text
        at = data.rfind(SYNC_MARK, lowest, at)
    return None


def last_row(head: bytes, recent: bytes) -> int | None:
    """The number of the part's last row: the recent rows' last, else the dimension's."""
    if recent:
        return _last_row_number(recent)
    m = _DIMENSION.search(head)
    if m is None:
        return None
    return int(m.group(4) or m.group(2))


def _last_row_number(rows: bytes) -> int | None:
    """The r of the last <row> in `rows` (None: no numbered row)."""
    at = max(rows.rfind(b"<row "), rows.rfind(b"<row>"))
    m = _ROW_NUMBER.match(rows, at) if at >= 0 else None
    return int(m.group(1)) if m else None


def with_dimension(head: bytes, rows: int, cols: int) -> bytes:
    """The head with its dimension reaching row `rows` and at least column `cols`."""
    m = _DIMENSION.search(head)
    if m is None:
        return head
    first_col, first_row = m.group(1).decode(), m.group(2).decode()
    last_col = (m.group(3) or m.group(1)).decode()
    if column_index(last_col) < cols - 1:
        last_col = col_letter(cols - 1)
    ref = f'<dimension ref="{first_col}{first_row}:{last_col}{rows}"/>'.encode()
    return head[:m.start()] + ref + head[m.end():]
