"""`runs`: the run log, one row per run, appended across runs (also after bad input).

It is the only tab written when the inputs have problems, so a learner sees in the sheet
itself why nothing else changed.

A run appends its row rather than rewriting the log, so its cost does not grow with the log
(issue 17): the first read takes the log's header row alone (`first_read`), and when that is
RUNS_HEADER the plan appends (`TabPlan.append_after`), which each backend does its cheapest
way. The log is written whole, from its rows read back, only when it must be: missing, an
older version's columns or a header the user edited, a backend that cannot append, and at the
cap. The cap is amortised: the log grows to MAX_LOG_ROWS + TRIM_ROWS rows, then the run that
would pass that writes it whole with the newest MAX_LOG_ROWS (one whole write per TRIM_ROWS
runs, rows renumbered only then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..a1 import RUNS_TAB
from ..backends.base import Column, Snapshot, Table, TabPlan

RUNS_HEADER = ["when (UTC)", "action", "experiments", "data hash", "flavours", "outcome", "messages"]
WRAPPED = {"experiments", "outcome", "messages"}  # long texts wrap in their cells
MAX_LOG_ROWS = 5_000  # oldest runs drop out beyond this (TRIM_ROWS at a time)
TRIM_ROWS = 500  # the log may pass MAX_LOG_ROWS by this much before its oldest rows drop
WIDTHS = [26, 8, 24, 14, 18, 24, 100]  # the timestamp (2026-12-05T20:30:00+00:00) fits
MAX_MESSAGE_CHARS = 30_000  # a cell holds at most 32,767 characters


@dataclass
class RunEntry:
    """One row of the run log."""

    action: str  # "run" | "reset" | "push"
    experiments: list[str]
    data_hash: str = ""
    flavours: list[str] = field(default_factory=list)
    outcome: str = "ok"  # "ok" | "input errors" | "diverged: NAME" ...
    messages: list[str] = field(default_factory=list)
    when: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def row(self) -> list[str]:
        text = "\n".join(self.messages)
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + " …"
        return [self.when, self.action, ", ".join(self.experiments), self.data_hash,
                ", ".join(dict.fromkeys(self.flavours)), self.outcome, text]


@dataclass
class LogAsRead:
    """What a run knows of the log before it writes: the rows it had to read back for a whole
    write (`rows`, the header first; None: no log yet), or, when it appends, the data rows the
    log holds (`append_after`)."""

    rows: list[list] | None = None
    append_after: int | None = None


def first_read(backend, tabs: list[str]) -> Snapshot:
    """A run's first read: `tabs` and the run log — its header row alone where the backend
    can append to it (the scheduler's read is this same one, so the runner's costs nothing)."""
    if getattr(backend, "appends", False):
        return backend.read([t for t in tabs if t != RUNS_TAB], heads=[RUNS_TAB])
    return backend.read(list(dict.fromkeys(tabs + [RUNS_TAB])))


def log_as_read(backend, snapshot: Snapshot) -> LogAsRead:
    """The log as `first_read` saw it; read whole only when this run must write it whole."""
    info = snapshot.tab(RUNS_TAB)
    if info is None or not info.owned:
        return LogAsRead()
    if RUNS_TAB in snapshot.values:
        return LogAsRead(rows=snapshot.values[RUNS_TAB])
    held = info.rows - 1  # the header is the first of the rows the tab declares
    head = snapshot.heads.get(RUNS_TAB) or []
    if _header(head) == RUNS_HEADER and 1 <= held < MAX_LOG_ROWS + TRIM_ROWS:
        return LogAsRead(append_after=held)
    return LogAsRead(rows=backend.read([RUNS_TAB]).values.get(RUNS_TAB))


def render_runs(previous: LogAsRead | list[list] | None, entry: RunEntry) -> TabPlan:
    """The log: the previous rows (the newest MAX_LOG_ROWS - 1) and this run's, or, when
    `previous` says the run appends, this run's row alone to go below the rows the log holds.
    `previous` as a list is the tab as read (its cells, the header first), taken column by
    column with no table built."""
    if isinstance(previous, LogAsRead):
        if previous.append_after is not None:
            return _log_tab([[v] for v in entry.row()], append_after=previous.append_after)
        previous = previous.rows
    cells = _previous_cells(previous or [], MAX_LOG_ROWS - 1)
    for column, value in zip(cells, entry.row()):
        column.append(value)
    return _log_tab(cells)


def _log_tab(cells: list[list[str]], append_after: int | None = None) -> TabPlan:
    columns = [Column(h, values, "@", w, wrap=h in WRAPPED)
               for h, values, w in zip(RUNS_HEADER, cells, WIDTHS)]
    return TabPlan(RUNS_TAB, [Table(columns)], frozen_rows=1, kind="runs", log=True,
                   append_after=append_after)


def _header(row: list) -> list[str]:
    """A header row's titles up to the first blank one."""
    header = []
    for v in row:
        if _blank(v):
            break
        header.append(str(v))
    return header


def _previous_cells(rows: list[list], keep: int) -> list[list[str]]:
    """The newest `keep` rows of the log as read, column by column in RUNS_HEADER's order, as the
    text cells they are written as (blank for None). The table is read as `tables.read_table`
    reads one: headers up to the first blank one, rows up to the first with a blank first cell;
    a column the log no longer has is blank, one it does not write is dropped."""
    if not rows:
        return [[] for _ in RUNS_HEADER]
    header = _header(rows[0])
    end = 1
    while end < len(rows) and rows[end] and not _blank(rows[end][0]):
        end += 1
    body = rows[max(1, end - keep):end] if keep else []
    where = {h: header.index(h) for h in RUNS_HEADER if h in header}
    return [_column(body, where[h]) if h in where else [""] * len(body) for h in RUNS_HEADER]


def _column(body: list[list], j: int) -> list[str]:
    if all(len(r) > j for r in body):
        column = [r[j] for r in body]
        return column if all(type(v) is str for v in column) else list(map(_text, column))
    return [_text(r[j]) if j < len(r) else "" for r in body]


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _text(v) -> str:
    return "" if v is None else str(v)
