"""The local workbook backend: read an ``.xlsx``/``.xlsm`` file, apply a `Plan` to it.

Nothing of the user's is lost, because the user's workbook is never loaded and re-saved: an
openpyxl round trip drops shapes and text boxes, pictures (without Pillow), custom XML, the VBA
project (without ``keep_vba``), the titles in ``docProps/app.xml``, and whatever else it does not
model (form controls, slicers, pivot caches). `apply` performs package surgery instead (see
`ooxml`): every part of the file is copied as it is (its compressed bytes, not even re-deflated),
except

- the parts of owned tabs being replaced or removed (worksheet, its rels, drawing, charts,
  comments, VML) — removed only when nothing that stays still refers to them;
- ``[Content_Types].xml``, ``xl/workbook.xml``, ``xl/_rels/workbook.xml.rels``,
  ``xl/styles.xml`` (appended to, never renumbered) and ``docProps/app.xml`` (titles) — small
  textual edits;
- ``xl/calcChain.xml`` — dropped when it lists cells of a removed sheet (Excel rebuilds it);

and the owned tabs' parts are generated here. Worksheet XML is streamed (a steps table has
millions of cells): inline strings, floats as the shortest text that reads back bit for bit
(orjson's notation, e.g. ``1e16`` and ``0.00001``; ``repr`` for the odd cell), NaN and
infinities as blank cells, Excel's ``_xHHHH_`` escapes for characters XML cannot hold; numeric
tables a chunk of rows per format call (`RowsRenderer`), deflated in blocks by worker threads
while the next rows render (`write_streamed`). Every cell keeps its ``r`` attribute. Comments (with their VML) and native charts come from
openpyxl's serialisers, fed directly. Tabs go where `order.arrange` says: a replaced tab keeps its place.

Ownership mark: every tab sheetsync creates carries a hidden, sheet-local defined name
``_sheetsync_owned`` (``localSheetId`` = the tab, value ``'<tab>'!$A$1``). Excel and LibreOffice
keep sheet-local names through a save (tested for LibreOffice), move them with the sheet when it
is renamed or moved, and delete them with the sheet, so the mark follows the tab rather than its
title: a user's tab that merely has the same name is never taken for ours. (Copying an owned tab
in Excel copies the mark too; the copy has another name, so no plan writes it.)

Writes are atomic: a temporary file beside the workbook, flushed and fsynced, then
``os.replace``; the original's permission bits are kept. Refused with a clear error before
anything is written: a read-only file, a user tab in the plan's way (`OwnershipError`), an
encrypted or Strict Open XML or corrupt file, a workbook whose structure is protected, and a file
that someone else saved while we were writing (theirs wins).

Reading parses the sheet XML in one streaming pass (openpyxl gives either a formula cell's cached
value or its formula per pass, never both, and reads a formula without a cached value as empty),
with openpyxl's helpers for date formats and serial dates. The pass is a text scan
(`SheetScan`) for the cell shapes real files hold, ElementTree for any other cell and for any
sheet the scan cannot vouch for; both give the same values (tests/backends/test_xlsx_fast_paths.py).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime as dt
import gc
import heapq
import math
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import numpy as np
import orjson

try:  # Intel's ISA-L deflate: the same format, ~3x faster than zlib at level 1, a smaller file
    from isal import isal_zlib as deflate_lib
except ImportError:  # a platform without isal's wheels
    deflate_lib = zlib

from .. import budgets
from ..errors import BackendError, OwnershipError
from ..locks import WorkbookLock
from .guard import (TEMP_SUFFIX, FileIdentity, WorkbookChanged, refuse_open_elsewhere,
                    remove_abandoned_temps, temp_prefix)
from . import chart_xml, ooxml
from .order import NEW, OLD, arrange
from .base import (CellError, CellValue, DateCell, Plan, Snapshot, TabInfo, TabPlan, Text,
                   Uncomputed, col_letter)

OWNED_MARK = "_sheetsync_owned"
MAX_TAB_NAME = 31
BAD_TAB_CHARS = set('[]:*?/\\')
CHUNK_ROWS = 4096
EMU_PER_PX = 9525

_M = "{%s}" % ooxml.NS_MAIN
_C, _V, _F, _ROW = _M + "c", _M + "v", _M + "f", _M + "row"


def abs_ref(tab: str, row0: int, col0: int, row1: int, col1: int) -> str:
    """'basic steps', 1, 0, 30, 1 -> "'basic steps'!$A$2:$A$30" (always quoted: valid for any name)."""
    quoted = "'" + tab.replace("'", "''") + "'"
    start = f"${col_letter(col0)}${row0 + 1}"
    end = f"${col_letter(col1 - 1)}${row1}"
    return f"{quoted}!{start}" if (row1 - row0, col1 - col0) == (1, 1) else f"{quoted}!{start}:{end}"


# =============================================================================================
# The backend


class XlsxBackend:
    """A local ``.xlsx``/``.xlsm`` workbook."""

    def __init__(self, path: str | os.PathLike, force: bool = False):
        self.path = os.fspath(path)
        self.force = force  # write even while the workbook is open in LibreOffice or Excel
        self._lock = WorkbookLock(self.path)
        self._depth = 0  # nested `writing` sessions
        self._read_as: FileIdentity | None = None  # the file as the first read of a session saw it

    @contextlib.contextmanager
    def writing(self, force: bool | None = None, *, fresh: bool = True) -> Iterator[None]:
        """Be the one writer of this workbook from its first read to its replacement.

        Every entry point's run happens inside one (`runner.run`, the scheduler), so the CLI,
        the server and the scheduler's threads and RQ workers on this machine queue for the
        same workbook; reads outside a session (trace, tests) never wait."""
        if force is not None:
            self.force = force
        if self._depth == 0:
            try:
                self._lock.acquire()
            except FileNotFoundError:
                raise BackendError(f"{self.path}: no such workbook") from None
            except OSError as e:
                raise BackendError(f"{self.path}: cannot open the workbook ({e.strerror})") from None
            if fresh:  # a new session: what an earlier read saw says nothing about this one
                self._read_as = None
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._read_as = None
                self._lock.release()

    # -- reading ------------------------------------------------------------------------------

    def read(self, tabs: Sequence[str]) -> Snapshot:
        if self._read_as is None or not self._depth:
            self._read_as = FileIdentity.of(self.path)
        else:
            self._read_as.still(self.path)  # every read of a session sees the same file
        pkg = ooxml.Package(self.path)
        try:
            return WorkbookReader(pkg).snapshot(list(tabs))
        except (KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
        except (ET.ParseError, IndexError, OverflowError, RecursionError) as e:
            raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
        finally:
            pkg.close()

    # -- writing ------------------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        if not plan.tabs and not plan.remove:
            return
        refuse_read_only(self.path)
        with self.writing(fresh=False):
            if not self.force:
                refuse_open_elsewhere(self.path)
            if self._read_as is not None:  # what was trained on must still be there
                now = self._read_as.still(self.path)
            else:
                now = FileIdentity.of(self.path, hashed=False)
            remove_abandoned_temps(self.path)
            pkg = ooxml.Package(self.path)
            try:
                surgery = Surgery(pkg, plan)
                write_atomically(self.path, surgery.write, now.stat)
            except (KeyError, zipfile.BadZipFile, EOFError) as e:
                raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
            finally:
                pkg.close()
            self._read_as = None  # the file is now ours; a later apply reads it afresh

    @classmethod
    def create(cls, path: str | os.PathLike, tabs: dict[str, list[list]]) -> "XlsxBackend":
        """A brand-new workbook of plain user tabs (not owned); refuses an existing path."""
        from openpyxl import Workbook

        path = os.fspath(path)
        if not path.lower().endswith(".xlsx"):
            raise BackendError(f"{path}: sheetsync creates .xlsx workbooks; name it ….xlsx")
        if os.path.exists(path):
            raise BackendError(f"{path}: already exists; sheetsync creates only new workbooks")
        wb = Workbook()
        wb.remove(wb.active)
        for title, rows in (tabs or {"Sheet1": []}).items():
            ws = wb.create_sheet(title)
            for row in rows:
                ws.append(list(row))
        write_atomically(path, wb.save, None)
        return cls(path)


def refuse_read_only(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BackendError(f"{path}: no such workbook") from None
    # Root may replace a file without write bits; the bits are the user's intent, so check them.
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise BackendError(f"{path}: the workbook is read-only; make it writable to let sheetsync "
                           "write its tabs")


def write_atomically(path: str, write: Callable[[BinaryIO], None], before: os.stat_result | None) -> None:
    """Write a temporary file beside `path`, fsync it, and rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path) + f"{os.getpid()}.", suffix=TEMP_SUFFIX,
                                   dir=folder)
    except OSError as e:
        raise BackendError(f"{path}: cannot write beside the workbook ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _copy_permissions(before, tmp)
        _refuse_if_changed(path, before)
        _replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a quota, a file-size limit
            raise BackendError(f"{path}: could not write the workbook ({e.strerror or e}); it was "
                               "left as it was") from None
        raise
    _fsync_folder(folder)


def _replace(tmp: str, path: str) -> None:
    try:
        os.replace(tmp, path)
    except PermissionError:
        # Windows refuses while Excel holds the file open.
        raise BackendError(f"{path}: cannot replace the workbook (is it open in Excel? close it "
                           "and run again)") from None


def _copy_permissions(before: os.stat_result | None, tmp: str) -> None:
    if before is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    os.chmod(tmp, stat.S_IMODE(before.st_mode))
    try:
        os.chown(tmp, before.st_uid, before.st_gid)
    except OSError:
        pass  # only root may give a file away; a normal user's own file keeps its owner anyway


def _refuse_if_changed(path: str, before: os.stat_result | None) -> None:
    # Someone (Excel, another run) saved the workbook while we wrote: theirs wins, ours is dropped.
    if before is None:
        return
    now = os.stat(path)
    if ((now.st_mtime_ns, now.st_ctime_ns, now.st_size, now.st_ino, now.st_dev)
            != (before.st_mtime_ns, before.st_ctime_ns, before.st_size, before.st_ino, before.st_dev)):
        raise WorkbookChanged(path)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# =============================================================================================
# Reading


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

    def snapshot(self, wanted: list[str]) -> Snapshot:
        owned = owned_positions(self.wb)
        infos, values = [], {}
        for position, sheet in enumerate(self.wb.sheets):
            part = self._worksheet_part(sheet)
            rows: list[list[CellValue]] | None = None
            if part and _wanted(sheet.name, wanted):
                self.tab = sheet.name
                rows = self.cells(part)
                values[sheet.name] = rows
            n_rows, n_cols = _extent(rows) if rows is not None else self._dimension(part)
            infos.append(TabInfo(sheet.name, position, position in owned, n_rows, n_cols,
                                 kind=self._kind(sheet)))
        return Snapshot(self.pkg.path, infos, values, cells_limited=False)

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

    def cells(self, part: str) -> list[list[CellValue]]:
        self._dates = self.date_xfs()
        with _gc_paused():
            rows = SheetScan(self).rows(part)
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


class _Unrecognised(Exception):
    """The scan met XML it does not handle: the sheet is read through ElementTree instead."""


_SPACE = "[ \t\r\n]"
# An attribute other than r, double-quoted; ElementTree checks and decodes each distinct set once.
_ATTR = rf'{_SPACE}+(?!r[ \t\r\n=])[A-Za-z_][\w.:-]*="[^"<]*"'
# Any attribute (single quotes too), for the cells and rows handed to ElementTree one by one.
_ANY_ATTR = rf"""{_SPACE}+[^\s=/>]+{_SPACE}*={_SPACE}*(?:"[^"<]*"|'[^'<]*')"""
# Element text that reads back as it stands: no markup, entity, \r (turned into \n by a parser),
# "]]>" or character XML forbids.
_TEXT = "[^<&\\]\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
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
_INTEGER_VALUE = re.compile(r"<v>-*\d+</v>")
_LOOSE_VALUE = re.compile(r"<v>[^<]*[^0-9.eE+\-<]")
_NUMBER_CHARS = "0123456789.eE+-"


@dataclass
class _RowShape:
    """A regular expression for rows of one shape (group 1 the row number, then each valued
    cell's text; the last group any other text up to a row's end) and how to read them."""

    pattern: re.Pattern
    cells: list[tuple[int, Callable[[str], CellValue]]]  # column, value of the cell's text
    plain_numbers: bool  # numbers (no dates) in columns 0, 1, ...: a row is its numbers


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
        while True:
            chunk = f.read(_SCAN_CHUNK)
            end = (pending[-1][-12:] + chunk).find(b"</sheetData>") if chunk else -1
            if not chunk or end >= 0 or (pending[-1][-6:] + chunk).find(b"</row>") >= 0:
                buf = b"".join(pending) + chunk
                end = buf.find(b"</sheetData>")
                if end >= 0:
                    row = self._chunk(buf[:end].decode("utf-8"), rows, row)
                    tail = buf[end:]
                    break
                if not chunk:
                    raise _Unrecognised("no </sheetData>")
                cut = buf.rfind(b"</row>") + 6
                row = self._chunk(buf[:cut].decode("utf-8"), rows, row)
                pending, size = [buf[cut:]], len(buf) - cut
            else:
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

    def _chunk(self, text: str, rows: list[list[CellValue]], row: list | None) -> list | None:
        """Place the cells of `text` (whole rows): rows shaped like its last row through one
        regular expression made for that shape, the others token by token (`_tokens`)."""
        shape = self._shape(text)
        if shape is None:
            return self._tokens(text, rows, row)
        # No integer-looking <v> in the chunk: `_number` of every text is float(text).
        plain = shape.plain_numbers and not _INTEGER_VALUE.search(text)
        if plain and _LOOSE_VALUE.search(text):  # a value float() would take but a sheet cannot hold
            plain = False
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
                if shape.plain_numbers and _append_numbers(run, rows, plain):
                    self.reader.held(len(run) * len(shape.cells))
                else:
                    _place_rows(run, shape.cells, rows, self.reader.held)
            if stop < len(matches):
                row = self._tokens(matches[stop][-1], rows, row)
            start = stop + 1
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
        for _r, _ra, _ro, _rc, letters, attrs, empty, v, inline, *_ in cells:
            if not letters or not (v or inline or empty):
                return None
            form = "v" if v else "is" if inline else empty
            key.append((letters, attrs, form))
            kind, style = self._cell_attrs.get(attrs) or self._cell_kind(attrs)  # checked, empty or not
            parts.append(f'<c r="{letters}[0-9]+"{re.escape(attrs)}')
            if form == "v":
                parts.append(f"><v>({_TEXT}+)</v></c>")
            elif form == "is":
                parts.append(f'><is><t(?: xml:space="preserve")?>({_TEXT}+)</t></is></c>')
            else:
                parts.append(re.escape(empty))  # reads as nothing: no text to capture
                continue
            if column_index(letters) >= budgets.SHEET_COLS:
                return None  # beyond XFD: `_tokens` hands it to ElementTree, which names it
            values.append((column_index(letters), self._value_of(form, kind, style)))
        key = tuple(key)
        if key not in self._shapes:
            if first[1] not in self._row_attrs:
                self._row_number(f'<row r="1"{first[1]}/>', [])
                self._row_attrs.add(first[1])
            plain = bool(values) and all(f is _number for _, f in values) \
                and [c for c, _ in values] == list(range(len(values)))
            pattern = re.compile("".join(parts) + r"</row>|([\s\S]*?</row>|[\s\S]+)")
            self._shapes[key] = _RowShape(pattern, values, plain)
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


def _append_numbers(run: list[tuple[str, ...]], rows: list[list[CellValue]], plain: bool) -> bool:
    """Rows of numbers in columns 0, 1, ... appended in bulk, if they follow the last row
    without a gap (False, nothing done, if not). `plain`: float(text) is `_number(text)`."""
    columns = list(zip(*run))
    first = len(rows) + 1
    if list(map(int, columns[0])) != list(range(first, first + len(run))) \
            or first + len(run) - 1 > budgets.SHEET_ROWS:
        return False
    convert = float if plain else _number
    rows.extend(map(list, zip(*[list(map(convert, texts)) for texts in columns[1:-1]])))
    return True


def _place_rows(run: list[tuple[str, ...]], cells: list[tuple[int, Callable[[str], CellValue]]],
                rows: list[list[CellValue]], count: Callable[[int], None]) -> None:
    """Rows of one shape placed as `WorkbookReader._row` places them, cell by cell; `count`
    is told the row slots they hold."""
    held = 0
    for match in run:
        number = int(match[0])
        if not 0 < number <= budgets.SHEET_ROWS:
            raise _Unrecognised("a row beyond the last")
        while len(rows) < number:
            rows.append([])
        target = rows[number - 1]
        for (col, value_of), text in zip(cells, match[1:-1]):
            value = value_of(text)
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


_EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def excel_unescape(text: str) -> str:
    """Excel writes characters XML cannot hold as _xHHHH_ (and a literal "_x" as _x005F_x)."""
    if "_x" not in text:
        return text
    return _EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _wanted(title: str, wanted: list[str]) -> bool:
    return title in wanted or title.casefold() in {w.casefold() for w in wanted}


def _extent(rows: list[list]) -> tuple[int, int]:
    return len(rows), max(map(len, rows), default=0)


def _number(text: str) -> int | float:
    """A cell's number; strict: what float() also takes (1_000, inf, nan, spaces) is refused."""
    if text.strip(_NUMBER_CHARS):
        raise ValueError(text)
    number = float(text)
    if number.is_integer() and text.lstrip("-").isdigit():
        return int(text)
    return number


_COLUMNS: dict[str, int] = {}


def column_index(letters: str) -> int:
    """'A' -> 0, 'AA' -> 26."""
    index = _COLUMNS.get(letters)
    if index is None:
        index = 0
        for ch in letters.upper().replace("$", ""):
            index = index * 26 + ord(ch) - 64
        index -= 1
        _COLUMNS[letters] = index
    return index


DATE_FORMAT_IDS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | set(range(50, 59))


def date_styles(styles_xml: bytes) -> set[int]:
    """Indices of cellXfs whose number format shows a date or time."""
    from openpyxl.styles.numbers import is_date_format

    root = ET.fromstring(styles_xml)
    codes = {int(n.get("numFmtId")): n.get("formatCode", "")
             for n in root.iter(_M + "numFmt") if n.get("numFmtId", "").isdigit()}
    xfs = root.find(_M + "cellXfs")
    dates = set()
    for index, xf in enumerate(xfs if xfs is not None else []):
        fmt = int(xf.get("numFmtId", 0))
        if fmt in DATE_FORMAT_IDS or (fmt in codes and is_date_format(codes[fmt])):
            dates.add(index)
    return dates


def owned_positions(wb: ooxml.WorkbookXml) -> set[int]:
    return {d.local for d in wb.defined_names if d.name == OWNED_MARK and d.local is not None}


# =============================================================================================
# Applying a plan: deciding what changes


@dataclass
class NewPart:
    name: str
    content_type: str | None  # None for .rels (covered by the Default entry)
    data: Callable[[], Iterable[str]] | bytes | str


class Surgery:
    """Everything one `apply` changes in the package, decided (and checked) before writing."""

    def __init__(self, pkg: ooxml.Package, plan: Plan):
        self.pkg, self.plan = pkg, plan
        self.wb_part = pkg.workbook_part()
        self.wb = ooxml.WorkbookXml(pkg.text(self.wb_part), pkg.path, self.wb_part)
        self.wb_rels = {r.id: r for r in pkg.rels(self.wb_part)}
        self._check_plan()
        self.replaced = self._replaced_positions()
        self.dropped = self._dropped_parts()
        self.names = PartNames(pkg, self.dropped)
        self.styles, self.styles_part = self._styles()
        self.tabs = [TabRenderer(tab, self.styles, self.names) for tab in plan.tabs]
        self.edited = self._edited_parts()

    # -- checks -------------------------------------------------------------------------------

    def _check_plan(self) -> None:
        path, owned = self.pkg.path, owned_positions(self.wb)
        existing = {s.name.casefold(): (i, s.name) for i, s in enumerate(self.wb.sheets)}
        seen: set[str] = set()
        for tab in self.plan.tabs:
            check_tab_name(tab.name, path)
            if tab.name.casefold() in seen:
                raise BackendError(f"{path}: the plan writes tab {tab.name!r} twice")
            seen.add(tab.name.casefold())
        for name, verb in [(t.name, "overwrite") for t in self.plan.tabs] + [(n, "delete") for n in self.plan.remove]:
            hit = existing.get(name.casefold())
            if hit and hit[0] not in owned:
                raise OwnershipError(f"{path}: tab {hit[1]!r} is not a sheetsync tab; sheetsync will "
                                     f"not {verb} it (rename your tab, or choose another experiment name)")
        if self.wb.structure_locked and (self.plan.tabs or self.plan.remove):
            raise BackendError(f"{path}: the workbook structure is protected; unprotect it "
                               "(Review > Protect Workbook) so sheetsync can add its tabs")

    def _replaced_positions(self) -> set[int]:
        names = {t.name.casefold() for t in self.plan.tabs} | {n.casefold() for n in self.plan.remove}
        owned = owned_positions(self.wb)
        return {i for i, s in enumerate(self.wb.sheets) if i in owned and s.name.casefold() in names}

    def _sheet_part(self, sheet: ooxml.SheetEntry) -> str | None:
        rel = self.wb_rels.get(sheet.rid)
        return rel.target if rel and not rel.external else None

    def _dropped_parts(self) -> set[str]:
        """Parts of replaced tabs that nothing else refers to, plus a stale calc chain."""
        graph = ooxml.all_rels_graph(self.pkg)
        roots = [p for i in self.replaced if (p := self._sheet_part(self.wb.sheets[i]))]
        calc_chain = self._stale_calc_chain(roots)
        cut = {p.lower() for p in roots + calc_chain}
        candidates = ooxml.closure(roots + calc_chain, graph)
        dropped = {p for p in ooxml.unreachable(candidates, graph, cut) if self.pkg.has(p)}
        dropped |= {ooxml.rels_part(p) for p in dropped if self.pkg.has(ooxml.rels_part(p))}
        return {self.pkg.name(p) for p in dropped}

    def _stale_calc_chain(self, roots: list[str]) -> list[str]:
        removed_ids = {self.wb.sheets[i].sheet_id for i in self.replaced}
        for rel in self.wb_rels.values():
            if rel.type == ooxml.REL_CALC_CHAIN and self.pkg.has(rel.target) and removed_ids:
                if ooxml.calc_chain_sheet_ids(self.pkg.read(rel.target)) & removed_ids:
                    return [rel.target]
        return []

    def _styles(self) -> tuple[ooxml.StyleSheet, str | None]:
        for rel in self.wb_rels.values():
            if rel.type == ooxml.REL_STYLES and self.pkg.has(rel.target):
                return ooxml.StyleSheet(self.pkg.text(rel.target)), rel.target
        return ooxml.StyleSheet(ooxml.MINIMAL_STYLES), None

    # -- the edited package parts -------------------------------------------------------------

    def _edited_parts(self) -> dict[str, str]:
        """New text of the package-level parts: workbook, its rels, content types, styles, app."""
        kept = [i for i in range(len(self.wb.sheets)) if i not in self.replaced]
        # backends.order: a replaced tab keeps its place, a new one goes beside its plan neighbour
        self.order = arrange([s.name for s in self.wb.sheets], [t.plan.name for t in self.tabs], self.replaced)
        position = {i: new for new, (kind, i) in enumerate(self.order) if kind == OLD}
        self.new_position = {k: new for new, (kind, k) in enumerate(self.order) if kind == NEW}
        used_ids = set(self.wb_rels)
        new_rels, new_sheets = self._new_sheet_entries(used_ids)
        if self.styles_part is None:
            self.styles_part = self.names.take("xl/styles.xml", "xl/styles{}.xml")
            new_rels.append((ooxml.free_rel_id(used_ids), ooxml.REL_STYLES,
                             ooxml.relative_target(self.wb_part, self.styles_part)))
        edited = {
            self.pkg.name(self.wb_part): self._workbook_text(kept, position, new_sheets),
            self._wb_rels_name(): ooxml.edit_rels(self.pkg.text(self._wb_rels_name()),
                                                  self._removed_rel_ids(), new_rels),
            self.pkg.name("[Content_Types].xml"): ooxml.edit_content_types(
                self.pkg.text("[Content_Types].xml"), self.dropped, self._new_content_types()),
        }
        if not self.pkg.has(self.styles_part) or self.styles.changed():
            edited[self.pkg.name(self.styles_part) if self.pkg.has(self.styles_part) else self.styles_part] = \
                self.styles.render()
        self._edit_app(edited, kept)
        return edited

    def _new_sheet_entries(self, used_ids: set[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
        """Workbook relationships and <sheet> elements of the plan's tabs."""
        next_sheet_id = max([s.sheet_id for s in self.wb.sheets] + [0]) + 1
        rels, sheets = [], []
        for k, tab in enumerate(self.tabs):
            rid = ooxml.free_rel_id(used_ids)
            rels.append((rid, ooxml.REL_WORKSHEET, ooxml.relative_target(self.wb_part, tab.part)))
            sheets.append(ooxml.sheet_element(self.wb.main_prefix(), self.wb.r_prefix(), tab.plan.name,
                                              next_sheet_id + k, rid, tab.plan.hidden))
        return rels, sheets

    def _removed_rel_ids(self) -> set[str]:
        removed = {self.wb.sheets[i].rid for i in self.replaced}
        return removed | {r.id for r in self.wb_rels.values()
                          if self.pkg.has(r.target) and self.pkg.name(r.target) in self.dropped}

    def _wb_rels_name(self) -> str:
        return self.pkg.name(ooxml.rels_part(self.wb_part))

    def _view_positions(self, position: dict[int, int]) -> dict[int, int]:
        """Where the workbook views' active and first tabs go: a replaced tab's view follows its
        new version."""
        new_index = {t.plan.name.casefold(): self.new_position[k] for k, t in enumerate(self.tabs)}
        views = dict(position)
        for i in self.replaced:
            name = self.wb.sheets[i].name.casefold()
            if name in new_index:
                views[i] = new_index[name]
        return views

    def _workbook_text(self, kept: list[int], position: dict[int, int], new_sheets: list[str]) -> str:
        sheets = [self.wb.sheets[i].xml if kind == OLD else new_sheets[i] for kind, i in self.order]
        names = []
        for d in self.wb.defined_names:
            if d.name == OWNED_MARK:
                continue
            if d.local is None:
                names.append(d.xml)
            elif d.local in position:
                names.append(d.xml if position[d.local] == d.local else
                             ooxml.with_local_sheet_id(d.xml, position[d.local]))
        owned = owned_positions(self.wb)
        marked = [(position[i], self.wb.sheets[i].name) for i in kept if i in owned]
        marked += [(self.new_position[k], t.plan.name) for k, t in enumerate(self.tabs)]
        prefix = self.wb.main_prefix()
        names += [ooxml.defined_name_element(prefix, OWNED_MARK, pos, abs_ref(name, 0, 0, 1, 1))
                  for pos, name in marked]
        full_calc = any(t.needs_recalc for t in self.tabs)
        return self.wb.rewrite(sheets, names, self._view_positions(position), full_calc)

    def _new_content_types(self) -> list[tuple[str, str]]:
        types = [(p.name, p.content_type) for t in self.tabs for p in t.parts() if p.content_type]
        if not self.pkg.has(self.styles_part):
            types.append((self.styles_part, ooxml.CT_STYLES))
        return types

    def _edit_app(self, edited: dict[str, str], kept: list[int]) -> None:
        if not self.pkg.has("docProps/app.xml"):
            return
        worksheets = [s.name for s in self.wb.sheets if self._is_worksheet(s)]
        after = [self.wb.sheets[i].name if kind == OLD else self.tabs[i].plan.name for kind, i in self.order
                 if kind == NEW or self._is_worksheet(self.wb.sheets[i])]
        text = self.pkg.text("docProps/app.xml")
        new = ooxml.update_app_titles(text, worksheets, after)
        if new != text:
            edited[self.pkg.name("docProps/app.xml")] = new

    def _is_worksheet(self, sheet: ooxml.SheetEntry) -> bool:
        rel = self.wb_rels.get(sheet.rid)
        return rel is not None and rel.type == ooxml.REL_WORKSHEET

    # -- writing ------------------------------------------------------------------------------

    def write(self, out: BinaryIO) -> None:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for info in self.pkg.infos:
                if info.filename in self.dropped:
                    continue
                if info.filename in self.edited:
                    write_part(zf, copy_info(info), self.edited[info.filename])
                else:
                    copy_part(self.pkg.zip, zf, info)
            if not self.pkg.has(self.styles_part):
                write_part(zf, new_info(self.styles_part), self.edited[self.styles_part])
            for tab in self.tabs:
                for part in tab.parts():
                    write_part(zf, new_info(part.name), part.data)


def check_tab_name(name: str, path: str) -> None:
    bad = sorted(BAD_TAB_CHARS & set(name)) + (["control characters"] if _ILLEGAL_XML.search(name) else [])
    if not name or len(name) > MAX_TAB_NAME or bad or name.startswith("'") or name.endswith("'") \
            or name.casefold() == "history":
        why = f"contains {' '.join(bad)}" if bad else f"must be 1-{MAX_TAB_NAME} characters, not start or end with ', and not be History"
        raise BackendError(f"{path}: {name!r} cannot be a tab name in Excel ({why})")


class PartNames:
    """Fresh part names that clash with nothing that stays in the package."""

    def __init__(self, pkg: ooxml.Package, dropped: set[str]):
        self.taken = {i.filename.lower() for i in pkg.infos} - {d.lower() for d in dropped}
        self._blocks = _vml_blocks_in_use(pkg, dropped)

    def shape_blocks(self, shapes: int) -> list[int]:
        """Fresh VML shape-id blocks (o:idmap, 1024 ids each) for `shapes` comment shapes."""
        first = max(self._blocks, default=0) + 1
        blocks = list(range(first, first + shapes // 1000 + 1))
        self._blocks.update(blocks)
        return blocks

    def take(self, first: str, pattern: str) -> str:
        n = 1
        name = first
        while name.lower() in self.taken:
            name = pattern.format(n)
            n += 1
        self.taken.add(name.lower())
        return name

    def numbered(self, pattern: str) -> tuple[str, int]:
        n = 1
        while pattern.format(n).lower() in self.taken:
            n += 1
        self.taken.add(pattern.format(n).lower())
        return pattern.format(n), n


def _vml_blocks_in_use(pkg: ooxml.Package, dropped: set[str]) -> set[int]:
    # Comment shapes of all sheets share one id space; Excel repairs a file whose blocks clash.
    blocks: set[int] = set()
    for info in pkg.infos:
        if info.filename.lower().endswith(".vml") and info.filename not in dropped:
            for data in _idmaps(pkg, info.filename):
                blocks.update(int(b) for b in data.replace(b" ", b"").split(b",") if b)
    return blocks


_IDMAP = re.compile(rb"<(?:\w+:)?idmap\b[^>]*\bdata\s*=\s*[\"']([\d,\s]+)")
_VML_SHAPE = re.compile(rb"<(?:\w+:)?shape[\s>/]")


def _idmaps(pkg: ooxml.Package, part: str) -> set[bytes]:
    """The idmap data of a VML part. The idmap sits in the shape layout, before the shapes: the
    part (which can be big) is inflated only up to its first shape, a chunk at a time."""
    found: set[bytes] = set()
    tail, read = b"", 0
    with pkg.open(part, limit=1 << 62) as f:  # only the head is read: counted below instead
        while chunk := f.read(1 << 16):
            read += len(chunk)
            text = tail + chunk
            shape = _VML_SHAPE.search(text)
            text = text[:shape.start()] if shape else text
            found.update(m.group(1) for m in _IDMAP.finditer(text) if shape or m.end() < len(text))
            if shape:
                return found
            if read > budgets.PART_BYTES:
                raise pkg.too_big(part, read, budgets.PART_BYTES)
            tail = text[-4096:]  # an idmap split between two chunks is seen whole next time
    found.update(m.group(1) for m in _IDMAP.finditer(tail))
    return found


def copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    copy = zipfile.ZipInfo(info.filename, info.date_time)
    copy.compress_type = info.compress_type
    copy.external_attr = info.external_attr
    copy.create_system = info.create_system
    return copy


def new_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, dt.datetime.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # Our parts are big and repetitive: level 1 is ~3x faster than the default and nearly as small.
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 1)
    return info


def copy_part(src: zipfile.ZipFile, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Copy a user part as it is: its compressed bytes when possible, else decompressed."""
    if not copy_compressed(src, dst, info):
        with src.open(info) as r, dst.open(copy_info(info), "w", force_zip64=info.file_size > 2**30) as w:
            while chunk := r.read(1 << 20):
                w.write(chunk)


def copy_compressed(src: zipfile.ZipFile, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Copy a member's compressed stream without inflating and deflating it again.

    Big user sheets then cost a file copy, not a recompression. zipfile has no public API for
    this, so it uses the (long stable) ZipInfo.FileHeader and ZipFile bookkeeping attributes;
    anything unexpected (encryption, odd headers) falls back to the ordinary copy.
    """
    if info.flag_bits & 0x1 or not all(hasattr(dst, a) for a in ("start_dir", "filelist", "NameToInfo", "fp")):
        return False
    src.fp.seek(info.header_offset)
    header = src.fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        return False
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    src.fp.seek(info.header_offset + 30 + name_len + extra_len)
    out = copy.copy(info)
    out.flag_bits = info.flag_bits & ~0x08  # sizes go in the local header: no data descriptor
    out.extra = b""  # only timestamps and zip64 sizes live there; zipfile rewrites the latter
    out.header_offset = dst.fp.tell()
    dst.fp.write(out.FileHeader())
    remaining = info.compress_size
    while remaining:
        chunk = src.fp.read(min(remaining, 1 << 20))
        if not chunk:
            raise BackendError(f"{src.filename}: the workbook is truncated ({info.filename})")
        dst.fp.write(chunk)
        remaining -= len(chunk)
    dst.filelist.append(out)
    dst.NameToInfo[out.filename] = out
    dst.start_dir = dst.fp.tell()
    dst._didModify = True
    return True


def write_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data) -> None:
    """Write one part; `data` is bytes, str, or a function returning an iterable of chunks
    (str or bytes)."""
    with zf.open(info, "w", force_zip64=True) as w:
        if isinstance(data, bytes):
            w.write(data)
        elif isinstance(data, str):
            w.write(data.encode("utf-8"))
        else:
            write_streamed(w, data())


STREAM_BLOCK = 1 << 21  # characters encoded and deflated at a time
DEFLATE_THREADS = 2  # blocks deflated at once, besides the rendering thread
WINDOW = 1 << 15  # deflate's window: each block may refer back this far into the one before


def write_streamed(w: BinaryIO, chunks: Iterable[str | bytes]) -> None:
    """Write the text `chunks` make to the zip member `w`, deflating on other cores.

    This thread renders and encodes blocks of ~2 MB; worker threads deflate them (zlib releases
    the GIL), each block on its own as pigz does: a raw deflate of the block, primed with the
    last 32 KB of the one before (so matches reach back as in one stream), ended by a sync flush
    (byte-aligned, not final); the member's compressor is replaced by `_Deflated`, which hands
    the zip writer those bytes in order while it checksums and counts the text as usual, and
    ends the stream with an empty final block. Compression thus overlaps the rendering of the
    next blocks instead of following it. A member whose compressor is not zlib (or a writer
    without one) is written plainly. At most DEFLATE_THREADS + 2 blocks are in flight.
    """
    compressor = getattr(w, "_compressor", None)
    if not isinstance(compressor, type(zlib.compressobj())):
        for block in _blocks(chunks):
            w.write(block)
        return
    deflated = _Deflated(compressor)
    w._compressor = deflated
    pending: collections.deque = collections.deque()
    with _quick_gil_handover(), ThreadPoolExecutor(DEFLATE_THREADS, "sheetsync-deflate") as pool:
        try:
            previous = b""
            for block in _blocks(chunks):
                pending.append((block, pool.submit(_deflate_block, block, previous[-WINDOW:])))
                previous = block
                while len(pending) > DEFLATE_THREADS + 1:
                    _write_oldest(w, deflated, pending)
            while pending:
                _write_oldest(w, deflated, pending)
        finally:
            for _, future in pending:
                future.cancel()


def _blocks(chunks: Iterable[str | bytes]) -> Iterator[bytes]:
    """The chunks encoded and gathered into blocks of about STREAM_BLOCK bytes."""
    buffer: list[bytes] = []
    size = 0
    for chunk in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        buffer.append(chunk)
        size += len(chunk)
        if size >= STREAM_BLOCK:
            yield buffer[0] if len(buffer) == 1 else b"".join(buffer)  # a big chunk: no copy
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _deflate_block(block: bytes, previous: bytes) -> bytes:
    """`block` as raw deflate at level 1 (the level of our other parts), continuing a stream
    whose last 32 KB of text were `previous`, flushed to a byte boundary, not final. ISA-L
    where installed (it releases the GIL as zlib does)."""
    primed = {"zdict": previous} if previous else {}
    compressor = deflate_lib.compressobj(1, deflate_lib.DEFLATED, -15, **primed)
    return compressor.compress(block) + compressor.flush(deflate_lib.Z_SYNC_FLUSH)


def _write_oldest(w: BinaryIO, deflated: "_Deflated", pending: collections.deque) -> None:
    block, future = pending.popleft()
    deflated.ready.append(future.result())
    w.write(block)  # counts and checksums the text; writes what `deflated` hands it


class _Deflated:
    """Stands in for a zip member's compressor: hands back each block as deflated beforehand."""

    def __init__(self, replaced):
        self.replaced = replaced  # not used: the stream is made of the blocks deflated apart
        self.ready: collections.deque = collections.deque()

    def compress(self, data) -> bytes:
        return self.ready.popleft()

    def flush(self) -> bytes:
        return b"\x03\x00"  # an empty final block (fixed Huffman codes) ends the deflate stream


_handover_lock = threading.Lock()
_handover_users = 0
_handover_saved = 0.005


@contextlib.contextmanager
def _quick_gil_handover():
    """A short GIL switch interval while a writer thread compresses.

    A deflating thread needs the GIL for a moment before and after each block (zlib releases it
    meanwhile); by default it waits up to 5 ms for the rendering thread to let go each time,
    which idles it for a good part of the time it works. Counted, so that concurrent writes
    (the server) restore the interval only when the last one ends."""
    global _handover_users, _handover_saved
    with _handover_lock:
        if _handover_users == 0:
            _handover_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_handover_saved, 0.0002))
        _handover_users += 1
    try:
        yield
    finally:
        with _handover_lock:
            _handover_users -= 1
            if _handover_users == 0:
                sys.setswitchinterval(_handover_saved)


# =============================================================================================
# Rendering one owned tab


# Characters XML 1.0 cannot hold, and \r, which XML parsers turn into \n.
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\r\x0e-\x1f\ufffe\uffff]")
_ESCAPED_LOOKALIKE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")


def xml_text(text: str) -> str:
    """Text as cell XML content: escaped, with control characters in Excel's _xHHHH_ form."""
    return escape(excel_escape(text))


def excel_escape(text: str) -> str:
    """Characters XML 1.0 cannot hold, as Excel writes them (_xHHHH_); the inverse of
    `excel_unescape`, so text that merely looks like an escape is protected too."""
    if "_x" in text:
        text = _ESCAPED_LOOKALIKE.sub(r"_x005F_\1", text)
    if _ILLEGAL_XML.search(text):
        text = _ILLEGAL_XML.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)
    return text


