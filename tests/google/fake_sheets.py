"""A stateful fake of the part of Google Sheets API v4 sheetsync uses, served through `responses`.

What it serves:

- ``GET  /v4/spreadsheets/{id}`` — honours ``fields`` (a real field-mask projection, checked
  against the ``Spreadsheet`` schema), ``includeGridData`` and ``ranges`` (only the tabs the
  ranges touch come back, as Google documents; a range naming a missing tab is a 400);
- ``GET  /v4/spreadsheets/{id}/values:batchGet`` — ragged rows, no ``values`` key for empty
  ranges, UNFORMATTED/FORMATTED/FORMULA rendering;
- ``POST /v4/spreadsheets/{id}:batchUpdate`` — every body is checked against the discovery
  document first (`discovery.Validator`), then the sub-requests are applied in order to a copy
  of the spreadsheet; any failure answers 400 naming ``requests[i].kind`` and the copy is
  dropped (all or nothing). addSheet, deleteSheet, updateSheetProperties, updateCells,
  repeatCell, updateDimensionProperties, addChart, createDeveloperMetadata and
  deleteDeveloperMetadata are implemented; any other kind is refused so tests notice;
- ``POST https://oauth2.googleapis.com/token`` — the service-account JWT exchange: checks the
  RS256 signature against the registered key, the audience and the scope, and issues tokens.

Every API request must carry a token the fake issued or registered (else 401), whose scopes
include spreadsheets (else 403 "insufficient authentication scopes"), for a principal the
sheet is shared with (else 403 "The caller does not have permission"). A file flagged
``uploaded_xlsx`` answers 400 FAILED_PRECONDITION like Google does for .xlsx files in Drive.

Faults: ``fake.fail_at(n, kind)`` makes the n-th Sheets request (1-based, token exchange not
counted) fail: ``"429"`` (with Retry-After), ``"500"``, ``"503"``, ``"reset"`` (connection
reset, nothing applied), ``"timeout"`` (the request IS applied, the answer is lost).
Error bodies copy the shapes of the recorded cassettes (see test_google_fake_fidelity.py).
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import random
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
import responses
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sheets_discovery import Validator, snake
from sheets_discovery import parse_mask as _parse_mask

parse_mask = lru_cache(maxsize=256)(_parse_mask)

SHEETS_RE = re.compile(r"^https://sheets\.googleapis\.com/v4/spreadsheets/([^/:?]+)(.*)$")
TOKEN_URI = "https://oauth2.googleapis.com/token"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
WRITE_SCOPES = {SHEETS_SCOPE, "https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.file"}
READ_SCOPES = WRITE_SCOPES | {"https://www.googleapis.com/auth/spreadsheets.readonly",
                              "https://www.googleapis.com/auth/drive.readonly"}
HARD_PAYLOAD_LIMIT = 10_485_760
STANDARD_PARAMS = {"fields", "alt", "key", "prettyPrint", "quotaUser", "$.xgafv", "callback",
                   "upload_protocol", "uploadType", "access_token", "oauth_token"}
ERROR_TEXT = {"ERROR": "#ERROR!", "NULL_VALUE": "#NULL!", "DIVIDE_BY_ZERO": "#DIV/0!", "VALUE": "#VALUE!",
              "REF": "#REF!", "NAME": "#NAME?", "NUM": "#NUM!", "N_A": "#N/A"}


def clone(obj):
    """A deep copy of plain data, several times faster than copy.deepcopy."""
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


class FakeError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def error_body(code: int, message: str, status: str, violations: list | None = None) -> dict:
    """Google's canonical error shape (as in the recorded 400/403/404 cassettes)."""
    error: dict = {"code": code, "message": message, "status": status}
    if violations:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                             "fieldViolations": [{"field": v.field, "description": v.description}
                                                 for v in violations]}]
    return {"error": error}


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class FakeSheet:
    props: dict
    cells: dict = field(default_factory=dict)  # (row, col) -> CellData
    charts: list = field(default_factory=list)
    column_px: dict = field(default_factory=dict)
    row_px: dict = field(default_factory=dict)
    merges: list = field(default_factory=list)  # (r0, c0, r1, c1), half-open
    rules: list = field(default_factory=list)  # conditional format rules

    @property
    def sheet_id(self) -> int:
        return self.props["sheetId"]

    @property
    def title(self) -> str:
        return self.props["title"]

    @property
    def grid(self) -> dict:
        return self.props.setdefault("gridProperties", {"rowCount": 1000, "columnCount": 26})

    def fill(self, rows: list[list], skip=(None,)) -> "FakeSheet":
        """Type `rows` into the sheet as a user would: numbers as numbers, text as text (values
        in `skip` stay blank)."""
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if v not in skip:
                    kind = "stringValue" if isinstance(v, str) else "numberValue"
                    self.cells[(r, c)] = {"userEnteredValue": {kind: v}}
        return self

    def values(self) -> list[list]:
        """User-entered values as a list of rows (for assertions): numbers, text, '=formula'."""
        if not self.cells:
            return []
        rows = max(r for r, _ in self.cells) + 1
        cols = max(c for _, c in self.cells) + 1
        out = [[None] * cols for _ in range(rows)]
        for (r, c), cell in self.cells.items():
            uev = cell.get("userEnteredValue", {})
            out[r][c] = next(iter(uev.values()), None) if uev else None
        return out


