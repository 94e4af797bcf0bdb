"""Small helpers shared by the tab builders: DataFrame -> `Column`s, and reading an owned tab back.

Formats follow what a learner expects to see: whole numbers for counters, ``General`` for
everything else (it shows up to 11 significant digits while the cell keeps the full double).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..backends.base import Column

COUNTER_COLUMNS = {"epoch", "step", "row", "run"}


def column_format(header: str) -> str:
    return "0" if header in COUNTER_COLUMNS else "General"


def column_width(header: str) -> float:
    # General shows up to 11 significant digits, a sign and a point: 14 characters
    return float(max(len(header) + 2, 6 if header in COUNTER_COLUMNS else 14))


def frame_columns(df: pd.DataFrame, rows: np.ndarray | None = None) -> list[Column]:
    """One `Column` per DataFrame column (optionally only `rows`), with formats and widths."""
    cols = []
    for name in df.columns:
        values = df[name].to_numpy()
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


def read_table(rows: list[list] | None, header_row: int = 0) -> pd.DataFrame:
    """A table sheetsync wrote (header at `header_row`), read back up to the first blank header
    and the first row whose first cell is blank."""
    if not rows or len(rows) <= header_row:
        return pd.DataFrame()
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
    return pd.DataFrame(body, columns=header)


def numeric_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Cells read back as numbers where they are numbers (blank -> NaN)."""
    return df.apply(lambda s: pd.to_numeric(s, errors="coerce"))
