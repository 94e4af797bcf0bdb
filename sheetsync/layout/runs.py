"""`runs`: the run log, one row per run, appended across runs (also after bad input).

It is the only tab written when the inputs have problems, so a learner sees in the sheet
itself why nothing else changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..a1 import RUNS_TAB
from ..backends.base import Column, Table, TabPlan

RUNS_HEADER = ["when (UTC)", "action", "experiments", "data hash", "flavours", "outcome", "messages"]
WRAPPED = {"experiments", "outcome", "messages"}  # long texts wrap in their cells
MAX_LOG_ROWS = 5_000  # oldest runs drop out beyond this
MAX_MESSAGE_CHARS = 30_000  # a cell holds at most 32,767 characters


@dataclass
class RunEntry:
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


def render_runs(previous: list[list] | None, entry: RunEntry) -> TabPlan:
    """The log: the previous rows (the newest MAX_LOG_ROWS - 1) and this run's. `previous` is the
    tab as read (its cells, the header first), taken column by column with no table built, so a
    run costs the same whatever the log already holds."""
    cells = _previous_cells(previous or [], MAX_LOG_ROWS - 1)
    for column, value in zip(cells, entry.row()):
        column.append(value)
    widths = [26, 8, 24, 14, 18, 24, 100]  # the timestamp (2026-12-05T20:30:00+00:00) fits
    columns = [Column(h, values, "@", w, wrap=h in WRAPPED)
               for h, values, w in zip(RUNS_HEADER, cells, widths)]
    return TabPlan(RUNS_TAB, [Table(columns)], frozen_rows=1, kind="runs")


def _previous_cells(rows: list[list], keep: int) -> list[list[str]]:
    """The newest `keep` rows of the log as read, column by column in RUNS_HEADER's order, as the
    text cells they are written as (blank for None). The table is read as `tables.read_table`
    reads one: headers up to the first blank one, rows up to the first with a blank first cell;
    a column the log no longer has is blank, one it does not write is dropped."""
    if not rows:
        return [[] for _ in RUNS_HEADER]
    header = []
    for v in rows[0]:
        if _blank(v):
            break
        header.append(str(v))
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