@dataclass
class FakeSpreadsheet:
    spreadsheet_id: str
    title: str = "Untitled spreadsheet"
    sheets: list[FakeSheet] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # metadataId -> DeveloperMetadata
    shared_with: set = field(default_factory=set)
    uploaded_xlsx: bool = False

    def sheet(self, sheet_id: int) -> FakeSheet:
        for s in self.sheets:
            if s.sheet_id == sheet_id:
                return s
        raise FakeError(f"No grid with id: {sheet_id}")

    def by_title(self, title: str) -> FakeSheet | None:
        return next((s for s in self.sheets if s.title.casefold() == title.casefold()), None)

    def reindex(self) -> None:
        for i, s in enumerate(self.sheets):
            s.props["index"] = i

    def sheet_metadata(self, sheet_id: int) -> list[dict]:
        return [m for m in self.metadata.values() if m["location"].get("sheetId") == sheet_id]

    def snapshot(self) -> dict:
        """Everything, for before/after comparisons."""
        return clone({"sheets": [(s.props, s.cells, s.charts, s.column_px, s.row_px, s.merges, s.rules)
                                 for s in self.sheets],
                      "metadata": self.metadata})


# ---------------------------------------------------------------------------------------------
# A1 ranges


def col_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def split_range(a1: str) -> tuple[str | None, str]:
    """"'it''s'!A1:B2" -> ("it's", "A1:B2"); "A1:B2" -> (None, "A1:B2"); "data" -> ("data", "")."""
    if a1.startswith("'"):
        i = 1
        while i < len(a1):
            if a1[i] == "'" and a1[i + 1:i + 2] == "'":
                i += 2
                continue
            if a1[i] == "'":
                break
            i += 1
        rest = a1[i + 1:]
        if rest and not rest.startswith("!"):
            raise FakeError(f"Unable to parse range: {a1}")
        return unquote_title(a1[:i + 1]), rest[1:]
    if "!" in a1:
        title, _, cells = a1.rpartition("!")
        return title, cells
    if re.fullmatch(r"[A-Za-z]{1,3}\d*(:[A-Za-z]{1,3}\d*)?|\d+:\d+", a1):
        return None, a1
    return a1, ""


def unquote_title(title: str) -> str:
    if title.startswith("'") and title.endswith("'"):
        return title[1:-1].replace("''", "'")
    return title


def parse_cells(ref: str, grid: dict) -> tuple[int, int, int, int]:
    """'A1:B2' -> (r0, c0, r1, c1) half-open, clipped to the grid; '' -> the whole grid."""
    rows, cols = grid.get("rowCount", 0), grid.get("columnCount", 0)
    if not ref:
        return 0, 0, rows, cols
    parts = ref.split(":")
    ends = []
    for p in parts:
        m = re.fullmatch(r"([A-Za-z]*)(\d*)", p)
        if not m or not (m.group(1) or m.group(2)):
            raise FakeError(f"Unable to parse range: {ref}")
        ends.append((int(m.group(2)) - 1 if m.group(2) else None, col_index(m.group(1)) if m.group(1) else None))
    (ra, ca), (rb, cb) = ends[0], ends[-1]
    r0, c0 = ra or 0, ca or 0
    r1 = rows if rb is None else rb + 1
    c1 = cols if cb is None else cb + 1
    return r0, c0, min(r1, rows), min(c1, cols)


def a1_name(title: str) -> str:
    return title if re.fullmatch(r"[A-Za-z0-9_]+", title) else "'" + title.replace("'", "''") + "'"


def a1_cell(r: int, c: int) -> str:
    letters, n = "", c + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{r + 1}"


# ---------------------------------------------------------------------------------------------
# Field masks (for GET)


def mask_tree(mask: str) -> dict:
    tree: dict = {}
    for path in parse_mask(mask):
        node = tree
        for name in path:
            node = node.setdefault(name, {})
    return tree


