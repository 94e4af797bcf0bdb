"""The Google Sheets backend: one read round, one atomic write, inside the quotas.

Requests per run (the token exchange not counted):

1. ``spreadsheets.get`` with a field mask: every tab's id, title, index, grid size, hidden
   flag and developer metadata (sheetsync marks the tabs it owns with the key
   ``sheetsync.owned``; a hidden staging tab carries ``sheetsync.staging``).
2. one request for the values of every asked-for tab that exists, plus sheetsync's small
   owned tabs (epochs, state, runs) so that a caller's second read costs nothing. By default
   this is ``spreadsheets.get`` with ``ranges`` and a grid-data field mask (effective value and
   number format type) rather than ``values.batchGet``: 2x (demo) to 8x (10,000 numeric rows)
   the bytes received (bench/google_requests.py), but it tells a date from a number and an
   error from a text, as the local backend can.
   ``value_source="values"`` uses ``values.batchGet`` (UNFORMATTED_VALUE, SERIAL_NUMBER)
   instead. The two requests cannot be merged into one: with ``ranges`` Google returns only
   the tabs the ranges touch (and a range naming a missing tab fails the whole request), and
   every tab's title is needed to protect the user's tabs.
3. ``spreadsheets.batchUpdate``: the whole plan at once, atomically — delete the previous
   owned tabs (and leftover staging tabs), ``addSheet`` with ids chosen here, ``updateCells``
   with typed values, formats, widths, notes, fills, charts and the ownership marks.

Above the payload limit (2 MB, Google's recommendation) the cells are written into hidden
staging tabs in several requests — headers, formats and formulas by ``batchUpdate``, plain
values by ``values.batchUpdate`` with RAW input (a third of updateCells' bytes; atomicity is
the swap's job) — then one final atomic request deletes the old owned tabs, renames and
unhides the staging tabs and adds charts and marks. A failure before the swap
leaves the visible sheet as it was; the next run deletes leftover staging tabs in its final
request.

Edges, documented the gspread-dataframe way:

- Reads: rows come back ragged (trailing empties cut) and empty tabs have no rows; integral
  numbers read as ``int``; numbers formatted as DATE/TIME/DATE_TIME read as `DateCell` (ISO
  text as the local backend renders it); error values read as `CellError` (``#DIV/0!``…);
  formulas read as their computed value. With ``value_source="values"`` dates read as serial
  numbers and an error reads as `CellError` only when its text is one of the known codes.
- Writes: NaN and infinities are never sent (Google rejects NaN in JSON): the cell is left
  blank, as the local backend does. Text starting with ``=`` is written as text; formulas only
  come from `Column.formulas` / `Text.formula`. The ``General`` number format is Sheets'
  default and is not sent. Series names in charts come from the header cell above a series'
  range when the plan has one there (Sheets takes names from header rows). A scatter chart
  uses one domain: the chart's, or the first series' x range. Tab titles clash ignoring case,
  as they do in Sheets.
- Retries: every object a write creates (sheets, marks, charts) has an id chosen here, so a
  retried write whose first answer was lost but which did land is refused by Google (ids
  exist); we then look at the sheet: if our tabs are there with this run's mark, it landed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from numbers import Number
from typing import Any, Callable, Iterator, Sequence

import google.auth.exceptions
import gspread
import numpy as np
import requests
from gspread.exceptions import APIError

from ..a1 import col_letter, quote_tab
from ..errors import BackendError, OwnershipError
from .base import (Chart, ColorScale, Column, CellError, CellValue, DateCell, Highlight, Plan, RangeRef,
                   Snapshot, TabInfo, TabPlan, Table, Text)
from .order import NEW, arrange
from .retry import Limiter, Outcome, RetryPolicy, send_with_retry, shared_buckets
from .targets import Identity, load_credentials, parse_target, token_fingerprint

log = logging.getLogger(__name__)

API = "https://sheets.googleapis.com/v4/spreadsheets"
OWNED_KEY = "sheetsync.owned"
# Google's words when a tab we planned around was deleted or a title was taken meanwhile.
STALE_TABS = re.compile(r"No grid with id|already exists")
READ_AHEAD_KINDS = frozenset({"epochs", "state", "runs"})  # small owned tabs a run reads back
STAGING_KEY = "sheetsync.staging"
PAYLOAD_LIMIT = 2_000_000  # bytes; Google recommends at most 2 MB per request
MAX_SHEET_ID = 2**31 - 1

METADATA_FIELDS = (
    "spreadsheetId,properties.title,"
    "sheets(properties(sheetId,title,index,hidden,sheetType,gridProperties(rowCount,columnCount)),"
    "developerMetadata(metadataId,metadataKey,metadataValue))")
GRID_FIELDS = ("sheets(properties.title,data(startRow,startColumn,"
               "rowData.values(effectiveValue,effectiveFormat.numberFormat.type)))")

ERROR_CODES = {  # Sheets ErrorValue.type -> what the cell shows
    "ERROR": "#ERROR!", "NULL_VALUE": "#NULL!", "DIVIDE_BY_ZERO": "#DIV/0!", "VALUE": "#VALUE!",
    "REF": "#REF!", "NAME": "#NAME?", "NUM": "#NUM!", "N_A": "#N/A", "LOADING": "Loading...",
}
ERROR_TEXTS = frozenset(ERROR_CODES.values())
DATE_TYPES = {"DATE", "DATE_TIME", "TIME"}
SERIAL_EPOCH = datetime(1899, 12, 30)


# ---------------------------------------------------------------------------------------------
# Errors


class ApiFailure(BackendError):
    """The Sheets API said no; `status`/`reason` let callers look closer before giving up."""

    def __init__(self, message: str, status: int | None = None, reason: str = "",
                 google_message: str = "", attempts: int = 1):
        super().__init__(message)
        self.status, self.reason, self.google_message, self.attempts = (
            status, reason, google_message, attempts)


def google_error(response: requests.Response) -> tuple[str, str]:
    """(status name, message) from Google's error body; tolerant of HTML error pages."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return "", ""
    if not isinstance(error, dict):
        return "", str(error)[:300]
    return str(error.get("status", "")), str(error.get("message", ""))[:500]


