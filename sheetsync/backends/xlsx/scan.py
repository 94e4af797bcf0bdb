"""The reading fast path: `SheetScan` reads a worksheet's cells by scanning its text.

An optimisation only: whatever it cannot vouch for, `WorkbookReader` reads with ElementTree,
with the same values and the same errors (tests/backends/test_xlsx_fast_paths.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable
from xml.etree import ElementTree as ET

import orjson

from ... import budgets
from ...a1 import KNOWN_COLUMNS as _COLUMNS, column_index
from ...errors import BackendError
from ..base import CellValue
from .celltext import _NUMBER_CHARS, _number, excel_unescape
from . import rowscan
from .ooxml import C_TAG as _C, MAIN as _M

if TYPE_CHECKING:
    from .reading import WorkbookReader


class _Unrecognised(Exception):
    """The scan met XML it does not handle: the sheet is read through ElementTree instead."""


_SPACE = "[ \t\r\n]"
# An attribute other than r, double-quoted; ElementTree checks and decodes each distinct set once.
_ATTR = rf'{_SPACE}+(?!r[ \t\r\n=])[A-Za-z_][\w.:-]*="[^"<]*"'
# Any attribute (single quotes too), for the cells and rows handed to ElementTree one by one.
_ANY_ATTR = rf"""{_SPACE}+[^\s=/>]+{_SPACE}*={_SPACE}*(?:"[^"<]*"|'[^'<]*')"""
# Element text that reads back as it stands: no markup, entity, \r (turned into \n by a parser),
# "]]>" or character XML forbids. U+FFFE and U+FFFF, which XML forbids too, are not in this class
# (with them the class costs 2.5 times as much to compile, in every row shape's expression):
# a text holding either goes to ElementTree whole (`_decoded`).
_TEXT = "[^<&\\]\r\x00-\x08\x0b\x0c\x0e-\x1f]"
_SHEET_TOKENS = re.compile(
    rf'<row(?: r="([0-9]+)")?((?:{_ATTR})*)(/?>)'  # 1 r, 2 other attributes, 3 ">" or "/>"
    r"|(</row)[ \t\r\n]*>"  # 4
    rf'|<c(?: r="([A-Z]{{1,3}})[0-9]+")?((?:{_ATTR})*)'  # 5 column letters, 6 other attributes
    rf"(?:(/>|></c>)|><v>({_TEXT}+)</v></c>"  # 7 empty, 8 value
    rf'|><is><t(?: xml:space="preserve")?>({_TEXT}+)</t></is></c>)'  # 9 inline text
    rf"|(<c(?={_SPACE}|/|>)(?:{_ANY_ATTR})*{_SPACE}*(?:/>|>(?:[^<]|<(?!/c{_SPACE}*>))*</c{_SPACE}*>))"  # 10
    rf"|(<row(?={_SPACE}|/|>)(?:{_ANY_ATTR})*{_SPACE}*/?>)"  # 11 any other row start
    rf"|{_SPACE}+"
    r"|([\s\S])"  # 12 anything else: give up
)
_ROOT_TAG = re.compile(rb"<([^\s/>!?]+)(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*>")
_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_SCAN_CHUNK = 1 << 22
_SHAPES_DEEP = 4  # row shapes tried within one chunk before the rest is read token by token
_NOT_NUMBER = str.maketrans("", "", _NUMBER_CHARS + ",")  # deletes what a column of numbers holds


@dataclass
class _RowShape:
    """A regular expression for rows of one shape (group 1 the row number, then each valued
    cell's text; the last group any other text up to a row's end) and how to read them."""

    pattern: re.Pattern
    cells: list[tuple[int, Callable[[str], CellValue]]]  # column, value of the cell's text
    whole: bool  # numbers (no dates) and inline strings in ascending columns: a row is its values
    template: bytes | None = None  # numbers alone in columns 0, 1, ...: the C scanner's template (`rowscan`)


