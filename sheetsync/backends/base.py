"""What flows between the layout and a backend: a `Snapshot` read, a `Plan` applied.

A backend knows its storage (an ``.xlsx`` file, the Sheets API) and nothing of models; the
layout knows sheet geometry and nothing of storage. These dataclasses are the whole contract
between them, so the same plan lands identically in a local workbook and in a Google sheet.

Coordinates are 0-based (row, col) inside a tab; ranges are half-open, like the Sheets API's
``GridRange``. Helpers convert to A1 notation for messages and formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from ..a1 import a1, col_letter, quote_tab  # noqa: F401 - re-exported; defined on the ground floor

# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class CellError:
    """A spreadsheet error value such as ``#DIV/0!``, ``#REF!`` or ``#N/A``."""

    code: str


@dataclass(frozen=True)
class DateCell:
    """A cell formatted as a date or time (its serial number kept for messages)."""

    serial: float
    text: str = ""


@dataclass(frozen=True)
class Uncomputed:
    """A formula cell whose computed value the file does not hold (never recalculated)."""

    formula: str


# What a cell reads as: number, text, bool, empty, or one of the markers above.
CellValue = float | int | str | bool | None | CellError | DateCell | Uncomputed


@dataclass
class TabInfo:
    """One tab's metadata, as read."""

    title: str
    index: int
    owned: bool  # carries sheetsync's mark (created by sheetsync)
    rows: int = 0  # used extent (xlsx) or grid size (Google)
    cols: int = 0
    sheet_id: int | None = None  # Google only
    kind: str = "worksheet"  # or "chart sheet", "dialog sheet", "macro sheet" (xlsx): no cells


@dataclass
class Snapshot:
    """One read round: every tab's metadata plus the values of the tabs asked for."""

    target: str
    tabs: list[TabInfo]
    values: dict[str, list[list[CellValue]]]  # tab title -> rows (ragged; trailing empties may be cut)
    # The whole spreadsheet holds at most budgets.SPREADSHEET_CELLS, the tabs a run leaves alone
    # included (Google); False where there is no such limit (an .xlsx file: only per tab).
    cells_limited: bool = True
    # tab title -> its first row, for the tabs read by their head only (`Backend.read`'s `heads`)
    heads: dict[str, list[CellValue]] = field(default_factory=dict)

    def tab(self, title: str) -> TabInfo | None:
        for info in self.tabs:
            if info.title == title:
                return info
        return None


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class Column:
    """One column of a table: a header and its values (numbers, text or None for blank).

    ``values`` may be a numpy array (fast path for big step tables); NaN and infinities are
    written as blank cells (never sent as numbers). In formula mode
    `formulas` holds one formula per value (``"=B2*C2"``) or None where the value stands.
    """

    header: str
    values: Sequence[Any]
    number_format: str | None = None  # Excel/Sheets pattern, e.g. "0.000000" or "General"
    width: float | None = None  # in characters
    formulas: Sequence[str | None] | None = None
    note: str | None = None  # a comment on the header cell
    wrap: bool = False  # long texts wrap inside their cells (the run log's messages)


@dataclass
class Table:
    """A header row at (row, col) with its columns below it, all of the same length."""

    columns: list[Column]
    row: int = 0
    col: int = 0
    bold_header: bool = True

    @property
    def n_rows(self) -> int:  # data rows, header excluded
        return len(self.columns[0].values) if self.columns else 0


@dataclass
class Text:
    """A single cell of text or a number, optionally bold or with a note."""

    row: int
    col: int
    value: Any
    bold: bool = False
    note: str | None = None
    number_format: str | None = None
    formula: str | None = None
    wrap: bool = False  # wrap the text inside the cell, top-aligned (long sentences)
    span: int = 1  # columns the cell is merged across (with `wrap`, the width the text wraps in)


@dataclass
class Highlight:
    """A fill colour over a block, with an optional note on its first cell."""

    row: int
    col: int
    n_rows: int = 1
    n_cols: int = 1
    color: str = "FFC7CE"  # RRGGBB
    note: str | None = None


