"""Validate request bodies against the Sheets v4 discovery document, as Google's front end would.

The document ships with google-api-python-client
(``googleapiclient/discovery_cache/documents/sheets.v4.json``). Its ``schemas`` give every
message's fields with ``type``, ``$ref``, ``items``, ``additionalProperties``, ``enum`` and
``format``; this module checks a JSON value against them:

- unknown field names, wrong JSON types, integers out of their ``int32``/``uint32`` range,
  values outside an ``enum`` (``null`` is accepted anywhere: proto3 JSON reads it as unset);
- the union ("oneof") rules the document only states in prose: exactly one kind per
  ``Request`` and per ``ChartSpec`` type, at most one value kind per ``ExtendedValue``, one
  location per ``EmbeddedObjectPosition`` / ``DeveloperMetadataLocation``, one filter per
  ``DataFilter``, one of ``start``/``range`` in ``updateCells``, one of ``rgbColor``/``themeColor``;
- update requests must carry a ``fields`` mask whose paths exist in the updated message.

Stricter than Google on one point, on purpose: numbers must be JSON numbers (proto3 JSON would
also take ``"NaN"`` or ``"12"`` as strings, which sheetsync never means to send).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INT_RANGES = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1)}

ONE_OF = {  # schema -> groups of mutually exclusive fields (at most one set)
    "ExtendedValue": [{"numberValue", "stringValue", "boolValue", "formulaValue", "errorValue"}],
    "EmbeddedObjectPosition": [{"sheetId", "overlayPosition", "newSheet"}],
    "DeveloperMetadataLocation": [{"spreadsheet", "sheetId", "dimensionRange"}],
    "DataFilter": [{"developerMetadataLookup", "a1Range", "gridRange"}],
    "UpdateCellsRequest": [{"start", "range"}],
    "ColorStyle": [{"rgbColor", "themeColor"}],
    "ChartData": [{"sourceRange", "columnReference"}],
}
EXACTLY_ONE = {"Request", "ChartSpec"}  # exactly one of the "kind" fields must be set
CHART_KINDS = {"basicChart", "pieChart", "bubbleChart", "candlestickChart", "orgChart",
               "histogramChart", "waterfallChart", "treemapChart", "scorecardChart"}
MASK_TARGET = {  # update request -> the message its `fields` mask refers to
    "UpdateCellsRequest": "CellData", "RepeatCellRequest": "CellData", "AppendCellsRequest": "CellData",
    "UpdateSheetPropertiesRequest": "SheetProperties",
    "UpdateDimensionPropertiesRequest": "DimensionProperties",
    "UpdateSpreadsheetPropertiesRequest": "SpreadsheetProperties",
    "UpdateDeveloperMetadataRequest": "DeveloperMetadata",
    "UpdateEmbeddedObjectPositionRequest": "EmbeddedObjectPosition",
}


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


def snake(name: str) -> str:
    """Google names fields snake_case in its messages (``add_sheet.properties.sheet_id``)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def discovery_path() -> Path:
    spec = importlib.util.find_spec("googleapiclient")
    return Path(spec.origin).parent / "discovery_cache" / "documents" / "sheets.v4.json"


@lru_cache(maxsize=1)
def load_discovery() -> dict:
    return json.loads(discovery_path().read_text(encoding="utf-8"))


def parse_mask(mask: str) -> list[tuple[str, ...]]:
    """A field mask (``a.b,c(d,e/f)``) as a list of paths; raises ValueError when malformed."""
    paths: list[tuple[str, ...]] = []
    pos = 0

    def parse_list(prefix: tuple[str, ...]) -> None:
        nonlocal pos
        while True:
            m = re.compile(r"\s*([A-Za-z_*][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*)\s*").match(mask, pos)
            if not m:
                raise ValueError(f"bad field mask at {pos}: {mask!r}")
            path = prefix + tuple(re.split(r"[./]", m.group(1)))
            pos = m.end()
            if pos < len(mask) and mask[pos] == "(":
                pos += 1
                parse_list(path)
                if pos >= len(mask) or mask[pos] != ")":
                    raise ValueError(f"unbalanced field mask: {mask!r}")
                pos += 1
            else:
                paths.append(path)
            if pos < len(mask) and mask[pos] == ",":
                pos += 1
                continue
            return

    parse_list(())
    if pos != len(mask):
        raise ValueError(f"bad field mask: {mask!r}")
    return paths


