"""Reading a workbook: `WorkbookReader` turns the wanted tabs into a `Snapshot`.

Each sheet is read in one streaming pass: the text scan (`scan.SheetScan`, the fast path) for
the cell shapes real files hold, ElementTree (`WorkbookReader.cells_by_elementtree`) for any
other cell and for any sheet the scan cannot vouch for; both give the same values
(tests/backends/test_xlsx_fast_paths.py). openpyxl is not used to read: it gives either a
formula cell's cached value or its formula per pass, never both, and reads a formula without a
cached value as empty; only its helpers for date formats and serial dates are."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import re
from xml.etree import ElementTree as ET

from ... import budgets
from ...a1 import KNOWN_COLUMNS as _COLUMNS, column_index
from ...errors import BackendError
from ..base import CellError, CellValue, DateCell, Snapshot, TabInfo, Uncomputed, col_letter
from . import ooxml
from .celltext import _number, excel_unescape
from .ooxml import C_TAG as _C, F_TAG as _F, MAIN as _M, ROW_TAG as _ROW, V_TAG as _V
from .owned import owned_positions
from .scan import SheetScan


class WorkbookReader:
    def __init__(self, pkg: ooxml.Package):
        self.pkg = pkg
        self.wb_part = pkg.workbook_part()
        self.wb = ooxml.WorkbookXml(pkg.text(self.wb_part), pkg.path, self.wb_part)
        self.rels = {r.id: r for r in pkg.rels(self.wb_part)}
        self._strings: list[str] | None = None
        self._date_xfs: set[int] | None = None
        self.tab = ""  # the tab being read, for messages
        self.cells_held = 0  # row slots of the tabs read so far (budgets.READ_CELLS)

    def snapshot(self, wanted: list[str], heads: list[str] = ()) -> Snapshot:
        """The tabs `wanted` read whole, those in `heads` (and not wanted) by their first row."""
        owned = owned_positions(self.wb)
        infos, values, firsts = [], {}, {}
        for position, sheet in enumerate(self.wb.sheets):
            part = self._worksheet_part(sheet)
            rows: list[list[CellValue]] | None = None
            if part and _wanted(sheet.name, wanted):
                self.tab = sheet.name
                rows = self.cells(part)
                values[sheet.name] = rows
            elif part and _wanted(sheet.name, list(heads)):
                self.tab = sheet.name
                firsts[sheet.name] = self.first_row(part)
            n_rows, n_cols = _extent(rows) if rows is not None else self._dimension(part)
            infos.append(TabInfo(sheet.name, position, position in owned, n_rows, n_cols,
                                 kind=self._kind(sheet)))
        return Snapshot(self.pkg.path, infos, values, cells_limited=False, heads=firsts)

    def _worksheet_part(self, sheet: ooxml.SheetEntry) -> str | None:
        rel = self.rels.get(sheet.rid)
        if rel is None or rel.type != ooxml.REL_WORKSHEET or not self.pkg.has(rel.target):
            return None  # a chart sheet, dialog sheet or macro sheet: no cells to read
        return rel.target

    def _kind(self, sheet: ooxml.SheetEntry) -> str:
        rel = self.rels.get(sheet.rid)
        kind = rel.type.rsplit("/", 1)[-1].lower() if rel else "worksheet"
        return {"chartsheet": "chart sheet", "dialogsheet": "dialog sheet",
                "xlmacrosheet": "macro sheet", "xlintlmacrosheet": "macro sheet"}.get(kind, "worksheet")

    def _dimension(self, part: str | None) -> tuple[int, int]:
        if part is None:
            return 0, 0
        with self.pkg.open(part, limit=1 << 62) as f:  # a tab not read: only its first 8 KB
            head = f.read(8192)
        m = re.search(rb"<(?:\w+:)?dimension\s+ref\s*=\s*[\"']([A-Z$]*\d*:?([A-Z]+)\$?(\d+))", head)
        if m:
            return int(m.group(3)), column_index(m.group(2).decode()) + 1
        return 0, 0  # declares none: a tab sheetsync does not read is not inflated to count it

    # -- cells --------------------------------------------------------------------------------

    def first_row(self, part: str) -> list[CellValue]:
        """Row 1 of a sheet, inflating and parsing no further than its end, a few KB at a time
        (a log's header; [] when the sheet's first row is not row 1)."""
        self._dates = self.date_xfs()
        parser = ET.XMLPullParser(("end",))
        fed = 0
        with self.pkg.open(part) as f:
            while chunk := f.read(1 << 12):
                fed += len(chunk)
                try:
                    parser.feed(chunk)
                    events = list(parser.read_events())
                except ET.ParseError as e:
                    raise self.pkg.corrupt(part, f"malformed XML: {e}") from None
                for _event, el in events:
                    if el.tag == _ROW:
                        rows: list[list[CellValue]] = []
                        self._row(el, rows)
                        return rows[0] if len(rows) == 1 else []
                    if el.tag == _M + "sheetData":
                        return []
                if fed > budgets.ROW_XML_BYTES:
                    raise self.pkg.corrupt(part, f"more than {budgets.ROW_XML_BYTES >> 20} MiB of XML "
                                           "before the first row's end")
        return []

    def cells(self, part: str) -> list[list[CellValue]]:
        self._dates = self.date_xfs()
        with _gc_paused():
            rows = SheetScan(self).rows(part)  # the fast path; None when it cannot vouch for the sheet
            return rows if rows is not None else self.cells_by_elementtree(part)

    def cells_by_elementtree(self, part: str) -> list[list[CellValue]]:
        """The reference reading: every cell through ElementTree (`SheetScan` must agree).

        Memory stays bounded whatever the XML: a row's cells are dropped once it is read, at
        most `budgets.SHEET_ROWS` row elements are kept (emptied), and more than
        `budgets.ROW_XML_BYTES` of XML without a row end (the parser would hold all of it) is
        refused."""
        rows: list[list[CellValue]] = []
        self._dates = self.date_xfs()
        since = count = 0  # bytes fed since a row last ended; row elements read
        parser = ET.XMLPullParser(("end",))
        with self.pkg.open(part) as f:
            while True:
                chunk = f.read(1 << 16)
                try:  # the parser reports malformed XML when its events are read
                    parser.feed(chunk) if chunk else parser.close()
                    events = list(parser.read_events())
                except ET.ParseError as e:
                    raise self.pkg.corrupt(part, f"malformed XML: {e}") from None
                since += len(chunk)
                for _event, el in events:
                    if el.tag == _ROW:
                        self._row(el, rows)
                        el.clear()
                        since = 0
                        count += 1
                        if count > budgets.SHEET_ROWS:
                            raise self.corrupt_row(f"{count:,}", "more rows than a spreadsheet holds")
                if not chunk:
                    break
                if since > budgets.ROW_XML_BYTES:
                    raise self.pkg.corrupt(part, f"more than {budgets.ROW_XML_BYTES >> 20} MiB of XML "
                                           "without a row end")
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def corrupt_row(self, number: int | str, why: str) -> BackendError:
        return BackendError(f"{self.pkg.path}: the workbook is corrupt ('{self.tab}' row {number}: {why})")

    def corrupt_cell(self, ref: str, why: str) -> BackendError:
        return BackendError(f"{self.pkg.path}: the workbook is corrupt ({self.tab}!{ref}: {why})")

    def row_number(self, r: str | None, rows: list) -> int:
        """A row's number (r, else the next row), refused beyond a spreadsheet's rows."""
        try:
            number = int(r) if r is not None else len(rows) + 1
        except ValueError:
            raise self.corrupt_row(repr(r), "not a row number") from None
        if not 1 <= number <= budgets.SHEET_ROWS:
            raise self.corrupt_row(f"{number:,}", f"beyond a spreadsheet's {budgets.SHEET_ROWS:,} rows")
        return number

    def column(self, letters: str, number: int) -> int:
        """A cell's column index, refused beyond a spreadsheet's columns (XFD)."""
        col = _COLUMNS.get(letters)
        if col is None and len(letters.replace("$", "")) <= 3:
            col = column_index(letters)
        if col is None or col >= budgets.SHEET_COLS:
            raise self.corrupt_cell(f"{letters[:12]}{number}", "a column beyond XFD, the last one "
                                    "a spreadsheet has")
        return col

    def held(self, n: int) -> None:
        """Count `n` more row slots held; refuse past `budgets.READ_CELLS`."""
        self.cells_held += n
        if self.cells_held > budgets.READ_CELLS:
            raise BackendError(f"{self.pkg.path}: the tabs sheetsync reads hold more than "
                               f"{budgets.READ_CELLS:,} cells (rows × columns up to the last value, "
                               f"'{self.tab}' reached it); the limit keeps memory bounded")

    def _row(self, el: ET.Element, rows: list[list[CellValue]]) -> None:
        number = self.row_number(el.get("r"), rows)
        while len(rows) < number:
            rows.append([])
        row = rows[number - 1]
        value_of = self._value
        for c in el:
            if c.tag != _C:
                continue
            ref = c.get("r")
            try:
                value = value_of(c)
            except (ValueError, IndexError, OverflowError):
                where = ref or f"{col_letter(min(len(row), budgets.SHEET_COLS - 1))}{number}"
                raise self.corrupt_cell(where, _why(c)) from None
            if value is None:
                continue
            if ref:
                col = self.column(ref.rstrip("0123456789"), number)
            else:
                col = len(row)
                if col >= budgets.SHEET_COLS:
                    raise self.corrupt_row(number, "more cells than a row holds")
            if col == len(row):
                row.append(value)
                continue
            row.extend([None] * (col - len(row)))
            row.append(value) if col == len(row) else row.__setitem__(col, value)
        self.held(len(row))

    def _value(self, c: ET.Element) -> CellValue:
        kind = c.get("t", "n")
        v = formula = None
        for child in c:
            if child.tag == _V:
                v = child
            elif child.tag == _F:
                formula = child
        text = v.text if v is not None else None
        if formula is None and kind == "n" and text:  # the common case, kept short
            number = _number(text)
            return self._date(number) if self._dates and c.get("s", "0") in self._dates else number
        # openpyxl writes <v/> for "not computed"; Excel writes t="str" with <v/> for a formula
        # whose result is the empty string.
        if formula is not None and (v is None or not text and kind not in ("str", "inlineStr")):
            return Uncomputed(formula.text or "")
        if kind == "inlineStr":
            return self._inline(c)
        if text is None:
            return "" if kind == "str" and v is not None else None
        return self._typed(kind, text, c.get("s", "0"))

    def _typed(self, kind: str, text: str, style: str) -> CellValue:
        if kind == "n":
            number = _number(text)
            return self._date(number) if style in self.date_xfs() else number
        if kind == "s":
            index = int(text)
            if index < 0:
                raise IndexError(text)
            return self.strings()[index]
        if kind == "str":
            return excel_unescape(text)  # the text result of a formula
        if kind == "b":
            return text.strip() in ("1", "true")
        if kind == "e":
            return CellError(text)
        if kind == "d":
            from openpyxl.utils.datetime import to_excel

            return DateCell(float(to_excel(dt.datetime.fromisoformat(text))), text)
        return text

    def _inline(self, c: ET.Element) -> str | None:
        node = c.find(_M + "is")
        return rich_text(node) if node is not None else None

    def _date(self, serial: float) -> DateCell:
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

        epoch = CALENDAR_MAC_1904 if self.wb.date1904 else CALENDAR_WINDOWS_1900
        try:
            text = from_excel(serial, epoch).isoformat()
        except (ValueError, OverflowError):
            text = str(serial)
        return DateCell(float(serial), text)

    def strings(self) -> list[str]:
        if self._strings is None:
            part = self._related(ooxml.REL_SHARED_STRINGS)
            if part:
                with self.pkg.open(part) as f:
                    self._strings = shared_strings(bounded_events(f, self.pkg, part))
            else:
                self._strings = []
        return self._strings

    def date_xfs(self) -> set[str]:
        """Style indices (as written in s="...") of date-formatted cells."""
        if self._date_xfs is None:
            part = self._related(ooxml.REL_STYLES)
            try:
                self._date_xfs = {str(i) for i in date_styles(self.pkg.read(part))} if part else set()
            except ET.ParseError as e:
                raise self.pkg.corrupt(part, f"malformed XML: {e}") from None
        return self._date_xfs


    def _related(self, rel_type: str) -> str | None:
        for rel in self.rels.values():
            if rel.type == rel_type and self.pkg.has(rel.target):
                return rel.target
        return None


def _why(c: ET.Element) -> str:
    """What is wrong with a cell whose value could not be read."""
    v = c.find(_V)
    text = (v.text or "") if v is not None else ""
    shown = repr(text[:40]) + ("…" if len(text) > 40 else "")
    kind = c.get("t", "n")
    if kind == "s":
        return f"shared string {shown} does not exist"
    if kind == "d":
        return f"{shown} is not a date"
    return f"{shown} is not a number"


def bounded_events(f, pkg: ooxml.Package, part: str, events=("start", "end")):
    """ElementTree's (event, element) pairs of a part, with the bytes fed so far; malformed
    XML (and entity tricks: expat refuses external entities and runaway expansion) is refused
    as corrupt naming the part, and so is more than `budgets.ROW_XML_BYTES` without an event
    (the parser would keep all of that text)."""
    parser = ET.XMLPullParser(events)
    fed = quiet = 0
    try:
        while chunk := f.read(1 << 16):
            parser.feed(chunk)
            fed += len(chunk)
            quiet += len(chunk)
            for event, el in parser.read_events():
                quiet = 0
                yield event, el, fed
            if quiet > budgets.ROW_XML_BYTES:
                raise pkg.corrupt(part, f"more than {budgets.ROW_XML_BYTES >> 20} MiB of XML "
                                  "without an element")
        parser.close()
        for event, el in parser.read_events():
            yield event, el, fed
    except ET.ParseError as e:
        raise pkg.corrupt(part, f"malformed XML: {e}") from None


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while a sheet is read: the reading makes only acyclic
    lists, yet their number alone triggers full collections that cost more than the reading."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def shared_strings(events) -> list[str]:
    """The strings of a shared-strings part, from its `bounded_events` (or a stream)."""
    # Not openpyxl's reader: it turns "_x005F_x0041_" into "_x0041_" and leaves real escapes.
    if hasattr(events, "read"):
        events = ((event, el, 0) for event, el in ET.iterparse(events, events=("start", "end")))
    strings = []
    root = None
    for event, el, _fed in events:
        if root is None:
            root = el
        elif event == "end" and el.tag == _M + "si":
            strings.append(rich_text(el))
            root.clear()  # read: the strings' elements are not kept (a flood of <si/> is cheap)
    return strings


def rich_text(node: ET.Element) -> str:
    """The text of an <si> or <is>: its runs joined, phonetic hints (rPh) left out."""
    parts = [node.findtext(_M + "t") or ""]
    parts += [r.findtext(_M + "t") or "" for r in node.iterfind(_M + "r")]
    return excel_unescape("".join(parts))


def _wanted(title: str, wanted: list[str]) -> bool:
    return title in wanted or title.casefold() in {w.casefold() for w in wanted}


def _extent(rows: list[list]) -> tuple[int, int]:
    return len(rows), max(map(len, rows), default=0)


DATE_FORMAT_IDS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | set(range(50, 59))


# In a number format's first section, what shows no date: quoted text, and bracketed parts
# ([Red], [$-409], [>=100]) other than the elapsed-time ones ([h], [mm], [ss]).
_NOT_A_DATE_PART = re.compile(r'".*?"|\[(?!hh?\]|mm?\]|ss?\])[^\]]*\]')
# A date or time letter, unless it is escaped (\d) or a space the width of it (_d).
_DATE_LETTER = re.compile(r"(?<![_\\])[dmhysDMHYS]")


def shows_a_date(code: str) -> bool:
    """Whether a custom number format shows a date or time, as Excel and openpyxl decide it
    (tested against openpyxl's `is_date_format`, which reading no longer imports)."""
    return _DATE_LETTER.search(_NOT_A_DATE_PART.sub("", code.split(";")[0])) is not None


def date_styles(styles_xml: bytes) -> set[int]:
    """Indices of cellXfs whose number format shows a date or time."""
    root = ET.fromstring(styles_xml)
    codes = {int(n.get("numFmtId")): n.get("formatCode", "")
             for n in root.iter(_M + "numFmt") if n.get("numFmtId", "").isdigit()}
    xfs = root.find(_M + "cellXfs")
    dates = set()
    for index, xf in enumerate(xfs if xfs is not None else []):
        fmt = int(xf.get("numFmtId", 0))
        if fmt in DATE_FORMAT_IDS or (fmt in codes and shows_a_date(codes[fmt])):
            dates.add(index)
    return dates