def cell_xml(ref: str, value: Any, style: int, formula: str | None = None) -> str:
    """One <c> element; NaN and infinities are blank cells (a spreadsheet has no such numbers)."""
    s = f' s="{style}"' if style else ""
    f = f"<f>{xml_text(formula.removeprefix('='))}</f>" if formula else ""
    if _blank(value):
        return f'<c r="{ref}"{s}>{f}</c>' if (f or s) else ""
    if isinstance(value, (bool, np.bool_)):
        return f'<c r="{ref}"{s} t="b">{f}<v>{int(value)}</v></c>'
    if isinstance(value, (int, np.integer)):
        return f'<c r="{ref}"{s}>{f}<v>{int(value)}</v></c>'
    if isinstance(value, (float, np.floating)):
        return f'<c r="{ref}"{s}>{f}<v>{float(value)!r}</v></c>'
    text = value if isinstance(value, str) else str(value)
    if f:
        return f'<c r="{ref}"{s} t="str">{f}<v>{xml_text(text)}</v></c>'
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{xml_text(text)}</t></is></c>'


@dataclass
class Overlay:
    """A cell whose look (fill) or content (a Text) differs from what its table says."""

    fill: str | None = None
    text: Text | None = None
    style: int = 0


@dataclass
class ColumnData:
    values: Any  # numpy array or list
    formulas: Sequence[str | None] | None
    style: int
    fast: bool  # numeric numpy array without formulas