@dataclass
class ColorScale:
    """A colour-scale conditional format over a block: low values green, high values red.

    The three colours sit at the block's minimum, median and maximum, or at fixed values where
    given: a probability reads best on 0 / 0.5 / 1, a signed factor with white at 0."""

    row: int
    col: int
    n_rows: int
    n_cols: int
    low: str = "63BE7B"  # RRGGBB at the minimum (or at low_value)
    mid: str = "FFEB84"  # … at the median (or at mid_value)
    high: str = "F8696B"  # … at the maximum (or at high_value)
    low_value: float | None = None
    mid_value: float | None = None
    high_value: float | None = None

    def points(self) -> list[tuple[str, float | None, str]]:
        """(where, fixed value or None, colour) for the low, mid and high points; `where` is
        "min", "median" or "max" when no value is fixed."""
        return [("min", self.low_value, self.low), ("median", self.mid_value, self.mid),
                ("max", self.high_value, self.high)]


@dataclass
class RangeRef:
    """A block of cells on a tab, 0-based and half-open (a chart's data)."""

    tab: str
    row0: int
    col0: int
    row1: int  # exclusive
    col1: int  # exclusive


@dataclass
class Series:
    """One series of a chart: its values (`y`) and, on a scatter chart, its own x values."""

    name: str
    y: RangeRef
    x: RangeRef | None = None  # None: the chart's shared domain
    style: str | None = None  # "markers" or "line"; None: the chart kind's own (scatter: markers)


@dataclass
class Chart:
    """A line or scatter chart placed on a tab."""

    kind: str  # "line" or "scatter"
    title: str
    series: list[Series]
    x_title: str = ""
    y_title: str = ""
    domain: RangeRef | None = None  # x values shared by all series (line charts)
    anchor: tuple[int, int] = (0, 0)  # (row, col) of the top-left corner
    width_px: int = 600
    height_px: int = 371
    x_min: float | None = None  # axis bounds (None: the spreadsheet's own choice)
    x_max: float | None = None
    y_min: float | None = None
    y_max: float | None = None
    axis_format: str | None = None  # number format of both axes' labels (None: the data's own)


@dataclass
class TabPlan:
    """A tab sheetsync owns, written whole (replacing its previous version), or, with
    `append_after` set, a log that rows are added to (see there)."""

    name: str
    tables: list[Table] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    highlights: list[Highlight] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    frozen_rows: int = 0
    frozen_cols: int = 0
    hidden: bool = False
    kind: str = ""  # "steps", "epochs", "map", "compare", "runs", "state": for the owner mark
    row_heights: dict[int, float] = field(default_factory=dict)  # row -> height in points
    color_scales: list[ColorScale] = field(default_factory=list)
    # A log (the run log): later plans append rows to its one table at (0, 0), so a backend
    # writes it the way that makes appending cheap.
    log: bool = False
    # Append instead of replace: the tab (a log, owned) holds this many data rows below the
    # header its table names (as read); the table's rows go below them, the header and
    # everything else of the tab stay. A tab that no longer exists is written whole.
    append_after: int | None = None

    def extent(self) -> tuple[int, int]:
        """(rows, cols) the tab needs (an appended log: with the rows it holds)."""
        rows = cols = 0
        for t in self.tables:
            rows = max(rows, t.row + 1 + (self.append_after or 0) + t.n_rows)
            cols = max(cols, t.col + len(t.columns))
        for x in self.texts:
            rows, cols = max(rows, x.row + 1), max(cols, x.col + x.span)
        return rows, cols


@dataclass
class Plan:
    """Everything one run writes. Applied as one atomic change.

    `tabs` are created or replaced (owned tabs only); `remove` names owned tabs to delete.
    A replaced tab keeps its place; new tabs go beside their neighbours in the order given, or
    after the user's tabs (`order.arrange`). A backend must refuse (with
    `OwnershipError`) to touch any tab that exists and is not owned.
    """

    tabs: list[TabPlan] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


class Backend(Protocol):
    """A place sheets live: a local workbook or a Google spreadsheet."""

    def read(self, tabs: Sequence[str]) -> Snapshot:
        """Metadata of every tab and the values of `tabs` (those that exist), in one round.

        A backend that can append (`appends` True) also takes ``heads=[...]``: tabs read by
        their first row only (`Snapshot.heads`), and applies plans with `TabPlan.append_after`."""

    def apply(self, plan: Plan) -> None:
        """Write the plan atomically: all of it lands, or nothing changes."""