def explain(outcome: Outcome, key: str, identity: Identity, action: str) -> ApiFailure:
    """A message a user can act on. Never includes a token or key material."""
    if outcome.response is None:
        kind = type(outcome.error).__name__
        return ApiFailure(f"could not reach Google Sheets to {action} ({kind} after "
                          f"{outcome.attempts} attempts); check the network and try again",
                          None, kind, "", outcome.attempts)
    status = outcome.response.status_code
    reason, message = google_error(outcome.response)
    who = (f"the service account {identity.email}" if identity.kind == "service_account"
           else "your Google account")
    if reason == "FAILED_PRECONDITION" and "not supported for this document" in message:
        text = (f"spreadsheet {key} is an uploaded Excel file, not a Google Sheet; open it in "
                "Google Sheets and use File > Save as Google Sheets, then use the new sheet's "
                "URL (or download the .xlsx and run sheetsync on the file)")
    elif status == 401:
        text = ("Google did not accept the credentials (expired or revoked); sign in again, "
                "or have the add-on send a fresh token")
    elif status == 403 and "scope" in message.lower():
        text = (f"the credentials of {who} lack the Google Sheets scope "
                "(https://www.googleapis.com/auth/spreadsheets); authorise that scope")
    elif status == 403:
        text = (f"spreadsheet {key} is not shared with {who}: open it in Google Sheets, click "
                f"Share and add {identity.email} as an Editor" if identity.kind == "service_account"
                else f"{who} may not edit spreadsheet {key}; ask its owner to share it with you")
    elif status == 404:
        text = f"no Google spreadsheet with key {key}: check the URL (the sheet may be deleted)"
    elif status == 429:
        text = (f"Google Sheets quota exceeded while trying to {action} ({outcome.attempts} "
                "attempts); wait a minute and run again")
    elif status >= 500 or status == 408:
        text = (f"Google Sheets is unavailable (HTTP {status}) after {outcome.attempts} "
                f"attempts to {action}; try again later")
    else:
        text = f"Google Sheets refused to {action} (HTTP {status} {reason}): {message}"
    return ApiFailure(text, status, reason, message, outcome.attempts)


# ---------------------------------------------------------------------------------------------
# What the spreadsheet holds


@dataclass
class SheetMeta:
    sheet_id: int
    title: str
    index: int
    hidden: bool
    rows: int
    cols: int
    marks: list[dict] = field(default_factory=list)

    def mark(self, key: str) -> dict | None:
        for m in self.marks:
            if m.get("metadataKey") == key:
                return m
        return None

    def mark_value(self, key: str) -> dict:
        m = self.mark(key)
        try:
            value = json.loads(m.get("metadataValue", "{}")) if m else {}
        except ValueError:
            value = {}
        return value if isinstance(value, dict) else {}

    @property
    def owned(self) -> bool:
        return self.mark(OWNED_KEY) is not None

    @property
    def staging(self) -> bool:
        return self.mark(STAGING_KEY) is not None


@dataclass
class Metadata:
    sheets: list[SheetMeta]

    @classmethod
    def from_json(cls, body: dict) -> "Metadata":
        sheets = []
        for sheet in body.get("sheets", []):
            p = sheet.get("properties", {})
            grid = p.get("gridProperties", {})
            sheets.append(SheetMeta(p.get("sheetId", 0), p.get("title", ""), p.get("index", 0),
                                    bool(p.get("hidden", False)), grid.get("rowCount", 0),
                                    grid.get("columnCount", 0), sheet.get("developerMetadata", [])))
        return cls(sorted(sheets, key=lambda s: s.index))

    def by_title(self, title: str) -> SheetMeta | None:
        return next((s for s in self.sheets if s.title == title), None)

    def clashing(self, title: str) -> SheetMeta | None:
        """The tab a new tab named `title` would clash with: Sheets titles ignore case."""
        folded = title.casefold()
        return next((s for s in self.sheets if s.title.casefold() == folded), None)

    def ids(self) -> set[int]:
        return {s.sheet_id for s in self.sheets}

    def mark_ids(self) -> set[int]:
        return {m.get("metadataId") for s in self.sheets for m in s.marks if "metadataId" in m}

    def tab_infos(self) -> list[TabInfo]:
        return [TabInfo(s.title, s.index, s.owned, s.rows, s.cols, s.sheet_id)
                for s in self.sheets if not s.staging]


# ---------------------------------------------------------------------------------------------
# Reading cells


def serial_text(serial: float) -> str:
    """ISO text of a serial date, exactly as the local backend (openpyxl) renders it."""
    from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel

    try:
        return from_excel(serial, CALENDAR_WINDOWS_1900).isoformat()
    except (OverflowError, ValueError, TypeError):
        return str(serial)