class Validator:
    def __init__(self, doc: dict | None = None):
        self.doc = doc or load_discovery()
        self.schemas = self.doc["schemas"]

    # -- bodies ----------------------------------------------------------------------------

    def validate(self, value, schema: str, path: str = "") -> list[Violation]:
        out: list[Violation] = []
        self._check(value, {"$ref": schema}, path, out)
        return out

    def _check(self, value, spec: dict, path: str, out: list[Violation]) -> None:
        if value is None:
            return
        if "$ref" in spec:
            self._message(value, spec["$ref"], path, out)
            return
        kind = spec.get("type")
        if kind == "any":
            return
        if kind == "array":
            if not isinstance(value, list):
                out.append(Violation(path, f"Invalid value at '{path}', expected a list"))
                return
            for i, item in enumerate(value):
                self._check(item, spec.get("items", {}), f"{path}[{i}]", out)
            return
        if kind == "object":
            if not isinstance(value, dict):
                out.append(Violation(path, f"Invalid value at '{path}', expected an object"))
                return
            extra = spec.get("additionalProperties")
            for k, v in value.items():
                if extra is not None:
                    self._check(v, extra, f"{path}[{k!r}]", out)
                else:
                    out.append(unknown(path, k))
            return
        self._scalar(value, spec, path, out)

    def _scalar(self, value, spec: dict, path: str, out: list[Violation]) -> None:
        kind, fmt = spec.get("type"), spec.get("format")
        ok = {
            "string": isinstance(value, str) or (fmt in ("int64", "uint64") and isinstance(value, int)
                                                 and not isinstance(value, bool)),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(kind, True)
        if not ok:
            out.append(Violation(path, f"Invalid value at '{path}' ({(fmt or kind).upper()}), {json.dumps(value)}"))
            return
        if kind == "integer" and fmt in INT_RANGES:
            lo, hi = INT_RANGES[fmt]
            if not lo <= value <= hi:
                out.append(Violation(path, f"Invalid value at '{path}' ({fmt.upper()}), {value}"))
        if "enum" in spec and value not in spec["enum"]:
            out.append(Violation(path, f"Invalid value at '{path}' (enum), {json.dumps(value)}"))

    def _message(self, value, name: str, path: str, out: list[Violation]) -> None:
        schema = self.schemas[name]
        if not isinstance(value, dict):
            out.append(Violation(path, f"Invalid value at '{path}' (type.googleapis.com/google.apps.sheets.v4.{name}), {json.dumps(value)[:80]}"))
            return
        props = schema.get("properties", {})
        for key, item in value.items():
            if key not in props:
                out.append(unknown(path, key))
                continue
            self._check(item, props[key], join(path, snake(key)), out)
        self._unions(value, name, path, out)
        if name in MASK_TARGET:
            self._mask(value, name, path, out)

    def _unions(self, value: dict, name: str, path: str, out: list[Violation]) -> None:
        present = {k for k, v in value.items() if v is not None}
        for group in ONE_OF.get(name, []):
            both = sorted(present & group)
            if len(both) > 1:
                out.append(Violation(path, f"Invalid JSON payload received. Oneof field at '{path}' "
                                           f"is already set. Cannot set '{both[1]}'"))
        if name == "Request" and len(present) != 1:
            out.append(Violation(path, f"Invalid {path or 'request'}: "
                                       + ("No request set." if not present else "Only one request kind may be set.")))
        if name == "ChartSpec" and len(present & CHART_KINDS) != 1:
            out.append(Violation(path, f"Invalid {path}: exactly one chart type must be set"))

    def _mask(self, value: dict, name: str, path: str, out: list[Violation]) -> None:
        mask = value.get("fields")
        if not mask:
            out.append(Violation(path, f"Invalid {path}: At least one field must be specified."))
            return
        try:
            paths = parse_mask(mask)
        except ValueError as exc:
            out.append(Violation(path, f"Invalid {path}: {exc}"))
            return
        for p in paths:
            if p != ("*",) and not self.path_exists(MASK_TARGET[name], p):
                out.append(Violation(path, f"Invalid {path}: Invalid field mask path '{'.'.join(p)}'"))

    # -- field masks -----------------------------------------------------------------------

    def path_exists(self, schema: str, path: tuple[str, ...]) -> bool:
        spec: dict = {"$ref": schema}
        for name in path:
            while "items" in spec or ("$ref" not in spec and spec.get("type") == "array"):
                spec = spec.get("items", {})
            if "$ref" not in spec:
                return False
            props = self.schemas[spec["$ref"]].get("properties", {})
            if name not in props:
                return False
            spec = props[name]
        return True


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def unknown(path: str, key: str) -> Violation:
    where = f" at '{path}'" if path else ""
    return Violation(path, f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')