def project(value: Any, tree: dict) -> Any:
    if not tree or "*" in tree:
        return value
    if isinstance(value, list):
        return [project(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, sub in tree.items():
        if key in value:
            projected = project(value[key], sub)
            if projected not in ({}, []) or value[key] in ({}, []):
                out[key] = projected
    return out


# ---------------------------------------------------------------------------------------------
# Cells


def effective(cell: dict) -> dict:
    """CellData as Google returns it: effective value/format derived from what was entered."""
    out = copy.deepcopy(cell)
    uev = cell.get("userEnteredValue")
    if "effectiveValue" not in out and uev and "formulaValue" not in uev:
        out["effectiveValue"] = copy.deepcopy(uev)
    if "userEnteredFormat" in cell and "effectiveFormat" not in out:
        out["effectiveFormat"] = copy.deepcopy(cell["userEnteredFormat"])
    return out


def rendered(cell: dict, option: str) -> Any:
    uev = cell.get("userEnteredValue", {})
    if option == "FORMULA" and "formulaValue" in uev:
        return uev["formulaValue"]
    ev = effective(cell).get("effectiveValue", {})
    if "errorValue" in ev:
        return ERROR_TEXT.get(ev["errorValue"].get("type"), "#ERROR!")
    if "numberValue" in ev:
        v = ev["numberValue"]
        if option == "FORMATTED_VALUE":
            return cell.get("formattedValue", repr(v) if not float(v).is_integer() else str(int(v)))
        return int(v) if float(v).is_integer() else v
    if "boolValue" in ev:
        return ev["boolValue"] if option != "FORMATTED_VALUE" else str(ev["boolValue"]).upper()
    return ev.get("stringValue", "")


def set_path(target: dict, source: dict, path: tuple[str, ...]) -> None:
    """Apply one field-mask path: copy it from `source`, or clear it when absent there."""
    head, rest = path[0], path[1:]
    if not rest:
        if head in source:
            target[head] = copy.deepcopy(source[head])
        else:
            target.pop(head, None)
        return
    sub_source = source.get(head, {})
    sub_target = target.setdefault(head, {})
    set_path(sub_target, sub_source, rest)
    if not sub_target:
        target.pop(head)


def apply_mask(target: dict, source: dict, mask: str) -> None:
    paths = parse_mask(mask)
    if ("*",) in paths:
        target.clear()
        target.update(copy.deepcopy(source))
        return
    for path in paths:
        set_path(target, source, path)


# ---------------------------------------------------------------------------------------------
# batchUpdate sub-requests


class Applier:
    """Applies sub-requests to one spreadsheet (a copy: the caller commits or drops it)."""

    def __init__(self, book: FakeSpreadsheet, rng: random.Random):
        # Copy on write: the batch works on its own list of sheets and clones a sheet the first
        # time a sub-request touches it, so a rejected batch leaves the original untouched.
        self.book = FakeSpreadsheet(book.spreadsheet_id, book.title, list(book.sheets), dict(book.metadata),
                                    set(book.shared_with), book.uploaded_xlsx)
        self.rng = rng
        self.cloned: set[int] = set()

    def sheet(self, sheet_id: int) -> FakeSheet:
        original = self.book.sheet(sheet_id)
        if id(original) in self.cloned:
            return original
        copy_ = clone(original)
        self.book.sheets[self.book.sheets.index(original)] = copy_
        self.cloned.add(id(copy_))
        return copy_

    def reindex(self) -> None:
        for i, s in enumerate(list(self.book.sheets)):
            if s.props.get("index") != i:
                self.sheet(s.sheet_id).props["index"] = i

    def new_id(self, taken) -> int:
        while True:
            i = self.rng.randint(1, 2**31 - 1)
            if i not in taken:
                return i

    def check_range(self, sheet: FakeSheet, r0: int, c0: int, r1: int, c1: int) -> None:
        rows, cols = sheet.grid.get("rowCount", 0), sheet.grid.get("columnCount", 0)
        if r0 < 0 or c0 < 0 or r1 > rows or c1 > cols or r0 > r1 or c0 > c1:
            raise FakeError(f"Range ({a1_name(sheet.title)}!{a1_cell(r0, c0)}:{a1_cell(max(r1 - 1, 0), max(c1 - 1, 0))}) "
                            f"exceeds grid limits. Max rows: {rows}, max columns: {cols}")

    def grid_range(self, gr: dict) -> tuple[FakeSheet, int, int, int, int]:
        sheet = self.sheet(gr.get("sheetId", 0))
        r0, c0 = gr.get("startRowIndex", 0), gr.get("startColumnIndex", 0)
        r1 = gr.get("endRowIndex", sheet.grid.get("rowCount", 0))
        c1 = gr.get("endColumnIndex", sheet.grid.get("columnCount", 0))
        self.check_range(sheet, r0, c0, r1, c1)
        return sheet, r0, c0, r1, c1

    def addSheet(self, req: dict) -> dict:
        props = copy.deepcopy(req.get("properties", {}))
        ids = {s.sheet_id for s in self.book.sheets}
        if "sheetId" in props and props["sheetId"] in ids:
            raise FakeError(f"A sheet with the id {props['sheetId']} already exists.")
        props.setdefault("sheetId", self.new_id(ids))
        if props["sheetId"] < 0:
            raise FakeError("Sheet ids must be non-negative.")
        props.setdefault("title", f"Sheet{len(self.book.sheets) + 1}")
        if self.book.by_title(props["title"]):
            raise FakeError(f'A sheet with the name "{props["title"]}" already exists. Please enter another name.')
        check_title(props["title"])
        props.setdefault("sheetType", "GRID")
        grid = props.setdefault("gridProperties", {})
        grid.setdefault("rowCount", 1000)
        grid.setdefault("columnCount", 26)
        check_frozen(grid)
        if props.get("hidden") is False:
            props.pop("hidden")
        index = props.pop("index", len(self.book.sheets))
        sheet = FakeSheet(props)
        self.cloned.add(id(sheet))
        self.book.sheets.insert(min(index, len(self.book.sheets)), sheet)
        self.reindex()
        self.check_some_visible()
        return {"addSheet": {"properties": copy.deepcopy(props)}}

    def deleteSheet(self, req: dict) -> dict:
        sheet = self.book.sheet(req.get("sheetId", 0))  # looked up, not cloned: it goes away
        if len(self.book.sheets) == 1:
            raise FakeError("You can't remove all the sheets in a document.")
        self.book.sheets.remove(sheet)
        for mid in [m["metadataId"] for m in self.book.sheet_metadata(sheet.sheet_id)]:
            del self.book.metadata[mid]
        self.reindex()
        self.check_some_visible()
        return {}

    def updateSheetProperties(self, req: dict) -> dict:
        props = req.get("properties", {})
        sheet = self.sheet(props.get("sheetId", 0))
        new = copy.deepcopy(sheet.props)
        apply_mask(new, props, req["fields"])
        new["sheetId"] = sheet.sheet_id
        other = self.book.by_title(new.get("title", ""))
        if other is not None and other is not sheet:
            raise FakeError(f'A sheet with the name "{new["title"]}" already exists. Please enter another name.')
        check_title(new.get("title", ""))
        check_frozen(new.get("gridProperties", {}))
        if new.get("hidden") is False:
            new.pop("hidden")
        sheet.props = new
        self.check_some_visible()
        return {}

    def check_some_visible(self) -> None:
        if all(s.props.get("hidden") for s in self.book.sheets):
            raise FakeError("You can't hide all the sheets in a document.")

    def updateCells(self, req: dict) -> dict:
        rows = req.get("rows", [])
        if "start" in req:
            start = req["start"]
            sheet = self.sheet(start.get("sheetId", 0))
            r0, c0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
            width = max((len(r.get("values", [])) for r in rows), default=0)
            self.check_range(sheet, r0, c0, r0 + len(rows), c0 + width)
        else:
            sheet, r0, c0, r1, c1 = self.grid_range(req.get("range", {}))
            if len(rows) > r1 - r0 or any(len(r.get("values", [])) > c1 - c0 for r in rows):
                raise FakeError("Attempting to write row data outside the requested range.")
            for r in range(r0, r1):  # cells the data does not cover are cleared per the mask
                for c in range(c0, c1):
                    self.write(sheet, r, c, {}, req["fields"])
        for i, row in enumerate(rows):
            for j, cell in enumerate(row.get("values", [])):
                check_cell(cell)
                self.write(sheet, r0 + i, c0 + j, cell, req["fields"])
        return {}

    @staticmethod
    def write(sheet: FakeSheet, r: int, c: int, cell: dict, mask: str) -> None:
        target = sheet.cells.get((r, c), {})
        apply_mask(target, cell, mask)
        if target:
            sheet.cells[(r, c)] = target
        else:
            sheet.cells.pop((r, c), None)

    def repeatCell(self, req: dict) -> dict:
        sheet, r0, c0, r1, c1 = self.grid_range(req.get("range", {}))
        cell = req.get("cell", {})
        check_cell(cell)
        for r in range(r0, r1):
            for c in range(c0, c1):
                self.write(sheet, r, c, cell, req["fields"])
        return {}

    def updateDimensionProperties(self, req: dict) -> dict:
        rng = req.get("range", {})
        sheet = self.sheet(rng.get("sheetId", 0))
        dimension = rng.get("dimension")
        if dimension not in ("ROWS", "COLUMNS"):
            raise FakeError("fake: only ROWS and COLUMNS dimension properties are implemented")
        count, sizes = ((sheet.grid["rowCount"], sheet.row_px) if dimension == "ROWS"
                        else (sheet.grid["columnCount"], sheet.column_px))
        start, end = rng.get("startIndex", 0), rng.get("endIndex", count)
        if end > count or start >= end:
            raise FakeError(f"Invalid dimension range {start}:{end}")
        for k in range(start, end):
            target = {"pixelSize": sizes[k]} if k in sizes else {}
            apply_mask(target, req.get("properties", {}), req["fields"])
            sizes[k] = target.get("pixelSize")
        return {}

    def mergeCells(self, req: dict) -> dict:
        sheet, r0, c0, r1, c1 = self.grid_range(req.get("range", {}))
        if req.get("mergeType", "MERGE_ALL") != "MERGE_ALL":
            raise FakeError("fake: only MERGE_ALL merges are implemented")
        for m in sheet.merges:
            if m[0] < r1 and r0 < m[2] and m[1] < c1 and c0 < m[3]:
                raise FakeError("You can't merge cells that overlap a merge.")
        sheet.merges.append((r0, c0, r1, c1))
        return {}

    def addConditionalFormatRule(self, req: dict) -> dict:
        rule = copy.deepcopy(req.get("rule", {}))
        if not rule.get("ranges"):
            raise FakeError("A conditional format rule needs at least one range.")
        if ("gradientRule" in rule) == ("booleanRule" in rule):
            raise FakeError("A conditional format rule needs exactly one of booleanRule and gradientRule.")
        sheets = {self.grid_range(r)[0].sheet_id for r in rule["ranges"]}
        if len(sheets) != 1:
            raise FakeError("All ranges of a conditional format rule must be on one sheet.")
        for key, point in rule.get("gradientRule", {}).items():  # InterpolationPoint
            kind = point.get("type")
            if kind not in ("MIN", "MAX", "NUMBER", "PERCENT", "PERCENTILE"):
                raise FakeError(f"Invalid value at 'rule.gradient_rule.{key}.type' ({kind!r})")
            if kind in ("NUMBER", "PERCENT", "PERCENTILE") and "value" not in point:
                raise FakeError(f"Invalid ConditionalFormatRule: {key} of type {kind} needs a value.")
        sheet = self.sheet(sheets.pop())
        sheet.rules.insert(min(req.get("index", 0), len(sheet.rules)), rule)
        return {}

    def addChart(self, req: dict) -> dict:
        chart = copy.deepcopy(req.get("chart", {}))
        taken = {c["chartId"] for s in self.book.sheets for c in s.charts}
        if "chartId" in chart and chart["chartId"] in taken:
            raise FakeError(f"An object with id {chart['chartId']} already exists.")
        chart.setdefault("chartId", self.new_id(taken))
        basic = chart.get("spec", {}).get("basicChart")
        if basic is None:
            raise FakeError("fake: only basic charts are implemented")
        if basic.get("chartType") in (None, "BASIC_CHART_TYPE_UNSPECIFIED"):
            raise FakeError("chartType must be specified")
        sources = [d.get("domain", {}) for d in basic.get("domains", [])] + \
                  [s.get("series", {}) for s in basic.get("series", [])]
        if not basic.get("series"):
            raise FakeError("A chart needs at least one series.")
        for data in sources:
            for src in data.get("sourceRange", {}).get("sources", []):
                self.grid_range(src)
        overlay = chart.get("position", {}).get("overlayPosition")
        if overlay is None:
            raise FakeError("fake: only overlay positions are implemented")
        anchor = overlay.get("anchorCell", {})
        host = self.sheet(anchor.get("sheetId", 0))
        self.check_range(host, anchor.get("rowIndex", 0), anchor.get("columnIndex", 0),
                         anchor.get("rowIndex", 0) + 1, anchor.get("columnIndex", 0) + 1)
        host.charts.append(chart)
        return {"addChart": {"chart": copy.deepcopy(chart)}}

    def createDeveloperMetadata(self, req: dict) -> dict:
        meta = copy.deepcopy(req.get("developerMetadata", {}))
        if not meta.get("metadataKey"):
            raise FakeError("Developer metadata must have a key.")
        if meta.get("visibility") in (None, "DEVELOPER_METADATA_VISIBILITY_UNSPECIFIED"):
            raise FakeError("Developer metadata visibility must be specified.")
        location = meta.get("location", {})
        if "sheetId" not in location:
            raise FakeError("fake: only sheet locations are implemented")
        self.book.sheet(location["sheetId"])  # must exist; not modified
        meta["location"] = {"locationType": "SHEET", "sheetId": location["sheetId"]}
        if "metadataId" in meta:
            if meta["metadataId"] <= 0 or meta["metadataId"] in self.book.metadata:
                raise FakeError(f"Developer metadata id {meta['metadataId']} is invalid or already in use.")
        else:
            meta["metadataId"] = self.new_id(self.book.metadata)
        self.book.metadata[meta["metadataId"]] = meta
        return {"createDeveloperMetadata": {"developerMetadata": copy.deepcopy(meta)}}

    def deleteDeveloperMetadata(self, req: dict) -> dict:
        lookup = req.get("dataFilter", {}).get("developerMetadataLookup")
        if lookup is None or "metadataId" not in lookup:
            raise FakeError("fake: only lookups by metadataId are implemented")
        gone = self.book.metadata.pop(lookup["metadataId"], None)
        return {"deleteDeveloperMetadata": {"deletedDeveloperMetadata": [gone] if gone else []}}


def check_title(title: str) -> None:
    if not title.strip() or len(title) > 100:
        raise FakeError(f"Invalid sheet name: {title!r}")


def check_frozen(grid: dict) -> None:
    if grid.get("frozenRowCount", 0) >= grid.get("rowCount", 1000):
        raise FakeError("You can't freeze all visible rows on the sheet.")
    if grid.get("frozenColumnCount", 0) >= grid.get("columnCount", 26):
        raise FakeError("You can't freeze all visible columns on the sheet.")


def check_cell(cell: dict) -> None:
    for v in cell.get("userEnteredValue", {}).values():
        if isinstance(v, str) and len(v) > 50_000:
            raise FakeError("Your input contains more than the maximum of 50000 characters in a single cell.")
    if "effectiveValue" in cell or "formattedValue" in cell or "effectiveFormat" in cell:
        raise FakeError("effectiveValue, formattedValue and effectiveFormat are read-only")


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class Call:
    method: str
    url: str
    kind: str
    status: int | str
    bytes_in: int
    bytes_out: int
    body: dict | None = None
    response: dict | None = None


class FakeSheetsAPI:
    """Register on a `responses.RequestsMock`; holds spreadsheets, principals, tokens, faults."""

    def __init__(self, seed: int = 0):
        self.books: dict[str, FakeSpreadsheet] = {}
        self.service_accounts: dict[str, Any] = {}  # email -> RSA public key
        self.tokens: dict[str, tuple[str, set[str]]] = {}  # access token -> (principal, scopes)
        self.calls: list[Call] = []
        self.faults: dict[int, str] = {}
        self.validator = Validator()
        self.rng = random.Random(seed)
        self.token_requests = 0
        self.payload_limit = HARD_PAYLOAD_LIMIT

    # -- setup -----------------------------------------------------------------------------

    def register(self, rsps: responses.RequestsMock) -> "FakeSheetsAPI":
        pattern = re.compile(r"https://sheets\.googleapis\.com/v4/spreadsheets/.*")
        for method in ("GET", "POST", "PUT"):
            rsps.add_callback(method, pattern, callback=self.handle)
        rsps.add_callback("POST", TOKEN_URI, callback=self.token)
        return self

    def create(self, key: str, shared_with=(), tabs=("Sheet1",), **kw) -> FakeSpreadsheet:
        book = FakeSpreadsheet(key, shared_with=set(shared_with), **kw)
        for i, title in enumerate(tabs):
            book.sheets.append(FakeSheet({"sheetId": i and self.rng.randint(1, 2**31 - 1), "title": title,
                                          "index": i, "sheetType": "GRID",
                                          "gridProperties": {"rowCount": 1000, "columnCount": 26}}))
        self.books[key] = book
        return book

    def add_service_account(self, email: str, public_key) -> None:
        self.service_accounts[email] = public_key

    def add_user_token(self, token: str, email: str, scopes=(SHEETS_SCOPE,)) -> None:
        self.tokens[token] = (email, set(scopes))

    def fail_at(self, n: int, kind: str) -> None:
        self.faults[n] = kind

    @property
    def api_calls(self) -> list[Call]:
        return [c for c in self.calls if c.kind != "token"]

    # -- token endpoint --------------------------------------------------------------------

    def token(self, request):
        self.token_requests += 1
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        assertion = form.get("assertion", [""])[0]
        try:
            claims = self.verify_jwt(assertion)
        except FakeError as exc:
            return 400, {}, json.dumps({"error": "invalid_grant", "error_description": exc.message})
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = (claims["iss"], set(claims.get("scope", "").split()))
        self.calls.append(Call("POST", TOKEN_URI, "token", 200, len(request.body or ""), 0))
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def verify_jwt(self, assertion: str) -> dict:
        try:
            head, payload, sig = assertion.split(".")
            claims = json.loads(b64d(payload))
            header = json.loads(b64d(head))
        except ValueError:
            raise FakeError("Invalid JWT.") from None
        key = self.service_accounts.get(claims.get("iss"))
        if key is None or header.get("alg") != "RS256":
            raise FakeError("Invalid JWT Signature.")
        try:
            key.verify(b64d(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            raise FakeError("Invalid JWT Signature.") from None
        if claims.get("aud") != TOKEN_URI or not claims.get("scope"):
            raise FakeError("Invalid JWT: audience or scope missing.")
        if claims.get("exp", 0) <= claims.get("iat", 0):
            raise FakeError("Invalid JWT: Token must be a short-lived token.")
        return claims

    # -- Sheets API ------------------------------------------------------------------------

    def handle(self, request):
        n = len(self.api_calls) + 1
        fault = self.faults.pop(n, None)
        body_bytes = request.body or b""
        if isinstance(body_bytes, str):
            body_bytes = body_bytes.encode()
        call = Call(request.method, request.url, kind_of(request.url, request.method), "?", len(body_bytes), 0)
        self.calls.append(call)
        if fault == "reset":
            call.status = "reset"
            raise requests.ConnectionError("Connection reset by peer")
        if fault in ("429", "500", "503"):
            status = int(fault)
            call.status = status
            names = {429: ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Write requests' and limit "
                                                 "'Write requests per minute per user' of service 'sheets.googleapis.com'."),
                     500: ("INTERNAL", "Internal error encountered."),
                     503: ("UNAVAILABLE", "The service is currently unavailable.")}
            headers = {"Retry-After": "7"} if status == 429 else {}
            return status, headers, json.dumps(error_body(status, names[status][1], names[status][0]))
        status, headers, payload = self.dispatch(request, body_bytes, call)
        call.status, call.response = status, payload
        pretty = parse_qs(urlsplit(request.url).query).get("prettyPrint", ["true"])[0] != "false"
        text = json.dumps(payload, indent=2) if pretty else json.dumps(payload, separators=(",", ":"))
        call.bytes_out = len(text.encode())
        if fault == "timeout":  # applied, but the answer never arrives
            call.status = "timeout"
            raise requests.ReadTimeout("Read timed out.")
        return status, dict(headers, **{"Content-Type": "application/json; charset=UTF-8"}), text

    def dispatch(self, request, body_bytes: bytes, call: Call):
        m = SHEETS_RE.match(request.url)
        key, rest = unquote(m.group(1)), m.group(2)
        parts = urlsplit(request.url)
        query = parse_qs(parts.query, keep_blank_values=True)
        path_tail = urlsplit(rest).path
        denied = self.authorize(request, key, write=call.kind in ("batchUpdate", "values.update", "values.batchUpdate"))
        if denied:
            return denied
        book = self.books[key]
        try:
            if call.kind == "get" and request.method == "GET":
                return 200, {}, self.get(book, query)
            if call.kind == "values.batchGet" and request.method == "GET":
                return 200, {}, self.batch_get(book, query)
            if call.kind == "batchUpdate" and request.method == "POST":
                return self.batch_update(book, body_bytes, call)
            if call.kind == "values.batchUpdate" and request.method == "POST":
                return self.values_batch_update(book, body_bytes, call)
            if call.kind == "values.get":
                return 200, {}, self.values_get(book, unquote(path_tail[len("/values/"):]), query)
            if call.kind == "values.update":
                return self.values_update(book, unquote(path_tail[len("/values/"):]), query, body_bytes, call)
        except FakeError as exc:
            return 400, {}, error_body(400, exc.message, "INVALID_ARGUMENT")
        return 404, {}, error_body(404, f"fake: no such method {request.method} {path_tail}", "NOT_FOUND")

    def authorize(self, request, key: str, write: bool):
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token not in self.tokens:
            return 401, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}, error_body(
                401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                     "cookie or other valid authentication credential.", "UNAUTHENTICATED")
        principal, scopes = self.tokens[token]
        if not scopes & (WRITE_SCOPES if write else READ_SCOPES):
            return 403, {}, error_body(403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED")
        book = self.books.get(key)
        if book is None:
            return 404, {}, error_body(404, "Requested entity was not found.", "NOT_FOUND")
        if principal not in book.shared_with:
            return 403, {}, error_body(403, "The caller does not have permission", "PERMISSION_DENIED")
        if book.uploaded_xlsx:
            return 400, {}, error_body(400, "This operation is not supported for this document", "FAILED_PRECONDITION")
        return None

    def check_params(self, query: dict, method: str, resource: str | None = None) -> None:
        spreadsheets = self.validator.doc["resources"]["spreadsheets"]
        methods = spreadsheets["resources"][resource]["methods"] if resource else spreadsheets["methods"]
        spec = methods[method]["parameters"]
        for name, values in query.items():
            if name in STANDARD_PARAMS:
                continue
            if name not in spec:
                raise FakeError(f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.')
            if "enum" in spec[name] and any(v not in spec[name]["enum"] for v in values):
                raise FakeError(f"Invalid value at '{snake(name)}' ({values[0]})")
            if len(values) > 1 and not spec[name].get("repeated"):
                raise FakeError(f"Parameter {name} may not be repeated")

    # GET spreadsheets/{id}
    def get(self, book: FakeSpreadsheet, query: dict) -> dict:
        self.check_params(query, "get")
        mask = query.get("fields", [None])[0]
        tree = mask_tree(mask) if mask else None
        if tree is not None:
            for path in parse_mask(mask):
                if not self.validator.path_exists("Spreadsheet", path):
                    raise FakeError(f"Request contains an invalid argument. Invalid field mask: {'.'.join(path)}")
        wants_data = (tree is not None and "data" in tree.get("sheets", {})) or \
                     (tree is None and query.get("includeGridData", ["false"])[0] == "true")
        ranges = self.resolve(book, query.get("ranges", []))
        sheets = []
        for sheet in book.sheets:
            picked = [r for r in ranges if r[0] is sheet]
            if ranges and not picked:
                continue  # "Limiting the range returns only the portions ... that intersect"
            sheets.append(self.sheet_json(book, sheet, picked, wants_data))
        body = {"spreadsheetId": book.spreadsheet_id, "properties": spreadsheet_properties(book.title),
                "sheets": sheets,
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit"}
        return project(body, tree) if tree is not None else body

    def resolve(self, book: FakeSpreadsheet, ranges: list[str]):
        out = []
        for a1 in ranges:
            title, cells = split_range(a1)
            sheet = book.sheets[0] if title is None else book.by_title(title)
            if sheet is None:
                raise FakeError(f"Unable to parse range: {a1}")
            out.append((sheet, parse_cells(cells, sheet.grid)))
        return out

    def sheet_json(self, book, sheet: FakeSheet, picked, wants_data: bool) -> dict:
        out: dict = {"properties": copy.deepcopy(sheet.props)}
        if sheet.charts:
            out["charts"] = copy.deepcopy(sheet.charts)
        meta = book.sheet_metadata(sheet.sheet_id)
        if meta:
            out["developerMetadata"] = copy.deepcopy(meta)
        if wants_data:
            boxes = [box for _, box in picked] or [(0, 0, sheet.grid["rowCount"], sheet.grid["columnCount"])]
            out["data"] = [grid_data(sheet, *box) for box in boxes]
        return out

    # GET values:batchGet
    def batch_get(self, book: FakeSpreadsheet, query: dict, check: bool = True) -> dict:
        if check:
            self.check_params(query, "batchGet", resource="values")
        option = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        ranges = []
        for sheet, (r0, c0, r1, c1) in self.resolve(book, query.get("ranges", [])):
            vr = {"range": f"{a1_name(sheet.title)}!{a1_cell(r0, c0)}:{a1_cell(r1 - 1, c1 - 1)}",
                  "majorDimension": "ROWS"}
            rows = []
            for r in range(r0, r1):
                row = [rendered(sheet.cells[(r, c)], option) if (r, c) in sheet.cells else "" for c in range(c0, c1)]
                while row and row[-1] == "":
                    row.pop()
                rows.append(row)
            while rows and not rows[-1]:
                rows.pop()
            if rows:
                vr["values"] = rows
            ranges.append(vr)
        return {"spreadsheetId": book.spreadsheet_id, "valueRanges": ranges}

    # GET values/{range} (what gspread's get_all_values uses)
    def values_get(self, book: FakeSpreadsheet, a1: str, query: dict) -> dict:
        self.check_params(query, "get", resource="values")
        merged = dict(query, ranges=[a1])
        return self.batch_get(book, merged, check=False)["valueRanges"][0]

    # PUT values/{range} (what gspread's Worksheet.update sends)
    def values_update(self, book: FakeSpreadsheet, a1: str, query: dict, body_bytes: bytes, call: Call):
        self.check_params(query, "update", resource="values")
        option = query.get("valueInputOption", [None])[0]
        body, refused = self.parse_body(body_bytes, call, "ValueRange")
        if refused:
            return refused
        applier = Applier(book, self.rng)
        reply = self.write_values(applier, dict(body, range=a1), option)
        self.books[book.spreadsheet_id] = applier.book
        return 200, {}, dict(reply, spreadsheetId=book.spreadsheet_id)

    # POST values:batchUpdate (sheetsync's staging chunks)
    def values_batch_update(self, book: FakeSpreadsheet, body_bytes: bytes, call: Call):
        body, refused = self.parse_body(body_bytes, call, "BatchUpdateValuesRequest")
        if refused:
            return refused
        applier = Applier(book, self.rng)  # all ranges or none
        replies = [dict(self.write_values(applier, vr, body.get("valueInputOption")), spreadsheetId=book.spreadsheet_id)
                   for vr in body.get("data", [])]
        self.books[book.spreadsheet_id] = applier.book
        return 200, {}, {"spreadsheetId": book.spreadsheet_id,
                         "totalUpdatedRows": sum(r["updatedRows"] for r in replies),
                         "totalUpdatedColumns": max((r["updatedColumns"] for r in replies), default=0),
                         "totalUpdatedCells": sum(r["updatedCells"] for r in replies),
                         "totalUpdatedSheets": len({r["updatedRange"].rpartition("!")[0] for r in replies}),
                         "responses": replies}

    def parse_body(self, body_bytes: bytes, call: Call, schema: str):
        if len(body_bytes) > self.payload_limit:
            return None, (400, {}, error_body(400, f"Request payload size exceeds the limit: {self.payload_limit} bytes.",
                                              "INVALID_ARGUMENT"))
        try:
            body = json.loads(body_bytes, parse_constant=reject_constant)
        except ValueError as exc:
            return None, (400, {}, error_body(400, f"Invalid JSON payload received. Unexpected token.\n{exc}",
                                              "INVALID_ARGUMENT"))
        call.body = body
        violations = self.validator.validate(body, schema)
        if violations:
            return None, (400, {}, error_body(400, violations[0].description, "INVALID_ARGUMENT", violations))
        return body, None

    def write_values(self, applier: "Applier", vr: dict, option: str | None) -> dict:
        if option not in ("RAW", "USER_ENTERED"):
            raise FakeError("'valueInputOption' is required but not specified")
        if vr.get("majorDimension") not in (None, "ROWS"):
            raise FakeError("fake: only ROWS major dimension is implemented")
        (found, (r0, c0, r1, c1)), = self.resolve(applier.book, [vr["range"]])
        sheet = applier.sheet(found.sheet_id)
        rows = vr.get("values") or []
        width = max((len(r) for r in rows), default=0)
        applier.check_range(sheet, r0, c0, r0 + len(rows), c0 + width)
        if ":" in vr["range"].rpartition("!")[2] and (len(rows) > r1 - r0 or width > c1 - c0):
            raise FakeError(f"Requested writing within range [{vr['range']}], but tried writing to row "
                            f"[{r0 + len(rows)}]")
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if v is None:
                    continue  # "Null values will be skipped"
                cell = sheet.cells.setdefault((r0 + i, c0 + j), {})  # values only: formats stay
                cell.pop("effectiveValue", None)
                if v == "":
                    cell.pop("userEnteredValue", None)
                else:
                    cell["userEnteredValue"] = entered(v, option)
                if not cell:
                    del sheet.cells[(r0 + i, c0 + j)]
        end = a1_cell(r0 + max(len(rows), 1) - 1, c0 + max(width, 1) - 1)
        return {"updatedRange": f"{a1_name(sheet.title)}!{a1_cell(r0, c0)}:{end}", "updatedRows": len(rows),
                "updatedColumns": width, "updatedCells": sum(len(r) for r in rows)}

    # POST :batchUpdate
    def batch_update(self, book: FakeSpreadsheet, body_bytes: bytes, call: Call):
        if len(body_bytes) > self.payload_limit:
            return 400, {}, error_body(400, f"Request payload size exceeds the limit: {self.payload_limit} bytes.",
                                       "INVALID_ARGUMENT")
        try:
            body = json.loads(body_bytes, parse_constant=reject_constant)
        except ValueError as exc:
            return 400, {}, error_body(400, f"Invalid JSON payload received. Unexpected token.\n{exc}",
                                       "INVALID_ARGUMENT")
        call.body = body
        violations = self.validator.validate(body, "BatchUpdateSpreadsheetRequest")
        if violations:
            return 400, {}, error_body(400, violations[0].description, "INVALID_ARGUMENT", violations)
        applier = Applier(book, self.rng)
        work = applier.book
        replies = []
        for i, req in enumerate(body.get("requests", [])):
            kind = next(iter(req))
            handler = getattr(applier, kind, None)
            if handler is None:
                return 400, {}, error_body(400, f"Invalid requests[{i}].{kind}: fake does not implement {kind}",
                                           "INVALID_ARGUMENT")
            try:
                replies.append(handler(req[kind]))
            except FakeError as exc:
                return 400, {}, error_body(400, f"Invalid requests[{i}].{kind}: {exc.message}", "INVALID_ARGUMENT")
        self.books[book.spreadsheet_id] = work
        return 200, {}, {"spreadsheetId": book.spreadsheet_id, "replies": replies}


def kind_of(url: str, method: str = "GET") -> str:
    tail = urlsplit(SHEETS_RE.match(url).group(2)).path
    if tail.startswith("/values/") and ":" not in tail[len("/values/"):].rsplit("!", 1)[-1]:
        return "values.update" if method == "PUT" else "values.get"
    return {"": "get", ":batchUpdate": "batchUpdate", "/values:batchGet": "values.batchGet",
            "/values:batchUpdate": "values.batchUpdate"}.get(tail, tail)


def grid_data(sheet: FakeSheet, r0: int, c0: int, r1: int, c1: int) -> dict:
    rows = []
    for r in range(r0, r1):
        cells = [effective(sheet.cells.get((r, c), {})) for c in range(c0, c1)]
        while cells and not cells[-1]:
            cells.pop()
        rows.append({"values": cells} if cells else {})
    while rows and not rows[-1]:
        rows.pop()
    out: dict = {}
    if r0:
        out["startRow"] = r0
    if c0:
        out["startColumn"] = c0
    if rows:
        out["rowData"] = rows
    return out


def spreadsheet_properties(title: str) -> dict:
    """The spreadsheet properties Google returns for a new sheet (same keys as the cassettes)."""
    white = {"red": 1, "green": 1, "blue": 1}
    return {
        "title": title, "locale": "en_US", "autoRecalc": "ON_CHANGE", "timeZone": "Etc/GMT",
        "defaultFormat": {
            "backgroundColor": dict(white), "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
            "verticalAlignment": "BOTTOM", "wrapStrategy": "OVERFLOW_CELL",
            "textFormat": {"foregroundColor": {}, "fontFamily": "arial,sans,sans-serif", "fontSize": 10,
                           "bold": False, "italic": False, "strikethrough": False, "underline": False,
                           "foregroundColorStyle": {"rgbColor": {}}},
            "backgroundColorStyle": {"rgbColor": dict(white)}},
        "spreadsheetTheme": {"primaryFontFamily": "Arial", "themeColors": [
            {"colorType": t, "color": {"rgbColor": dict(white)}}
            for t in ("TEXT", "BACKGROUND", "ACCENT1", "ACCENT2", "ACCENT3", "ACCENT4", "ACCENT5", "ACCENT6", "LINK")]},
    }


def entered(value, option: str) -> dict:
    """What a values.update cell becomes: RAW stores as-is; USER_ENTERED parses formulas and numbers."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, (int, float)):
        return {"numberValue": value}
    if option == "USER_ENTERED" and value.startswith("="):
        return {"formulaValue": value}
    if option == "USER_ENTERED":
        try:
            return {"numberValue": float(value)}
        except ValueError:
            pass
    return {"stringValue": value}


def reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
