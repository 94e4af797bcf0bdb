"""Small helpers shared by the tab builders: numpy columns -> `Column`s, and reading an owned tab back.

Formats follow what a learner expects to see: whole numbers for counters, ``General`` for
everything else (it shows up to 11 significant digits while the cell keeps the full double).

Tables are `Columns` (name -> numpy array, the engine's type), never DataFrames: a run does not
import pandas. A table read back from a sheet is typed the way a DataFrame of the same rows
was typed when the layout used pandas (whole numbers int64, numbers with blanks float64, ...),
because the type decides how a cell is written again (1 or 1.0): `column_of_cells`, `numeric`
and `concat` hold those rules, checked against pandas in tests/test_layout_tables.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.base import Column
from ..engine.result import Columns

COUNTER_COLUMNS = {"epoch", "step", "row", "run"}


def column_format(header: str) -> str:
    return "0" if header in COUNTER_COLUMNS else "General"


def column_width(header: str) -> float:
    # General shows up to 11 significant digits, a sign and a point: 14 characters
    return float(max(len(header) + 2, 6 if header in COUNTER_COLUMNS else 14))


def frame_columns(table: Columns, rows: np.ndarray | None = None) -> list[Column]:
    """One `Column` per column of `table` (optionally only `rows`), with formats and widths."""
    cols = []
    for name, values in table.items():
        values = as_array(values)
        if rows is not None:
            values = values[rows]
        if values.dtype == object:
            values = [_plain(v) for v in values]
        cols.append(Column(str(name), values, column_format(str(name)), column_width(str(name))))
    return cols


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_table(rows: list[list] | None, header_row: int = 0) -> Columns:
    """A table sheetsync wrote (header at `header_row`), read back up to the first blank header
    and the first row whose first cell is blank."""
    if not rows or len(rows) <= header_row:
        return Columns({})
    header = []
    for v in rows[header_row]:
        if v is None or (isinstance(v, str) and not v.strip()):
            break
        header.append(str(v))
    body = []
    for row in rows[header_row + 1:]:
        if not row or row[0] is None or (isinstance(row[0], str) and not row[0].strip()):
            break
        body.append([row[i] if i < len(row) else None for i in range(len(header))])
    return Columns({name: column_of_cells([r[j] for r in body]) for j, name in enumerate(header)})


def result_table(result, name: str) -> Columns:
    """`result.steps` or `result.epochs` as numpy columns, without building a DataFrame."""
    return Columns({c: result.column(name, c) for c in result.table(name).columns})


def numeric_table(table: Columns) -> Columns:
    """Cells read back as numbers where they are numbers (blank or text -> NaN)."""
    return Columns({name: numeric(values) for name, values in table.items()})


# -- typing cells read back (as pandas typed them: see the module's docstring) ------------------


def _kind(t: type) -> str:
    """What a cell of type `t` is, for typing a column (a cell's kind is its type's)."""
    if t is type(None):
        return "blank"
    if issubclass(t, (bool, np.bool_)):
        return "bool"
    if issubclass(t, (int, np.integer)):
        return "int"
    if issubclass(t, (float, np.floating)):
        return "float"
    return "other"


def column_of_cells(values: list) -> np.ndarray:
    """Cells as one column: whole numbers int64; numbers with fractions or blanks float64 (a
    blank NaN); booleans alone bool; anything else (text, blanks alone, mixtures) object."""
    kinds = {_kind(t) for t in set(map(type, values))}  # the types first: a history has thousands of cells
    if not kinds or "other" in kinds or kinds == {"blank"} or ("bool" in kinds and kinds != {"bool"}):
        return _objects(values)
    if kinds == {"bool"}:
        return np.array(values, dtype=bool)
    if kinds == {"int"}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:  # beyond int64: kept as they are
            return _objects(values)
    return np.array(values, dtype=np.float64)  # numpy reads a blank (None) as NaN


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def as_array(values: Any) -> np.ndarray:
    """A table's column as numpy (the engine keeps a text column as a list; a library user may
    give a table as a DataFrame, whose columns have `to_numpy`)."""
    if isinstance(values, np.ndarray):
        return values
    if hasattr(values, "to_numpy"):
        return values.to_numpy()
    return column_of_cells(list(values))


def numeric(values: Any) -> np.ndarray:
    """A column as numbers: numeric columns as they are; otherwise each cell that is a number
    or reads as one (text "1.5"), NaN for the rest; int64 when every cell is whole, else float64."""
    values = as_array(values)
    if values.dtype.kind in "biuf":
        return values
    out, whole = [], True
    for v in values:
        if isinstance(v, str):
            v = _number_in(v)
        kind = _kind(type(v))
        if kind in ("bool", "int"):
            out.append(int(v))
        elif kind == "float":
            out.append(float(v))
            whole = False
        else:
            out.append(np.nan)
            whole = False
    if whole:
        try:
            return np.array(out, dtype=np.int64)
        except OverflowError:
            pass
    return np.array(out, dtype=np.float64)


def _number_in(text: str) -> int | float | None:
    if "_" in text:  # Python reads 1_000; a spreadsheet does not
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def is_numeric(values: Any) -> bool:
    """Numbers or booleans (what a numeric history column holds)."""
    return as_array(values).dtype.kind in "biufc"


def as_text(values: Any) -> np.ndarray:
    """Each cell as text, a blank (or NaN) as ""."""
    return _objects(["" if v is None or (isinstance(v, float) and v != v) else str(v)
                     for v in as_array(values).tolist()])


def concat(parts: list[Any | None], lengths: list[int]) -> np.ndarray:
    """One column from parts one above the other (None: a part without this column, blank):
    whole numbers stay int64 only if every part has them; a part without the column makes
    numbers float64 and booleans objects; a previous boolean part joins whole numbers as int64."""
    arrays = [None if p is None else as_array(p) for p in parts]
    kinds = {a.dtype.kind for a in arrays if a is not None}
    missing = any(a is None for a in arrays)
    kinds = {"i" if k == "u" else k for k in kinds}
    if "O" in kinds or (missing and "b" in kinds) or ("b" in kinds and "f" in kinds and _bool_before_float(arrays)):
        dtype = None
    elif kinds == {"b"}:
        dtype = np.dtype(bool)
    elif kinds <= {"i", "b"} and not missing:
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(np.float64)
    if dtype is None:
        cells: list = []
        for a, n in zip(arrays, lengths):
            cells += [np.nan] * n if a is None else a.tolist()
        return _objects(cells)
    return np.concatenate([np.full(n, np.nan) if a is None else a.astype(dtype) for a, n in zip(arrays, lengths)]
                          ).astype(dtype)


def _bool_before_float(arrays: list) -> bool:
    """pandas joins (floats, booleans) as floats but (booleans, floats) as objects."""
    kinds = [a.dtype.kind for a in arrays if a is not None]
    return kinds.index("b") < kinds.index("f")
