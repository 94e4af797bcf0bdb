"""`compare`: the loss per epoch of every experiment side by side, with one line chart.

Experiments not run this time keep their place: their history is read back from their own
`NAME epochs` tabs, so the comparison always covers the whole sheet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..a1 import COMPARE_TAB
from ..backends.base import Chart, Column, RangeRef, Series, Table, TabPlan, Text
from ..engine.result import Columns
from .tables import numeric


def render_compare(histories: dict[str, Columns]) -> TabPlan:
    """`histories`: experiment -> its epochs history (columns `epoch` and `loss` at least)."""
    tab = TabPlan(COMPARE_TAB, kind="compare", frozen_rows=1)
    losses = {name: _loss_by_epoch(h) for name, h in histories.items()}
    epochs = sorted(set().union(*losses.values())) if losses else []
    columns = [Column("epoch", np.asarray(epochs, dtype=float), "0", 7)]
    for name, loss in losses.items():
        values = np.array([loss.get(e, np.nan) for e in epochs], dtype=float)
        columns.append(Column(f"{name} loss", values, "General", max(12, len(name) + 7)))
    tab.tables.append(Table(columns))
    n = len(epochs)
    series = [Series(c.header, RangeRef(COMPARE_TAB, 1, j, 1 + n, j + 1))
              for j, c in enumerate(columns) if j > 0]
    side = len(columns) + 1
    chart = Chart("line", "Loss per epoch", series, "epoch", "loss",
                  domain=RangeRef(COMPARE_TAB, 1, 0, 1 + n, 1), anchor=(2, side))
    note = "Loss per epoch, every experiment (a blank: that experiment had not reached that epoch, or its loss was not a finite number)."
    cut = axis_cut({name: list(loss.values()) for name, loss in losses.items()})
    if cut is not None:
        top, gone = cut
        chart.y_max, chart.y_min = top, 0.0
        note += (f" The chart's loss axis stops at {top:,.4g} so the others stay readable: "
                 f"{', '.join(gone)} left it (diverged or blew up); the table keeps every value.")
    tab.texts.append(Text(0, side, note, wrap=True, span=9))
    tab.row_heights[0] = 45.0
    tab.charts.append(chart)
    return tab


BLOWN_UP = 1000.0  # an experiment whose loss exceeds the others' largest by this factor is cut


def axis_cut(losses: dict[str, Any]) -> tuple[float, list[str]] | None:
    """(axis top, experiments cut) when some experiments' losses (numbers each) would flatten the rest."""
    peaks = {name: float(np.nanmax(np.asarray(s, dtype=float))) if len(s) else np.nan
             for name, s in losses.items()}
    finite = sorted(v for v in peaks.values() if np.isfinite(v))
    if len(finite) < 2:
        return None
    for k in range(len(finite) - 1, 0, -1):  # the largest peak that is not a blow-up of the rest
        if finite[k] > BLOWN_UP * max(finite[k - 1], 1e-300):
            top = finite[k - 1] * 1.1
            gone = [n for n, v in peaks.items() if not np.isfinite(v) or v > top]
            return top, gone
    return None


def _loss_by_epoch(history: Columns | None) -> dict[float, float]:
    """epoch -> its loss, for the epochs whose loss is a number (the last row of an epoch listed twice)."""
    if history is None or not len(history) or "epoch" not in history or "loss" not in history:
        return {}
    epochs, losses = numeric(history["epoch"]).tolist(), numeric(history["loss"]).astype(float).tolist()
    return {e: v for e, v in zip(epochs, losses) if v == v}  # v == v: not NaN