class SheetScan:
    """Reads a worksheet's cells by scanning its text, for the shapes real files are made of.

    Handles rows (with or without r, any other attributes) and cells with r first or absent,
    s/t/other attributes in any order, double-quoted, holding nothing, a plain <v> (numbers,
    shared strings, booleans, errors, dates by style: the values `WorkbookReader._value` gives)
    or a plain inline string. Any other cell (formulas, rich text, entities, single quotes, ...)
    is parsed alone by ElementTree in the sheet's namespace context, and so is any other row
    start tag. Everything else (comments, processing instructions, a non-UTF-8 encoding, a
    prefixed or namespaced sheetData, XML it cannot vouch for) makes `rows` return None: the
    caller then reads the sheet with ElementTree, which also reports malformed XML exactly as
    before. The differential tests in tests/backends/test_xlsx_fast_paths.py hold it to that.
    """

    def __init__(self, reader: "WorkbookReader"):
        self.reader = reader
        self._cell_attrs: dict[str, tuple[str, str]] = {}
        self._row_attrs: set[str] = set()
        self._shapes: dict[tuple, _RowShape] = {}

    def rows(self, part: str) -> list[list[CellValue]] | None:
        try:
            with self.reader.pkg.open(part) as f:
                return self._scan(f)
        except BackendError:  # a limit or a damaged zip: ElementTree would meet it too
            raise
        except Exception:  # noqa: BLE001 - any surprise: ElementTree reads it (and raises as before)
            return None

    def _scan(self, f) -> list[list[CellValue]]:
        head, buf = self._head(f)
        self._context(head)
        rows: list[list[CellValue]] = []
        row = None
        # Chunks since the last </row> are kept in a list and joined once a row ends (appending
        # to one buffer is quadratic when no </row> comes); more than ROW_XML_BYTES without one
        # goes to ElementTree, which reads rows of any shape within the same bounds.
        pending, size = [buf], len(buf)
        clean = 0  # how much of the pending text is known to hold no </sheetData>
        while True:
            chunk = f.read(_SCAN_CHUNK)
            # Each search once over the chunk, and over its seam with the text before it.
            seam = pending[-1][-11:] + chunk[:11]
            end = chunk.find(b"</sheetData>") if chunk else -1
            if end < 0 and chunk and seam.find(b"</sheetData>") >= 0:
                end = 0
            if not chunk or end >= 0 or chunk.find(b"</row>") >= 0 or seam.find(b"</row>") >= 0:
                buf = b"".join(pending) + chunk
                end = buf.find(b"</sheetData>", max(0, clean - 11))
                if end >= 0:
                    raw = buf[:end]
                    row = self._chunk(_decoded(raw), rows, row, raw=raw)
                    tail = buf[end:]
                    break
                if not chunk:
                    raise _Unrecognised("no </sheetData>")
                cut = buf.rfind(b"</row>") + 6
                raw = buf[:cut]
                row = self._chunk(_decoded(raw), rows, row, raw=raw)
                pending, size = [buf[cut:]], len(buf) - cut
                clean = size
            else:
                if clean == size:
                    clean += len(chunk)
                pending.append(chunk)
                size += len(chunk)
                if size > budgets.ROW_XML_BYTES:
                    raise _Unrecognised("a very long row")
        if row is not None:
            raise _Unrecognised("an unclosed row")
        tail += self._rest(f)
        self._check_outside(head + tail)
        while rows and not rows[-1]:
            rows.pop()
        return rows

    @staticmethod
    def _head(f) -> tuple[bytes, bytes]:
        """The XML up to and including <sheetData>, and what was read after it."""
        pieces, size = [], 0
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                raise _Unrecognised("no sheetData")
            pieces.append(chunk)
            size += len(chunk)
            buf = b"".join(pieces[-2:])
            if (start := buf.find(b"<sheetData")) >= 0 and len(buf) >= start + 12:
                buf = b"".join(pieces)
                start = buf.find(b"<sheetData")
                if buf[start:start + 11] != b"<sheetData>":
                    raise _Unrecognised("an empty or unusual sheetData tag")
                return buf[:start + 11], buf[start + 11:]
            if size > budgets.WHOLE_PART_BYTES:
                raise _Unrecognised("a long head")

    @staticmethod
    def _rest(f) -> bytes:
        """What follows sheetData (checked whole with ElementTree), within reason."""
        pieces, size = [], 0
        while chunk := f.read(1 << 20):
            pieces.append(chunk)
            size += len(chunk)
            if size > budgets.WHOLE_PART_BYTES:
                raise _Unrecognised("a long tail")
        return b"".join(pieces)

    def _context(self, head: bytes) -> None:
        """The root's start tag, in which single cells and attribute sets are parsed."""
        encoding = _ENCODING.match(head.removeprefix(b"\xef\xbb\xbf"))
        if encoding and encoding.group(1).lower() != b"utf-8":
            raise _Unrecognised("not UTF-8")
        if b"<!" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _Unrecognised("a DOCTYPE, comment or UTF-16")
        root = _ROOT_TAG.search(head)
        self._open = root.group(0).decode("utf-8")
        self._close = f"</{root.group(1).decode('utf-8')}>"

    def _check_outside(self, document: bytes) -> None:
        """What lies around sheetData is well-formed, and the rows scanned are main-namespace
        rows directly in the one sheetData (ElementTree would see the same rows)."""
        root = ET.fromstring(document)
        holders = list(root.iter(_M + "sheetData"))
        if len(holders) != 1 or root.find(_M + "sheetData") is None or len(holders[0]) \
                or next(root.iter(_M + "row"), None) is not None:
            raise _Unrecognised("sheetData in an unusual place")

    def _alone(self, xml: str) -> ET.Element:
        """One element parsed in the root's namespace context."""
        wrapper = ET.fromstring(self._open + xml + self._close)
        if len(wrapper) != 1:
            raise _Unrecognised("not one element")
        return wrapper[0]

    def _cell_kind(self, attrs: str) -> tuple[str, str]:
        """(t, s) of a cell with these attributes besides r, checked by ElementTree."""
        c = self._alone(f'<c r="A1"{attrs}/>')
        if c.tag != _C:
            raise _Unrecognised("a cell in another namespace")
        self._cell_attrs[attrs] = kind = (c.get("t", "n"), c.get("s", "0"))
        return kind

    def _row_number(self, start_tag: str, rows: list) -> int:
        """The number ElementTree's reading gives a row with this (self-closed) start tag."""
        row = self._alone(start_tag)
        if row.tag != _M + "row":
            raise _Unrecognised("a row in another namespace")
        return int(row.get("r", len(rows) + 1))

    def _chunk(self, text: str, rows: list[list[CellValue]], row: list | None, depth: int = 0,
               raw: bytes | None = None) -> list | None:
        """Place the cells of `text` (whole rows): rows shaped like its last row through one
        regular expression made for that shape; each stretch of other rows (in its place, so
        rows are placed in document order) the same way by the shape of its own last row, up to
        `_SHAPES_DEEP` shapes (a tab sheetsync wrote has a few: its tables end at different
        rows), beyond that token by token (`_tokens`). A big chunk (`raw`, its UTF-8) of number
        rows in sequence is read by the C scanner (`rowscan`) as far as it can vouch for it."""
        shape = self._shape(text)
        if shape is None:
            return self._tokens(text, rows, row)
        if raw is not None and shape.template and row is None and len(raw) >= rowscan.MIN_BYTES:
            start = 0
            read = rowscan.number_rows(raw, 0, shape.template, len(rows) + 1, budgets.SHEET_ROWS - len(rows),
                                       len(shape.cells))
            if read is not None and not read[0]:
                # a first row of another shape (a header): placed on its own, then the scanner after it
                start = raw.find(b"</row>") + 6
                head = raw[:start].decode("utf-8")
                row = self._chunk(head, rows, row, depth + 1)
                text = text[len(head):]
                read = None if row is not None else rowscan.number_rows(
                    raw, start, shape.template, len(rows) + 1, budgets.SHEET_ROWS - len(rows), len(shape.cells))
            if read is not None and read[0]:
                new, end = read
                rows.extend(new)
                self.reader.held(len(new) * len(shape.cells))
                text = text[end - start:]  # the rows read are ASCII: as many characters as bytes
        matches = shape.pattern.findall(text)
        numbers = [m[0] for m in matches]  # "" where the text is not of the shape
        start = 0
        while start < len(matches):
            try:
                stop = numbers.index("", start)
            except ValueError:
                stop = len(matches)
            if stop > start:
                if row is not None:
                    raise _Unrecognised("a row inside a row")
                run = matches[start:stop]
                if shape.whole and _append_rows(run, rows, shape.cells):
                    self.reader.held(len(run) * _width(shape.cells))
                else:
                    _place_rows(run, shape.cells, rows, self.reader.held)
            if stop == len(matches):
                break
            others = stop + 1  # the stretch of rows not of this shape: contiguous text
            while others < len(matches) and not numbers[others]:
                others += 1
            other_text = "".join(m[-1] for m in matches[stop:others])
            if depth < _SHAPES_DEEP and others - stop > 1:
                row = self._chunk(other_text, rows, row, depth + 1)
            else:
                row = self._tokens(other_text, rows, row)
            start = others
        return row

    def _shape(self, text: str) -> "_RowShape | None":
        """The shape of the last row of `text` if it is plain (r on the row and its cells, each
        cell empty, a <v> or an inline string), made into a `_RowShape`; else None."""
        start = text.rfind("<row")
        if start < 0 or not text.endswith("</row>"):
            return None
        first, *cells, last = _SHEET_TOKENS.findall(text[start:]) or [None, None]
        if first is None or not first[0] or first[2] != ">" or not last[3]:
            return None
        parts = [f'{_SPACE}*<row r="([0-9]+)"', re.escape(first[1]), ">"]
        values, key = [], [first[1]]
        row_template = [f'<row r="{rowscan.ROW_NUMBER}"{first[1]}>']
        for _r, _ra, _ro, _rc, letters, attrs, empty, v, inline, *_ in cells:
            if not letters or not (v or inline or empty):
                return None
            form = "v" if v else "is" if inline else empty
            key.append((letters, attrs, form))
            kind, style = self._cell_attrs.get(attrs) or self._cell_kind(attrs)  # checked, empty or not
            parts.append(f'<c r="{letters}[0-9]+"{re.escape(attrs)}')
            row_template.append(f'<c r="{letters}{rowscan.DIGITS}"{attrs}')
            if form == "v":
                parts.append(f"><v>({_TEXT}+)</v></c>")
                row_template.append(f"><v>{rowscan.NUMBER}</v></c>")
            elif form == "is":
                parts.append(f'><is><t(?: xml:space="preserve")?>({_TEXT}+)</t></is></c>')
            else:
                parts.append(re.escape(empty))  # reads as nothing: no text to capture
                row_template.append(empty)
                continue
            if column_index(letters) >= budgets.SHEET_COLS:
                return None  # beyond XFD: `_tokens` hands it to ElementTree, which names it
            values.append((column_index(letters), self._value_of(form, kind, style)))
        key = tuple(key)
        if key not in self._shapes:
            if first[1] not in self._row_attrs:
                self._row_number(f'<row r="1"{first[1]}/>', [])
                self._row_attrs.add(first[1])
            columns = [c for c, _ in values]
            whole = bool(values) and all(f in _BY_COLUMN for _, f in values) \
                and all(a < b for a, b in zip(columns, columns[1:]))
            pattern = re.compile("".join(parts) + r"</row>|([\s\S]*?</row>|[\s\S]+)")
            numbers_only = whole and all(f is _number for _, f in values) \
                and columns == list(range(len(columns)))  # no inline strings, no dates, no gaps
            self._shapes[key] = _RowShape(pattern, values, whole,
                                          rowscan.template("".join(row_template) + "</row>") if numbers_only else None)
        return self._shapes[key]

    def _value_of(self, form: str, kind: str, style: str) -> Callable[[str], CellValue]:
        """What `WorkbookReader._value` makes of a cell of this form, kind and style, given the
        text of its <v> or inline string."""
        reader = self.reader
        if form == "is":
            return excel_unescape if kind == "inlineStr" else lambda text: None
        if kind == "n":
            if reader._dates and style in reader._dates:
                return lambda text: reader._date(_number(text))
            return _number
        if kind == "inlineStr":
            return lambda text: None
        return lambda text: reader._typed(kind, text, style)

    def _tokens(self, text: str, rows: list[list[CellValue]], row: list | None) -> list | None:
        """Place the cells of `text` (whole rows) into `rows`; returns the row still open."""
        reader = self.reader
        cell_attrs, row_attrs, columns = self._cell_attrs, self._row_attrs, _COLUMNS
        dates, date, typed = reader._dates, reader._date, reader._typed
        held, max_cols, max_rows = 0, budgets.SHEET_COLS, budgets.SHEET_ROWS
        for r, rattrs, ropen, rclose, letters, attrs, empty, v, inline, cell, other_row, bad \
                in _SHEET_TOKENS.findall(text):
            if v or inline:
                kind, style = cell_attrs.get(attrs) or self._cell_kind(attrs)
                if not v:
                    value = excel_unescape(inline) if kind == "inlineStr" else None
                elif kind == "n":  # as _number and WorkbookReader._value, inline: the hot path
                    if v.strip(_NUMBER_CHARS):
                        raise _Unrecognised("not a plain number")  # ElementTree names the cell
                    value = float(v)
                    if value.is_integer() and v.lstrip("-").isdigit():
                        value = int(v)
                    if dates and style in dates:
                        value = date(value)
                elif kind == "inlineStr":
                    value = None
                else:
                    value = typed(kind, v, style)
                if value is None:
                    continue
                if letters:
                    col = columns.get(letters)
                    if col is None:
                        col = column_index(letters)
                else:
                    col = len(row)
                if col >= max_cols:
                    raise _Unrecognised("a column beyond XFD")
            elif empty:
                if attrs not in cell_attrs:
                    self._cell_kind(attrs)
                continue
            elif ropen:
                if row is not None:
                    raise _Unrecognised("a row inside a row")
                if rattrs not in row_attrs:
                    self._row_number(f'<row r="1"{rattrs}/>', rows)
                    row_attrs.add(rattrs)
                number = int(r) if r else len(rows) + 1
                if not 0 < number <= max_rows:
                    raise _Unrecognised("a row beyond the last")
                while len(rows) < number:
                    rows.append([])
                row = rows[number - 1]
                if ropen == "/>":
                    held += len(row)
                    if held > 65536:
                        reader.held(held)
                        held = 0
                    row = None
                continue
            elif rclose:
                if row is None:
                    raise _Unrecognised("a row closed twice")
                held += len(row)
                if held > 65536:
                    reader.held(held)
                    held = 0
                row = None
                continue
            elif cell:
                c = self._alone(cell)
                if c.tag != _C:
                    continue  # ElementTree's reading skips it too
                value = reader._value(c)
                if value is None:
                    continue
                ref = c.get("r")
                letters = ref.rstrip("0123456789") if ref else ""
                if len(letters.replace("$", "")) > 3:
                    raise _Unrecognised("a column beyond XFD")
                col = column_index(letters) if ref else len(row)
                if col >= max_cols:
                    raise _Unrecognised("a column beyond XFD")
            elif other_row:
                if row is not None:
                    raise _Unrecognised("a row inside a row")
                closed = other_row.endswith("/>")
                number = self._row_number(other_row if closed else other_row[:-1] + "/>", rows)
                if not 0 < number <= max_rows:
                    raise _Unrecognised("a row beyond the last")
                while len(rows) < number:
                    rows.append([])
                row = rows[number - 1]
                if closed:
                    held += len(row)
                    row = None
                continue
            elif bad:
                raise _Unrecognised(f"unexpected {bad!r}")
            else:
                continue  # white space between elements
            n = len(row)
            if col == n:
                row.append(value)
            elif col > n:
                row.extend([None] * (col - n))
                row.append(value)
            else:
                row[col] = value
        reader.held(held)
        return row


