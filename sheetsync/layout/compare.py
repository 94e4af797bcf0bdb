"""`compare`: the loss per epoch of every experiment side by side, with one line chart.

Experiments not run this time keep their place: their history is read back from their own
`NAME epochs` tabs, so the comparison always covers the whole sheet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..backends.base import Chart, Column, RangeRef, Series, Table, TabPlan, Text

COMPARE_TAB = "compare"


def render_compare(histories: dict[str, pd.DataFrame]) -> TabPlan:
    """`histories`: experiment -> its epochs history (columns `epoch` and `loss` at least)."""
    tab = TabPlan(COMPARE_TAB, kind="compare", frozen_rows=1)
    losses = {name: _loss_by_epoch(h) for name, h in histories.items()}
    epochs = sorted(set().union(*(s.index for s in losses.values()))) if losses else []
    columns = [Column("epoch", np.asarray(epochs, dtype=float), "0", 7)]
    for name, loss in losses.items():
        values = loss.reindex(epochs).to_numpy(dtype=float)
        columns.append(Column(f"{name} loss", values, "General", max(12, len(name) + 7)))
    tab.tables.append(Table(columns))
    n = len(epochs)
    series = [Series(c.header, RangeRef(COMPARE_TAB, 1, j, 1 + n, j + 1))
              for j, c in enumerate(columns) if j > 0]
    side = len(columns) + 1
    tab.texts.append(Text(0, side, "Loss per epoch, every experiment (a blank: that experiment had "
                          "not reached that epoch, or its loss was not a finite number)."))
    tab.charts.append(Chart("line", "Loss per epoch", series, "epoch", "loss",
                            domain=RangeRef(COMPARE_TAB, 1, 0, 1 + n, 1), anchor=(2, side)))
    return tab


def _loss_by_epoch(history: pd.DataFrame) -> pd.Series:
    if history is None or history.empty or "epoch" not in history or "loss" not in history:
        return pd.Series(dtype=float)
    epoch = pd.to_numeric(history["epoch"], errors="coerce")
    loss = pd.to_numeric(history["loss"], errors="coerce")
    s = pd.Series(loss.to_numpy(), index=epoch.to_numpy()).dropna()
    return s[~s.index.duplicated(keep="last")]