def plain_number(v: float | int) -> float | int:
    """Integral numbers as int (as openpyxl reads them), others as float."""
    if isinstance(v, int):
        return v
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v)


def grid_cell(cell: dict) -> CellValue:
    """A `CellData` from the grid read (effectiveValue + number format type) as a CellValue."""
    value = cell.get("effectiveValue")
    if not value:
        return None
    if "errorValue" in value:
        return CellError(ERROR_CODES.get(value["errorValue"].get("type", "ERROR"), "#ERROR!"))
    if "numberValue" in value:
        kind = cell.get("effectiveFormat", {}).get("numberFormat", {}).get("type")
        if kind in DATE_TYPES:
            return DateCell(float(value["numberValue"]), serial_text(value["numberValue"]))
        return plain_number(value["numberValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    return value.get("stringValue")


def values_cell(value: Any) -> CellValue:
    """A value from values.batchGet (UNFORMATTED_VALUE) as a CellValue."""
    if value == "":
        return None
    if isinstance(value, str) and value in ERROR_TEXTS:
        return CellError(value)
    if isinstance(value, bool) or isinstance(value, str):
        return value
    return plain_number(value)


def trim(rows: list[list[CellValue]]) -> list[list[CellValue]]:
    """Cut trailing empty cells and trailing empty rows (ragged, like the API's own answers)."""
    out = []
    for row in rows:
        while row and row[-1] is None:
            row = row[:-1]
        out.append(row)
    while out and not out[-1]:
        out.pop()
    return out


def grid_rows(sheet: dict) -> list[list[CellValue]]:
    rows: list[list[CellValue]] = []
    for block in sheet.get("data", []):
        r0, c0 = block.get("startRow", 0), block.get("startColumn", 0)
        for i, row in enumerate(block.get("rowData", [])):
            r = r0 + i
            while len(rows) <= r:
                rows.append([])
            cells = [grid_cell(c) for c in row.get("values", [])]
            line = rows[r]
            line.extend([None] * (c0 + len(cells) - len(line)))
            line[c0:c0 + len(cells)] = cells
    return trim(rows)


# ---------------------------------------------------------------------------------------------
# Writing cells


def typed_value(v: Any) -> dict:
    """An ExtendedValue for a plain value; {} for blank."""
    if v is None:
        return {}
    if isinstance(v, (bool, np.bool_)):
        return {"boolValue": bool(v)}
    if isinstance(v, (Number, np.number)):
        f = float(v)
        if not math.isfinite(f):
            return {}  # blank, as in the local backend: a spreadsheet has no such numbers
        if isinstance(v, (int, np.integer)) and abs(int(v)) < 2**53:
            return {"numberValue": int(v)}
        return {"numberValue": f}
    if isinstance(v, datetime):
        return {"numberValue": (v - SERIAL_EPOCH) / timedelta(days=1)}
    return {"stringValue": str(v)}


def raw_value(v: Any) -> Any:
    """A plain JSON value for values.batchUpdate with RAW input: stored as-is, null = skipped."""
    value = typed_value(v)
    return next(iter(value.values())) if value else None


def value_cell(v: Any, formula: str | None = None) -> dict:
    if formula:
        return {"userEnteredValue": {"formulaValue": formula}}
    value = typed_value(v)
    return {"userEnteredValue": value} if value else {}


def as_list(values: Sequence[Any]) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def number_format(pattern: str) -> dict:
    lowered = pattern.lower()
    if "%" in pattern:
        kind = "PERCENT"
    elif "e+" in lowered or "e-" in lowered:
        kind = "SCIENTIFIC"
    elif any(t in lowered for t in ("yy", "dd", "mmm")):
        kind = "DATE_TIME" if ("h" in lowered or "ss" in lowered) else "DATE"
    elif "hh" in lowered or ":ss" in lowered:
        kind = "TIME"
    else:
        kind = "NUMBER"
    return {"type": kind, "pattern": pattern}


def rgb(hex_color: str) -> dict:
    h = hex_color.lstrip("#")[-6:]
    return {"red": int(h[0:2], 16) / 255, "green": int(h[2:4], 16) / 255, "blue": int(h[4:6], 16) / 255}


def grid_range(sheet_id: int, r0: int, c0: int, r1: int, c1: int) -> dict:
    return {"sheetId": sheet_id, "startRowIndex": r0, "endRowIndex": r1,
            "startColumnIndex": c0, "endColumnIndex": c1}


def dumps(obj: Any) -> str:
    """Compact JSON; refuses NaN so a stray one fails here, not at Google."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass
class Sub:
    """One sub-request of a batchUpdate, serialised once (its size drives chunking)."""

    json: str

    @classmethod
    def of(cls, request: dict) -> "Sub":
        return cls(dumps(request))

    @property
    def size(self) -> int:
        return len(self.json.encode("utf-8"))


def batch_body(subs: Sequence[Sub]) -> bytes:
    return ('{"requests":[' + ",".join(s.json for s in subs) + "]}").encode("utf-8")


def values_body(ranges: Sequence[Sub]) -> bytes:
    return ('{"valueInputOption":"RAW","data":[' + ",".join(s.json for s in ranges) + "]}").encode("utf-8")


class TabWriter:
    """The sub-requests that fill one tab (its sheet exists with id `sheet_id`)."""

    def __init__(self, tab: TabPlan, sheet_id: int, block_bytes: int, raw_title: str | None = None):
        self.tab, self.sid, self.block_bytes = tab, sheet_id, block_bytes
        # Staging: plain values of formula-free tables go to values.batchUpdate (RAW) for the
        # tab titled `raw_title` — a third of updateCells' bytes; atomicity comes from the swap.
        self.raw_title = raw_title
        self.value_ranges: list[Sub] = []

    def requests(self) -> list[Sub]:
        subs: list[Sub] = []
        for table in self.tab.tables:
            subs += self.table(table)
        subs += [self.text(t) for t in self.tab.texts]
        for t in self.tab.texts:
            if t.span > 1:
                subs.append(Sub.of({"mergeCells": {
                    "range": grid_range(self.sid, t.row, t.col, t.row + 1, t.col + t.span), "mergeType": "MERGE_ALL"}}))
        for h in self.tab.highlights:
            subs += self.highlight(h)
        for row, points in sorted(self.tab.row_heights.items()):
            subs.append(Sub.of({"updateDimensionProperties": {
                "range": {"sheetId": self.sid, "dimension": "ROWS", "startIndex": row, "endIndex": row + 1},
                "properties": {"pixelSize": int(round(points * 4 / 3))}, "fields": "pixelSize"}}))
        subs += [self.color_scale(cs, k) for k, cs in enumerate(self.tab.color_scales)]
        return subs

    def color_scale(self, cs: ColorScale, index: int) -> Sub:
        kinds = {"min": ("MIN", None), "median": ("PERCENTILE", "50"), "max": ("MAX", None)}
        rule = {}
        for key, (where, fixed, colour) in zip(("minpoint", "midpoint", "maxpoint"), cs.points()):
            kind, value = ("NUMBER", repr(float(fixed))) if fixed is not None else kinds[where]
            rule[key] = {"type": kind, "colorStyle": {"rgbColor": rgb(colour)}}
            if value is not None:
                rule[key]["value"] = value
        return Sub.of({"addConditionalFormatRule": {"index": index, "rule": {
            "ranges": [grid_range(self.sid, cs.row, cs.col, cs.row + cs.n_rows, cs.col + cs.n_cols)],
            "gradientRule": rule}}})

    def update_cells(self, row: int, col: int, rows: list[dict], fields: str) -> Sub:
        return Sub.of({"updateCells": {"start": {"sheetId": self.sid, "rowIndex": row, "columnIndex": col},
                                       "rows": rows, "fields": fields}})

    def table(self, table: Table) -> list[Sub]:
        if not table.columns:
            return []
        subs = [self.update_cells(table.row, table.col, [{"values": [self.header(c, table) for c in table.columns]}],
                                  "userEnteredValue,userEnteredFormat.textFormat.bold,note")]
        subs += self.body_blocks(table)
        for j, column in enumerate(table.columns):
            c = table.col + j
            if column.number_format and column.number_format != "General" and table.n_rows:
                subs.append(Sub.of({"repeatCell": {
                    "range": grid_range(self.sid, table.row + 1, c, table.row + 1 + table.n_rows, c + 1),
                    "cell": {"userEnteredFormat": {"numberFormat": number_format(column.number_format)}},
                    "fields": "userEnteredFormat.numberFormat"}}))
            if column.wrap and table.n_rows:
                subs.append(Sub.of({"repeatCell": {
                    "range": grid_range(self.sid, table.row + 1, c, table.row + 1 + table.n_rows, c + 1),
                    "cell": {"userEnteredFormat": {"wrapStrategy": "WRAP", "verticalAlignment": "TOP"}},
                    "fields": "userEnteredFormat.wrapStrategy,userEnteredFormat.verticalAlignment"}}))
            if column.width:
                subs.append(Sub.of({"updateDimensionProperties": {
                    "range": {"sheetId": self.sid, "dimension": "COLUMNS", "startIndex": c, "endIndex": c + 1},
                    "properties": {"pixelSize": int(round(column.width * 7 + 5))},
                    "fields": "pixelSize"}}))
        return subs

    @staticmethod
    def header(column: Column, table: Table) -> dict:
        cell = value_cell(column.header)
        if table.bold_header:
            cell["userEnteredFormat"] = {"textFormat": {"bold": True}}
        if column.note:
            cell["note"] = column.note
        return cell

    def body_blocks(self, table: Table) -> list[Sub]:
        """Data rows as updateCells requests of at most ~`block_bytes` each."""
        if self.raw_title is not None and all(c.formulas is None for c in table.columns):
            self.value_ranges += self.raw_blocks(table)
            return []
        columns = [as_list(c.values) for c in table.columns]
        formulas = [as_list(c.formulas) if c.formulas is not None else None for c in table.columns]
        subs, block, size, start = [], [], 0, table.row + 1
        for i in range(table.n_rows):
            row = {"values": [value_cell(columns[j][i], formulas[j][i] if formulas[j] else None)
                              for j in range(len(columns))]}
            block.append(row)
            size += len(dumps(row))
            if size >= self.block_bytes:
                subs.append(self.update_cells(start, table.col, block, "userEnteredValue"))
                start, block, size = table.row + 2 + i, [], 0
        if block:
            subs.append(self.update_cells(start, table.col, block, "userEnteredValue"))
        return subs

    def raw_blocks(self, table: Table) -> list[Sub]:
        """Data rows as ValueRanges (plain JSON values, null for blank) of ~`block_bytes` each."""
        columns = [as_list(c.values) for c in table.columns]
        ranges, block, size, start = [], [], 0, table.row + 1
        for i in range(table.n_rows):
            row = [raw_value(column[i]) for column in columns]
            block.append(row)
            size += len(dumps(row))
            if size >= self.block_bytes:
                ranges.append(self.value_range(start, table.col, block))
                start, block, size = table.row + 2 + i, [], 0
        if block:
            ranges.append(self.value_range(start, table.col, block))
        return ranges

    def value_range(self, row: int, col: int, rows: list[list]) -> Sub:
        width = max(len(r) for r in rows)
        a1 = f"{quote_tab(self.raw_title, always=True)}!{col_letter(col)}{row + 1}:{col_letter(col + width - 1)}{row + len(rows)}"
        return Sub.of({"range": a1, "majorDimension": "ROWS", "values": rows})

    def text(self, text: Text) -> Sub:
        cell = value_cell(text.value, text.formula)
        fmt: dict = {}
        if text.bold:
            fmt["textFormat"] = {"bold": True}
        if text.number_format and text.number_format != "General":
            fmt["numberFormat"] = number_format(text.number_format)
        fields = "userEnteredValue,userEnteredFormat.textFormat.bold,userEnteredFormat.numberFormat,note"
        if text.wrap:
            fmt.update({"wrapStrategy": "WRAP", "verticalAlignment": "TOP"})
            fields += ",userEnteredFormat.wrapStrategy,userEnteredFormat.verticalAlignment"
        if fmt:
            cell["userEnteredFormat"] = fmt
        if text.note:
            cell["note"] = text.note
        return self.update_cells(text.row, text.col, [{"values": [cell]}], fields)

    def highlight(self, h: Highlight) -> list[Sub]:
        subs = [Sub.of({"repeatCell": {
            "range": grid_range(self.sid, h.row, h.col, h.row + h.n_rows, h.col + h.n_cols),
            "cell": {"userEnteredFormat": {"backgroundColorStyle": {"rgbColor": rgb(h.color)}}},
            "fields": "userEnteredFormat.backgroundColorStyle"}})]
        if h.note:
            subs.append(self.update_cells(h.row, h.col, [{"values": [{"note": h.note}]}], "note"))
        return subs


MIN_CELL_BYTES = 40  # no updateCells cell is smaller: {"userEnteredValue":{"numberValue":1}},


def cell_count(plan: Plan) -> int:
    return sum(t.n_rows * len(t.columns) for tab in plan.tabs for t in tab.tables)


def tab_grid(tab: TabPlan) -> tuple[int, int]:
    """(rows, cols) the new sheet needs: the plan's extent, fills and chart anchors, frozen+1."""
    rows, cols = tab.extent()
    for h in tab.highlights:
        rows, cols = max(rows, h.row + h.n_rows), max(cols, h.col + h.n_cols)
    for chart in tab.charts:
        rows, cols = max(rows, chart.anchor[0] + 1), max(cols, chart.anchor[1] + 1)
    return max(rows, tab.frozen_rows + 1, 1), max(cols, tab.frozen_cols + 1, 1)


def add_sheet(tab: TabPlan, sheet_id: int, title: str, hidden: bool, index: int | None = None) -> Sub:
    rows, cols = tab_grid(tab)
    grid = {"rowCount": rows, "columnCount": cols}
    if tab.frozen_rows:
        grid["frozenRowCount"] = tab.frozen_rows
    if tab.frozen_cols:
        grid["frozenColumnCount"] = tab.frozen_cols
    props = {"sheetId": sheet_id, "title": title, "sheetType": "GRID", "hidden": hidden, "gridProperties": grid}
    if index is not None:
        props["index"] = index
    return Sub.of({"addSheet": {"properties": props}})


def tab_positions(plan: Plan, meta: Metadata, drop: bool) -> dict[str, int]:
    """The index each plan tab's addSheet names (`order.arrange`: a replaced tab keeps its place).
    Adds are sent in increasing index, after the deletes (`drop`) or before them."""
    stale = {s.sheet_id for s in stale_sheets(plan, meta)}
    replaced = {i for i, s in enumerate(meta.sheets) if s.sheet_id in stale}
    order = arrange([s.title for s in meta.sheets], [t.name for t in plan.tabs], replaced, drop)
    return {plan.tabs[k].name: pos for pos, (kind, k) in enumerate(order) if kind == NEW}


def mark(sheet_id: int, key: str, value: dict, metadata_id: int | None = None) -> Sub:
    meta = {"metadataKey": key, "metadataValue": dumps(value), "location": {"sheetId": sheet_id},
            "visibility": "DOCUMENT"}
    if metadata_id is not None:
        meta["metadataId"] = metadata_id
    return Sub.of({"createDeveloperMetadata": {"developerMetadata": meta}})


class ChartWriter:
    """addChart requests; RangeRefs resolved to sheet ids (new tabs or the user's)."""

    def __init__(self, sheet_ids: dict[str, int], headers: dict[tuple[str, int, int], str]):
        self.sheet_ids, self.headers = sheet_ids, headers

    def source(self, ref: RangeRef, with_header: bool) -> dict:
        if ref.tab not in self.sheet_ids:
            raise BackendError(f"chart refers to tab {ref.tab!r}, which neither exists nor is written")
        r0 = ref.row0 - 1 if with_header else ref.row0
        return {"sourceRange": {"sources": [grid_range(self.sheet_ids[ref.tab], r0, ref.col0, ref.row1, ref.col1)]}}

    def named_by_header(self, chart: Chart) -> bool:
        """True when every series' name sits in the cell just above its range (use headerCount=1)."""
        return bool(chart.series) and all(
            s.y.row0 > 0 and self.headers.get((s.y.tab, s.y.row0 - 1, s.y.col0)) == s.name
            for s in chart.series)

    def request(self, chart: Chart, sheet_id: int, chart_id: int) -> Sub:
        header = self.named_by_header(chart)
        domain = chart.domain or next((s.x for s in chart.series if s.x is not None), None)
        spec: dict = {"chartType": "SCATTER" if chart.kind == "scatter" else "LINE",
                      "legendPosition": "BOTTOM_LEGEND" if len(chart.series) > 1 else "NO_LEGEND",
                      "headerCount": 1 if header else 0,
                      "axis": [axis("BOTTOM_AXIS", chart.x_title, chart.x_min, chart.x_max),
                               axis("LEFT_AXIS", chart.y_title, chart.y_min, chart.y_max)],
                      "series": [{"series": self.source(s.y, header), "targetAxis": "LEFT_AXIS"}
                                 for s in chart.series]}
        if domain is not None:
            spec["domains"] = [{"domain": self.source(domain, header and domain.row0 > 0)}]
        return Sub.of({"addChart": {"chart": {
            "chartId": chart_id,
            "spec": {"title": chart.title, "basicChart": spec},
            "position": {"overlayPosition": {
                "anchorCell": {"sheetId": sheet_id, "rowIndex": chart.anchor[0], "columnIndex": chart.anchor[1]},
                "widthPixels": chart.width_px, "heightPixels": chart.height_px}}}}})


def axis(position: str, title: str, lo: float | None, hi: float | None) -> dict:
    out: dict = {"position": position, "title": title}
    if lo is not None or hi is not None:
        window: dict = {"viewWindowMode": "EXPLICIT"}
        if lo is not None:
            window["viewWindowMin"] = lo
        if hi is not None:
            window["viewWindowMax"] = hi
        out["viewWindowOptions"] = window
    return out


def header_cells(plan: Plan) -> dict[tuple[str, int, int], str]:
    cells = {}
    for tab in plan.tabs:
        for table in tab.tables:
            for j, column in enumerate(table.columns):
                cells[(tab.name, table.row, table.col + j)] = column.header
    return cells


BODY_OVERHEAD = 40  # the envelope around the sub-requests or value ranges of one body


def chunk(subs: Sequence[Sub], limit: int, first: Sequence[Sub] = ()) -> list[list[Sub]]:
    """Greedy groups of sub-requests whose bodies stay under `limit` bytes; `first` leads."""
    groups: list[list[Sub]] = [list(first)]
    size = sum(s.size + 1 for s in first) + BODY_OVERHEAD
    for sub in subs:
        if groups[-1] and size + sub.size + 1 > limit:
            groups.append([])
            size = BODY_OVERHEAD
        groups[-1].append(sub)
        size += sub.size + 1
    return [g for g in groups if g]


# ---------------------------------------------------------------------------------------------
# The backend


@dataclass
class WritePlan:
    """The batchUpdate bodies for one apply: `chunks` (staging) then the `final` atomic one."""

    run: str
    final: list[Sub]
    chunks: list[tuple[str, list[Sub]]]  # ("batch", sub-requests) or ("values", value ranges)
    new_ids: dict[str, int]
    staging_ids: list[int]


class GoogleBackend:
    """`read` and `apply` against one spreadsheet, through gspread's HTTP client."""

    def __init__(self, key: str, credentials, *, identity: Identity | None = None,
                 bucket: Limiter | None = None, retry: RetryPolicy | None = None,
                 payload_limit: int = PAYLOAD_LIMIT, value_source: str = "grid",
                 timeout: float | tuple[float, float] | None = (10, 180),
                 rng: random.Random | None = None):
        if value_source not in ("grid", "values"):
            raise ValueError("value_source must be 'grid' or 'values'")
        self.key = key
        self.identity = identity or identity_of(credentials)
        self.client = gspread.Client(auth=credentials)
        self.http = self.client.http_client
        self.http.set_timeout(timeout)
        self.bucket = bucket or shared_buckets()
        self.retry = retry or RetryPolicy()
        self.payload_limit = payload_limit
        self.value_source = value_source
        self.rng = rng or random.Random(secrets.randbits(64))
        self._meta: Metadata | None = None
        self._values: dict[str, list[list[CellValue]]] = {}

    @classmethod
    def open(cls, target: str, credentials_path=None, *, token: str | None = None, **kwargs) -> "GoogleBackend":
        key = parse_target(target)
        if key is None:
            raise BackendError(f"{target}: not a Google Sheets URL or key")
        creds, identity = load_credentials(credentials_path, token=token)
        return cls(key, creds, identity=identity, **kwargs)

    @contextlib.contextmanager
    def writing(self, force: bool = False) -> Iterator[None]:
        """One writer of this spreadsheet on this machine, from the first read to the write: a
        lock file per spreadsheet in the user's state folder, taken by the CLI, the server and
        the scheduler alike (the server's and the scheduler's own locks are taken before it,
        so the order never inverts). Across machines the scheduler's Redis lock does the same.
        The Sheets API has no revision to check before a write without a Drive request, so
        this lock is the guard. `force` is for local workbooks open in an office suite."""
        from ..locks import SpreadsheetLocks, default_lock_folder

        if getattr(self, "_writing", 0):  # nested (the scheduler, then the runner): held already
            self._writing += 1
            try:
                yield
            finally:
                self._writing -= 1
            return
        with SpreadsheetLocks(default_lock_folder()).hold("writer:google:" + self.key):
            self.forget()  # read afresh under the lock
            self._writing = 1
            try:
                yield
            finally:
                self._writing = 0

    # -- HTTP ------------------------------------------------------------------------------

    def _take_quota(self) -> None:
        self.bucket.acquire(self.identity.user_key)
        self.bucket.acquire(self.identity.project_key)

    def _call(self, method: str, url: str, action: str, params: dict | None = None,
              body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else None
        params = dict(params or {}, prettyPrint="false")  # Google indents JSON unless told not to

        def send() -> requests.Response:
            try:
                return self.http.request(method, url, params=params, data=body, headers=headers)
            except APIError as err:
                return err.response
            except google.auth.exceptions.TransportError as err:  # token endpoint unreachable
                raise requests.ConnectionError(type(err).__name__) from None

        try:
            outcome = send_with_retry(send, self.retry, before_each=self._take_quota)
        except google.auth.exceptions.RefreshError:
            raise ApiFailure(self._refresh_message(), 401, "UNAUTHENTICATED") from None
        status = outcome.response.status_code if outcome.response is not None else "no answer"
        log.debug("sheets %s %s: %s after %d attempt(s)", method.upper(), action, status, outcome.attempts)
        if outcome.response is not None and outcome.response.ok:
            return outcome.response.json()
        raise explain(outcome, self.key, self.identity, action)

    def _refresh_message(self) -> str:
        if self.identity.kind == "service_account":
            return (f"the service account {self.identity.email} could not sign in to Google "
                    "(key revoked or deleted?); create a new key for it")
        return ("Google did not accept the access token (expired or revoked); sign in again, "
                "or have the add-on send a fresh token")

    # -- reading ---------------------------------------------------------------------------

    def metadata(self) -> Metadata:
        body = self._call("get", f"{API}/{self.key}", "read the spreadsheet's tabs",
                          params={"fields": METADATA_FIELDS})
        self._meta = Metadata.from_json(body)
        return self._meta

    def read(self, tabs: Sequence[str]) -> Snapshot:
        """Metadata of every tab and the values of `tabs` that exist: at most two requests.

        The reads before an `apply` form one round: the first fetches the metadata and, along
        with the tabs asked for, sheetsync's small owned tabs (epochs, state, runs), so that a
        follow-up read of those costs no request. `apply` (or `forget`) ends the round.
        """
        meta = self._meta or self.metadata()
        present = [t for t in dict.fromkeys(tabs) if meta.by_title(t) is not None]
        missing = [t for t in present if t not in self._values]
        if missing:
            ahead = [s.title for s in meta.sheets
                     if s.owned and s.mark_value(OWNED_KEY).get("kind") in READ_AHEAD_KINDS
                     and s.title not in self._values and s.title not in missing]
            self._values.update(self._read_values(missing + ahead))
        return Snapshot(self.key, meta.tab_infos(), {t: self._values[t] for t in present})

    def forget(self) -> None:
        """End the read round: the next read fetches everything afresh."""
        self._meta = None
        self._values = {}

    def _read_values(self, tabs: list[str]) -> dict[str, list[list[CellValue]]]:
        ranges = [quote_tab(t, always=True) for t in tabs]
        if self.value_source == "values":
            body = self._call("get", f"{API}/{self.key}/values:batchGet", "read values",
                              params={"ranges": ranges, "valueRenderOption": "UNFORMATTED_VALUE",
                                      "dateTimeRenderOption": "SERIAL_NUMBER", "majorDimension": "ROWS"})
            return {t: trim([[values_cell(v) for v in row] for row in vr.get("values", [])])
                    for t, vr in zip(tabs, body.get("valueRanges", []))}
        body = self._call("get", f"{API}/{self.key}", "read values",
                          params={"ranges": ranges, "fields": GRID_FIELDS})
        found = {s.get("properties", {}).get("title"): grid_rows(s) for s in body.get("sheets", [])}
        return {t: found.get(t, []) for t in tabs}

    # -- writing ---------------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        cached = self._meta is not None
        meta = self._meta or self.metadata()
        self.forget()  # whatever happens next, the cached view is stale
        check_ownership(plan, meta)
        try:
            self._write(self.write_plan(plan, meta))
        except ApiFailure as failure:
            if not (cached and failure.status == 400 and STALE_TABS.search(failure.google_message)):
                raise
            # The tabs changed since our read (someone renamed or deleted one): look again.
            meta = self.metadata()
            check_ownership(plan, meta)
            self.forget()
            self._write(self.write_plan(plan, meta))

    def write_plan(self, plan: Plan, meta: Metadata) -> WritePlan:
        """The requests for `plan`. Every object we create (sheets, marks, charts) gets an id
        chosen here, so replaying a write that already landed is refused rather than doubled."""
        run = secrets.token_hex(4)
        taken = set(meta.ids()) | meta.mark_ids()
        new_ids = {tab.name: self._new_id(taken) for tab in plan.tabs}
        sheet_ids = {s.title: s.sheet_id for s in meta.sheets if not s.staging} | new_ids
        writer = ChartWriter(sheet_ids, header_cells(plan))
        charts = [writer.request(c, new_ids[tab.name], self._new_id(taken)) for tab in plan.tabs for c in tab.charts]
        deletes = [Sub.of({"deleteSheet": {"sheetId": s.sheet_id}}) for s in stale_sheets(plan, meta)]
        owned_marks = [mark(new_ids[t.name], OWNED_KEY, {"kind": t.kind, "run": run}, self._new_id(taken))
                       for t in plan.tabs]
        if cell_count(plan) * MIN_CELL_BYTES <= self.payload_limit:  # else surely too big
            block = max(1024, self.payload_limit // 4)
            content = [sub for tab in plan.tabs for sub in TabWriter(tab, new_ids[tab.name], block).requests()]
            at = tab_positions(plan, meta, drop=True)  # the deletes come first
            adds = [add_sheet(t, new_ids[t.name], t.name, t.hidden, at[t.name])
                    for t in sorted(plan.tabs, key=lambda t: at[t.name])]
            one_shot = deletes + adds + content + charts + owned_marks
            if len(batch_body(one_shot)) <= self.payload_limit:
                return WritePlan(run, one_shot, [], new_ids, [])
        staged = self._staging(plan, meta, run, new_ids, taken)
        staged.final = deletes + staged.final + charts + owned_marks  # the atomic swap
        return staged

    def _staging(self, plan: Plan, meta: Metadata, run: str, new_ids: dict[str, int], taken: set[int]) -> WritePlan:
        """Cells go to hidden staging tabs in chunks (formats and formulas by batchUpdate, plain
        values by values.batchUpdate); the final request renames and unhides them."""
        first, renames, subs, ranges = [], [], [], []
        block = max(1024, self.payload_limit // 4)
        at = tab_positions(plan, meta, drop=False)  # staged beside the tabs the swap deletes
        for i, tab in sorted(enumerate(plan.tabs), key=lambda it: at[it[1].name]):
            sid, mid, title = new_ids[tab.name], self._new_id(taken), f"sheetsync staging {run} {i + 1}"
            first.append(add_sheet(tab, sid, title, True, at[tab.name]))
            first.append(mark(sid, STAGING_KEY, {"run": run, "tab": tab.name}, mid))
            writer = TabWriter(tab, sid, block, raw_title=title)
            subs += writer.requests()
            ranges += writer.value_ranges
            renames.append(Sub.of({"updateSheetProperties": {
                "properties": {"sheetId": sid, "title": tab.name, "hidden": tab.hidden},
                "fields": "title,hidden"}}))
            renames.append(Sub.of({"deleteDeveloperMetadata": {
                "dataFilter": {"developerMetadataLookup": {"metadataId": mid}}}}))
        chunks = [("batch", g) for g in chunk(subs, self.payload_limit, first)]
        chunks += [("values", g) for g in chunk(ranges, self.payload_limit)]
        return WritePlan(run, renames, chunks, new_ids, [new_ids[t.name] for t in plan.tabs])

    def _new_id(self, taken: set[int]) -> int:
        while True:
            candidate = self.rng.randint(1, MAX_SHEET_ID)
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    def _write(self, wp: WritePlan) -> None:
        if not wp.final:
            return  # nothing to write, nothing to clean up
        for i, (kind, group) in enumerate(wp.chunks):
            action = f"write staging part {i + 1} of {len(wp.chunks)}"
            if kind == "values":  # idempotent: the same cells again
                self._call("post", f"{API}/{self.key}/values:batchUpdate", action, body=values_body(group))
            else:
                self._batch_update(group, action, lambda m: set(wp.staging_ids) <= m.ids())
        self._batch_update(wp.final, "write the results", lambda m: landed(m, wp))

    def _batch_update(self, subs: list[Sub], action: str, landed_check: Callable[[Metadata], bool]) -> None:
        try:
            self._call("post", f"{API}/{self.key}:batchUpdate", action, body=batch_body(subs))
        except ApiFailure as failure:
            # A retried write that Google now refuses may have landed the first time (its
            # answer was lost); our chosen ids make that visible in the sheet itself.
            if failure.status == 400 and failure.attempts > 1 and landed_check(self.metadata()):
                self.forget()
                return
            raise


def identity_of(credentials) -> Identity:
    email = getattr(credentials, "service_account_email", None)
    if email:
        return Identity("service_account", email, getattr(credentials, "project_id", None))
    token = getattr(credentials, "token", None)
    return Identity("user", None, getattr(credentials, "quota_project_id", None),
                    token_fingerprint(token) if token else None)


def check_ownership(plan: Plan, meta: Metadata) -> None:
    names = [t.name.casefold() for t in plan.tabs]
    if len(set(names)) != len(names):
        raise BackendError("the plan writes a tab twice (tab names ignore case in Google Sheets): "
                           f"{sorted(n for n in set(names) if names.count(n) > 1)}")
    for name in [t.name for t in plan.tabs] + list(plan.remove):
        sheet = meta.clashing(name)
        if sheet is not None and not sheet.owned:
            raise OwnershipError(
                f"tab {sheet.title!r} exists and was not created by sheetsync; nothing was written. "
                "Rename or delete that tab, or choose another experiment name.")


def stale_sheets(plan: Plan, meta: Metadata) -> list[SheetMeta]:
    """Owned tabs this plan replaces or removes, and staging tabs a failed run left behind."""
    names = {t.name.casefold() for t in plan.tabs} | {n.casefold() for n in plan.remove}
    return [s for s in meta.sheets if s.staging or (s.owned and s.title.casefold() in names)]


def landed(meta: Metadata, wp: WritePlan) -> bool:
    for title, sid in wp.new_ids.items():
        sheet = meta.by_title(title)
        if sheet is None or sheet.sheet_id != sid or sheet.mark_value(OWNED_KEY).get("run") != wp.run:
            return False
    return True