def _decoded(raw: bytes) -> str:
    """The text of whole rows, without U+FFFE or U+FFFF (which `_TEXT` does not exclude; an
    ASCII text is known to hold neither without a search)."""
    text = raw.decode("utf-8")
    if "\ufffe" in text or "\uffff" in text:
        raise _Unrecognised("a character XML forbids")
    return text


def _append_rows(run: list[tuple[str, ...]], rows: list[list[CellValue]],
                 cells: list[tuple[int, Callable[[str], CellValue]]]) -> bool:
    """Rows of numbers and texts in ascending columns appended in bulk, a column at a time (the
    columns between them None, as placing each cell in a new row leaves them), if they follow
    the last row without a gap (False, nothing done, if not)."""
    columns = list(zip(*run))
    first = len(rows) + 1
    if columns[0] != tuple(map(str, range(first, first + len(run)))) \
            or first + len(run) - 1 > budgets.SHEET_ROWS:
        return False
    values = [_BY_COLUMN[value_of](texts) for (_, value_of), texts in zip(cells, columns[1:-1])]
    if len(cells) < _width(cells):
        by_column, gap = {col: column for (col, _), column in zip(cells, values)}, [None] * len(run)
        values = [by_column.get(col, gap) for col in range(_width(cells))]
    rows.extend(map(list, zip(*values)))
    return True