class TabRenderer:
    """The parts of one owned tab: worksheet XML (streamed), comments + VML, drawing + charts."""

    def __init__(self, plan: TabPlan, styles: ooxml.StyleSheet, names: PartNames):
        self.plan = plan
        check_tables_apart(plan)
        self.part, _ = names.numbered("xl/worksheets/sheet{}.xml")
        self.header_styles = {}
        self.columns = [self._columns(t, styles) for t in plan.tables]
        self.overlays = self._overlays(styles)
        self.notes = self._notes()
        self.needs_recalc = self._needs_recalc()
        self._parts = self._side_parts(names)

    # -- preparation (styles resolved up front so the rows can stream) -----------------------

    def _columns(self, table, styles: ooxml.StyleSheet) -> list[ColumnData]:
        self.header_styles[id(table)] = styles.xf(None, bold=table.bold_header)
        out = []
        for col in table.columns:
            values = plain_values(col.values)
            if isinstance(values, np.ndarray) and values.dtype.kind not in "fiub":
                values = values.tolist()
            fast = isinstance(values, np.ndarray) and values.dtype.kind in "fiu" and not col.formulas
            out.append(ColumnData(values, col.formulas, styles.xf(col.number_format, wrap=col.wrap), fast))
        return out

    def _overlays(self, styles: ooxml.StyleSheet) -> dict[tuple[int, int], Overlay]:
        overlays: dict[tuple[int, int], Overlay] = {}
        for h in self.plan.highlights:
            for r in range(h.row, h.row + h.n_rows):
                for c in range(h.col, h.col + h.n_cols):
                    overlays.setdefault((r, c), Overlay()).fill = h.color
        for t in self.plan.texts:
            overlays.setdefault((t.row, t.col), Overlay()).text = t
        for (r, c), o in overlays.items():
            fmt, bold = self._format_at(r, c)
            wrap = False
            if o.text is not None:
                fmt, bold, wrap = o.text.number_format, o.text.bold, o.text.wrap
            o.style = styles.xf(fmt, bold, o.fill, wrap)
        return overlays

    def _format_at(self, row: int, col: int) -> tuple[str | None, bool]:
        for table in self.plan.tables:
            j = col - table.col
            if 0 <= j < len(table.columns):
                if row == table.row:
                    return None, table.bold_header
                if table.row < row <= table.row + table.n_rows:
                    return table.columns[j].number_format, False
        return None, False

    def _notes(self) -> list[tuple[int, int, str]]:
        notes = [(t.row, t.col + j, c.note) for t in self.plan.tables
                 for j, c in enumerate(t.columns) if c.note]
        notes += [(x.row, x.col, x.note) for x in self.plan.texts if x.note]
        notes += [(h.row, h.col, h.note) for h in self.plan.highlights if h.note]
        unique = {}
        for r, c, note in notes:
            unique[(r, c)] = note if (r, c) not in unique else unique[(r, c)] + "\n" + note
        return [(r, c, n) for (r, c), n in sorted(unique.items())]

    def _needs_recalc(self) -> bool:
        if any(t.formula and t.value is None for t in self.plan.texts):
            return True
        for table, cols in zip(self.plan.tables, self.columns):
            for data in cols:
                if data.formulas and any(f and _blank(v) for f, v in zip(data.formulas, data.values)):
                    return True
        return False

    # -- side parts ---------------------------------------------------------------------------

    def _side_parts(self, names: PartNames) -> list[NewPart]:
        rels, parts = [], []
        self.drawing_rid = self.legacy_rid = None
        if self.plan.charts:
            drawing, n = names.numbered("xl/drawings/drawing{}.xml")
            parts += self._chart_parts(drawing, names)
            self.drawing_rid = "rId1"
            rels.append(("rId1", ooxml.REL_DRAWING, ooxml.relative_target(self.part, drawing)))
        if self.notes:
            comments, _ = names.numbered("xl/comments{}.xml")
            vml, _ = names.numbered("xl/drawings/vmlDrawing{}.vml")
            comments_xml, vml_xml = comment_parts(self.notes, names.shape_blocks(len(self.notes)))
            parts += [NewPart(comments, ooxml.CT_COMMENTS, comments_xml), NewPart(vml, ooxml.CT_VML, vml_xml)]
            self.legacy_rid = "rId3"
            rels += [("rId2", ooxml.REL_COMMENTS, ooxml.relative_target(self.part, comments)),
                     ("rId3", ooxml.REL_VML, ooxml.relative_target(self.part, vml))]
        main = [NewPart(self.part, ooxml.CT_WORKSHEET, self.sheet_xml)]
        if rels:
            main.append(NewPart(ooxml.rels_part(self.part), None, ooxml.new_rels(rels)))
        return main + parts

    def _chart_parts(self, drawing_part: str, names: PartNames) -> list[NewPart]:
        charts = self.plan.charts
        for chart in charts:
            if chart.kind not in ("line", "scatter"):
                raise BackendError(f"chart {chart.title!r}: kind must be 'line' or 'scatter', not {chart.kind!r}")
        paths = [names.numbered("xl/charts/chart{}.xml")[0] for _ in charts]
        return [NewPart(drawing_part, ooxml.CT_DRAWING, chart_xml.drawing_xml(charts)),
                NewPart(ooxml.rels_part(drawing_part), None, chart_xml.drawing_rels(paths))] + [
            NewPart(path, ooxml.CT_CHART, chart_xml.chart_xml(chart)) for path, chart in zip(paths, charts)]

    def parts(self) -> list[NewPart]:
        return self._parts

    # -- the worksheet XML --------------------------------------------------------------------

    def sheet_xml(self) -> Iterator[str]:
        yield ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               f'<worksheet xmlns="{ooxml.NS_MAIN}" xmlns:r="{ooxml.NS_R}">')
        yield self._dimension() + self._views() + self._widths() + "<sheetData>"
        yield from self._rows()
        yield "</sheetData>"
        yield self._merges() + self._color_scales()
        if self.drawing_rid:
            yield f'<drawing r:id="{self.drawing_rid}"/>'
        if self.legacy_rid:
            yield f'<legacyDrawing r:id="{self.legacy_rid}"/>'
        yield "</worksheet>"

    def _merges(self) -> str:
        spans = [t for t in self.plan.texts if t.span > 1]
        if not spans:
            return ""
        refs = "".join(f'<mergeCell ref="{col_letter(t.col)}{t.row + 1}:{col_letter(t.col + t.span - 1)}{t.row + 1}"/>'
                       for t in spans)
        return f'<mergeCells count="{len(spans)}">{refs}</mergeCells>'

    def _color_scales(self) -> str:
        out = []
        for k, cs in enumerate(self.plan.color_scales, start=1):
            ref = f"{col_letter(cs.col)}{cs.row + 1}:{col_letter(cs.col + cs.n_cols - 1)}{cs.row + cs.n_rows}"
            colours = "".join(f'<color rgb="FF{c.upper()}"/>' for c in (cs.low, cs.mid, cs.high))
            out.append(f'<conditionalFormatting sqref="{ref}"><cfRule type="colorScale" priority="{k}">'
                       '<colorScale><cfvo type="min"/><cfvo type="percentile" val="50"/><cfvo type="max"/>'
                       f'{colours}</colorScale></cfRule></conditionalFormatting>')
        return "".join(out)

    def _dimension(self) -> str:
        rows, cols = self.plan.extent()
        for r, c in self.overlays:
            rows, cols = max(rows, r + 1), max(cols, c + 1)
        if not rows or not cols:
            return '<dimension ref="A1"/>'
        return f'<dimension ref="A1:{col_letter(cols - 1)}{rows}"/>'

    def _views(self) -> str:
        rows, cols = self.plan.frozen_rows, self.plan.frozen_cols
        if not rows and not cols:
            return '<sheetViews><sheetView workbookViewId="0"/></sheetViews>'
        pane = {(True, True): "bottomRight", (True, False): "bottomLeft", (False, True): "topRight"}[(rows > 0, cols > 0)]
        split = (f' xSplit="{cols}"' if cols else "") + (f' ySplit="{rows}"' if rows else "")
        return (f'<sheetViews><sheetView workbookViewId="0"><pane{split} topLeftCell="{col_letter(cols)}{rows + 1}" '
                f'activePane="{pane}" state="frozen"/><selection pane="{pane}"/></sheetView></sheetViews>')

    def _widths(self) -> str:
        widths = {}
        for table in self.plan.tables:
            for j, col in enumerate(table.columns):
                if col.width:
                    widths[table.col + j] = col.width
        if not widths:
            return ""
        cols = "".join(f'<col min="{c + 1}" max="{c + 1}" width="{w:g}" customWidth="1"/>'
                       for c, w in sorted(widths.items()))
        return f"<cols>{cols}</cols>"

    def _rows(self) -> Iterator[str]:
        sources = [self._table_rows(t, cols, self._alone_in_its_rows(t))
                   for t, cols in zip(self.plan.tables, self.columns)]
        sources.append(self._loose_cells())
        merged = heapq.merge(*sources, key=lambda item: item[0])
        heights = self.plan.row_heights
        current, pieces = -1, []
        for row, col, xml in merged:
            if col < 0:  # whole <row> elements that no other source has cells in
                if pieces:
                    yield _row_xml(current, pieces, heights.get(current))
                current, pieces = -1, []
                yield xml
                continue
            if row != current:
                if pieces:
                    yield _row_xml(current, pieces, heights.get(current))
                current, pieces = row, []
            pieces.append((col, xml))
        if pieces:
            yield _row_xml(current, pieces, heights.get(current))

    def _alone_in_its_rows(self, table) -> bool:
        """No other table and no loose cell shares a row with `table`: its rows can be written
        whole, chunk by chunk, without merging."""
        first, last = table.row, table.row + table.n_rows
        if any(other is not table and other.row <= last and first <= other.row + other.n_rows
               for other in self.plan.tables):
            return False
        return not any(first <= r <= last and not self._in_table(r, c) for r, c in self.overlays)

    def _loose_cells(self) -> Iterator[tuple[int, int, str]]:
        """Texts and highlighted cells outside every table."""
        for (r, c), o in sorted(self.overlays.items()):
            if self._in_table(r, c):
                continue
            t = o.text
            xml = cell_xml(f"{col_letter(c)}{r + 1}", t.value if t else None, o.style, t.formula if t else None)
            if not xml:
                xml = f'<c r="{col_letter(c)}{r + 1}" s="{o.style}"/>'
            yield r, c, xml

    def _in_table(self, row: int, col: int) -> bool:
        return any(t.col <= col < t.col + len(t.columns) and t.row <= row <= t.row + t.n_rows
                   for t in self.plan.tables)

    def _table_rows(self, table, columns: list[ColumnData], framed: bool) -> Iterator[tuple[int, int, str]]:
        """The table's cells, a row at a time as (row, col, cells); or, `framed`, whole <row>
        elements a chunk at a time as (first row, -1, rows)."""
        letters = [col_letter(table.col + j) for j in range(len(columns))]
        patches = self._table_patches(table)
        header_style = self.header_styles[id(table)]
        header = [cell_xml(f"{letters[j]}{table.row + 1}", c.header, header_style)
                  for j, c in enumerate(table.columns)]
        for (r, j), xml in patches.pop(-1, {}).items():
            header[j] = xml
        if framed:
            yield table.row, -1, _row_xml(table.row, [(0, "".join(header))])
        else:
            yield table.row, table.col, "".join(header)
        rows = RowsRenderer(letters, columns, table.row + 2, framed)
        for i0 in range(0, table.n_rows, CHUNK_ROWS):
            chunk_patches = patches.pop(i0 // CHUNK_ROWS, {})
            i1 = min(table.n_rows, i0 + CHUNK_ROWS)
            if framed:
                yield table.row + 1 + i0, -1, rows.framed(i0, i1, chunk_patches)
                continue
            for k, xml in enumerate(rows.separate(i0, i1, chunk_patches)):
                yield table.row + 1 + i0 + k, table.col, xml

    def _table_patches(self, table) -> dict[int, dict[tuple[int, int], str]]:
        """Overlaid cells inside `table`, rendered, grouped by chunk (-1: the header row)."""
        patches: dict[int, dict[tuple[int, int], str]] = {}
        columns = self.columns[self.plan.tables.index(table)]
        for (r, c), o in self.overlays.items():
            j, i = c - table.col, r - table.row - 1
            if not (0 <= j < len(table.columns) and -1 <= i < table.n_rows):
                continue
            ref = f"{col_letter(c)}{r + 1}"
            if o.text is not None:
                value, formula = o.text.value, o.text.formula
            elif i == -1:
                value, formula = table.columns[j].header, None
            else:
                data = columns[j]
                value, formula = data.values[i], data.formulas[i] if data.formulas else None
            xml = cell_xml(ref, value, o.style, formula) or f'<c r="{ref}" s="{o.style}"/>'
            patches.setdefault(-1 if i == -1 else i // CHUNK_ROWS, {})[(i, j)] = xml
        return patches


def check_tables_apart(plan: TabPlan) -> None:
    """Two tables on one cell would give Excel a row with a cell twice, which it 'repairs'."""
    boxes = [(t.row, t.row + t.n_rows + 1, t.col, t.col + len(t.columns)) for t in plan.tables]
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        for s0, s1, d0, d1 in boxes[k + 1:]:
            if r0 < s1 and s0 < r1 and c0 < d1 and d0 < c1:
                raise BackendError(f"tab {plan.name!r}: two tables overlap; the layout must keep them apart")


def plain_values(values: Any) -> Any:
    """A pandas column as numpy (nullable numbers as floats with NaN for missing), else as is."""
    if not hasattr(values, "to_numpy"):
        return values
    if getattr(values.dtype, "kind", "O") in "iufb" and values.isna().any():
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return values.to_numpy()


def _blank(value: Any) -> bool:
    if value is None or isinstance(value, str) and not value:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing values


def _row_xml(row: int, pieces: list[tuple[int, str]], height: float | None = None) -> str:
    if len(pieces) > 1:
        pieces.sort(key=lambda p: p[0])
    ht = f' ht="{height:g}" customHeight="1"' if height else ""
    return f'<row r="{row + 1}"{ht}>' + "".join(xml for _, xml in pieces) + "</row>"


def column_cells(letter: str, rownums: list[str], data: ColumnData, i0: int, i1: int) -> list[str]:
    """The cells of one column's rows i0..i1, one string each ('' for a blank)."""
    values = data.values[i0:i1]
    if isinstance(values, np.ndarray):
        values = values.tolist()
    formulas = data.formulas[i0:i1] if data.formulas else [None] * len(rownums)
    return [cell_xml(letter + r, v, data.style, f) for r, v, f in zip(rownums, values, formulas)]


class RowsRenderer:
    """The data rows of one table as XML, a chunk of rows at a time.

    The fast path for big numeric tables: the numbers are written as text in C (`number_texts`),
    then a whole chunk is made by one %-format of a template repeated once per row, the row
    numbers and texts laid out by slice assignments: no Python work per cell or per row. Other
    columns are rendered beforehand (`column_cells`) and slotted in whole. Rows holding a
    NaN/infinity (written blank) or an overlaid cell are rendered apart (`odd_row`) and swapped
    in. Tables of numbers only are rendered as bytes (no encoding afterwards), others as str.
    """

    def __init__(self, letters: list[str], columns: list[ColumnData], first_row: int, framed: bool):
        self.letters, self.columns, self.first_row, self.framed_rows = letters, columns, first_row, framed
        self.as_bytes = all(c.fast for c in columns)
        cells = "".join(f'<c r="{letter}%s"{_style_attr(c.style)}><v>%s</v></c>' if c.fast else "%s"
                        for letter, c in zip(letters, columns))
        self.row = f'<row r="%s">{cells}</row>' if framed else cells
        self.width = (1 if framed else 0) + sum(2 if c.fast else 1 for c in columns)
        self._templates: dict[tuple[int, bool], Any] = {}

    def framed(self, i0: int, i1: int, patches: dict[tuple[int, int], str]) -> str | bytes:
        """Rows i0..i1 as <row> elements, one text."""
        text, odd, fields, rownums = self._render(i0, i1, patches, separate=False)
        if not odd:
            return text
        rows = text.split(self._sep)[:-1]
        for k, cell_patches in odd.items():
            cells = odd_row(self.letters, self.columns, fields, k, i0 + k, rownums[k], cell_patches)
            rows[k] = self._text(f'<row r="{rownums[k]}">{cells}</row>')
        return self._sep[:0].join(rows)

    def separate(self, i0: int, i1: int, patches: dict[tuple[int, int], str]) -> list[str]:
        """The cells of rows i0..i1, one string per row."""
        text, odd, fields, rownums = self._render(i0, i1, patches, separate=True)
        if self.as_bytes:
            text = text.decode("ascii")
        rows = text.split("\0")[:-1]
        for k, cell_patches in odd.items():
            rows[k] = odd_row(self.letters, self.columns, fields, k, i0 + k, rownums[k], cell_patches)
        return rows

    @property
    def _sep(self):
        return b"\0" if self.as_bytes else "\0"

    def _text(self, text: str):
        return text.encode("utf-8") if self.as_bytes else text

    def _render(self, i0: int, i1: int, patches: dict[tuple[int, int], str], separate: bool):
        """(text of the chunk, {odd row: its patches}, the columns' texts or cells, row numbers).

        The text separates rows by NUL (which no cell holds: XML cannot) when `separate` or
        when some row is odd and must be swapped."""
        columns, n = self.columns, i1 - i0
        rownums = [str(self.first_row + i) for i in range(i0, i1)]
        odd: dict[int, list[tuple[int, str]]] = {}
        for (i, j), xml in patches.items():
            odd.setdefault(i - i0, []).append((j, xml))
        fields = []
        for j, data in enumerate(columns):
            if not data.fast:
                fields.append(column_cells(self.letters[j], rownums, data, i0, i1))
                continue
            block = data.values[i0:i1]
            if block.dtype.kind == "f":
                for k in np.flatnonzero(~np.isfinite(block)).tolist():
                    odd.setdefault(k, [])
            fields.append(number_texts(block, self.as_bytes))
        numbers = rownums
        if self.as_bytes:
            numbers = number_texts(np.arange(self.first_row + i0, self.first_row + i1), True)
        args: list = [None] * (n * self.width)
        w, at = self.width, 0
        if self.framed_rows:
            args[0::w] = numbers
            at = 1
        for data, texts in zip(columns, fields):
            if data.fast:
                args[at::w] = numbers
                at += 1
            args[at::w] = texts
            at += 1
        return self._template(n, separate or bool(odd)) % tuple(args), odd, fields, rownums

    def _template(self, n: int, separated: bool):
        key = (n, separated)
        if key not in self._templates:
            row = self.row + ("\0" if separated else "")
            self._templates[key] = self._text(row * n)
        return self._templates[key]


_NUMBER_DTYPES = {np.dtype(t) for t in ("float64", "int8", "int16", "int32", "int64",
                                       "uint8", "uint16", "uint32", "uint64")}


def number_texts(block: np.ndarray, as_bytes: bool = False) -> list[str] | list[bytes]:
    """The numbers of a 1-D array as cell texts, NaN and infinities as "null" (written blank).

    orjson writes a float as the shortest text that reads back as the same double (as repr
    does, in another notation: 0.00001 for 1e-05, 1e16 for 1e+16, always with a "." or an
    exponent, so it never reads back as an integer), an integer in decimal, and does it in C,
    ~20x faster than repr per float. Other float types are widened to float64 first (exact,
    the value `tolist` gives)."""
    if len(block) == 0:
        return []
    if block.dtype not in _NUMBER_DTYPES:
        block = block.astype(np.float64 if block.dtype.kind == "f" else np.int64)
    data = orjson.dumps(np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    return data.split(b",") if as_bytes else data.decode("ascii").split(",")


def _style_attr(style: int) -> str:
    return f' s="{style}"' if style else ""


def odd_row(letters: list[str], columns: list[ColumnData], fields: list[list], k: int, index: int,
            rownum: str, patches: list[tuple[int, str]]) -> str:
    """Data row `index` of a table (row k of its chunk, sheet row `rownum`) cell by cell:
    numbers from the arrays, other cells as rendered in `fields`, overlaid cells from `patches`."""
    cells = []
    for j, data in enumerate(columns):
        if data.fast:
            cells.append(cell_xml(letters[j] + rownum, data.values[index], data.style))
        else:
            cells.append(fields[j][k])
    for j, xml in patches:
        cells[j] = xml
    return "".join(cells)


# =============================================================================================
# Comments and charts (openpyxl's serialisers, fed directly)


def comment_parts(notes: list[tuple[int, int, str]], blocks: list[int]) -> tuple[bytes, bytes]:
    """comments.xml and its VML (Excel shows a note only when both exist).

    openpyxl numbers every sheet's shapes from block 1; `blocks` are ours alone, so the shapes
    never collide with the user's comments on other sheets.
    """
    from openpyxl.comments.comment_sheet import CommentRecord, CommentSheet
    from openpyxl.xml.functions import tostring

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
