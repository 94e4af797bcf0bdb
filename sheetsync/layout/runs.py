"""`runs`: the run log, one row per run, appended across runs (also after bad input).

It is the only tab written when the inputs have problems, so a learner sees in the sheet
itself why nothing else changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

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


def render_runs(previous: pd.DataFrame | None, entry: RunEntry) -> TabPlan:
    """The log: the previous rows (the newest MAX_LOG_ROWS - 1) and this run's. Column by column,
    so a run costs the same whatever the log already holds."""
    keep = MAX_LOG_ROWS - 1
    if previous is not None and not previous.empty:
        previous = previous.iloc[-keep:] if keep else previous.iloc[:0]
        cells = [_texts(previous[h]) if h in previous.columns else [""] * len(previous) for h in RUNS_HEADER]
    else:
        cells = [[] for _ in RUNS_HEADER]
    for column, value in zip(cells, entry.row()):
        column.append(value)
    widths = [26, 8, 24, 14, 18, 24, 100]  # the timestamp (2026-12-05T20:30:00+00:00) fits
    columns = [Column(h, values, "@", w, wrap=h in WRAPPED)
               for h, values, w in zip(RUNS_HEADER, cells, widths)]
    return TabPlan(RUNS_TAB, [Table(columns)], frozen_rows=1, kind="runs")


def _texts(series: pd.Series) -> list[str]:
    """A column read back, as the text cells it is written as (blank for None)."""
    return ["" if v is None else str(v) for v in series.tolist()]