def _width(cells: list[tuple[int, Callable[[str], CellValue]]]) -> int:
    """The row slots a row of these cells (ascending columns, no value None) holds."""
    return cells[-1][0] + 1


def _numbers(texts: tuple[str, ...]) -> list[int | float]:
    """`_number` of each text, a column at a time: orjson reads a column of JSON numbers the way
    `_number` does (floats exactly, integers as ints) at a third of float()'s cost. Texts it
    would read otherwise (spaces, ``+1``, ``.5``, ``1e400``, integers beyond 64 bits, a comma
    inside a text) go to `_number` one by one."""
    joined = ",".join(texts)
    if not joined.translate(_NOT_NUMBER):
        try:
            numbers = orjson.loads("[" + joined + "]")
        except orjson.JSONDecodeError:
            pass
        else:  # orjson reads an integer beyond 64 bits as a float: none of that size came
            if len(numbers) == len(texts) and max(map(abs, numbers)) < 2.0 ** 63:
                return numbers
    return list(map(_number, texts))


def _place_rows(run: list[tuple[str, ...]], cells: list[tuple[int, Callable[[str], CellValue]]],
                rows: list[list[CellValue]], count: Callable[[int], None]) -> None:
    """Rows of one shape placed as `WorkbookReader._row` places them, cell by cell; `count`
    is told the row slots they hold."""
    held = 0
    texts = list(zip(*run))
    columns = [col for col, _ in cells]
    values = [_BY_COLUMN[value_of](column) if value_of in _BY_COLUMN else list(map(value_of, column))
              for (_, value_of), column in zip(cells, texts[1:-1])]  # a column at a time, as `_append_rows`
    for number, *row_values in zip(map(int, texts[0]), *values):
        if not 0 < number <= budgets.SHEET_ROWS:
            raise _Unrecognised("a row beyond the last")
        while len(rows) < number:
            rows.append([])
        target = rows[number - 1]
        for col, value in zip(columns, row_values):
            if value is None:
                continue
            n = len(target)
            if col == n:
                target.append(value)
            elif col > n:
                target.extend([None] * (col - n))
                target.append(value)
            else:
                target[col] = value
        held += len(target)
        if held > 65536:
            count(held)
            held = 0
    count(held)


# What a whole column of cells read the same way gives, as `_RowShape.cells` reads one cell.
_BY_COLUMN: dict[Callable[[str], CellValue], Callable[[tuple[str, ...]], list]] = {
    _number: _numbers,
    excel_unescape: lambda texts: list(map(excel_unescape, texts)) if "_x" in "".join(texts) else list(texts),
}
