"""`NAME epochs`: one row per epoch across all runs so far, diagnostics, and two charts.

The history is the previous version of this tab (read back by the runner) followed by this
run's epochs; a Reset starts it again. Beside the table: the diagnostics in plain words, a chart
of the parameter paths, and the fit against the data — the data as points and the model's
prediction at the final parameters over a sorted grid of x (with the ReLU elbow itself on the
grid, so the bend shows as a sharp corner). Several inputs cannot be drawn on one x axis, so
the fit is left out then, and the tab says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..backends.base import Chart, Column, RangeRef, Series, Table, TabPlan, Text
from ..engine.result import Result
from .tables import frame_columns, read_table

HEADER_ROW = 0  # 0-based row of the table's header; the first epoch sits just below it
MAX_PATH_SERIES = 8  # more lines than this make a parameter chart unreadable
FIT_GRID = 200
CHART_ROWS = 22  # rows a 371 px chart covers at the default row height, plus a margin
FIT_POINTS = 500  # data points drawn in the fit chart (sampled evenly beyond this)


def epochs_tab_name(experiment: str) -> str:
    return f"{experiment} epochs"


def read_history(rows: list[list] | None) -> pd.DataFrame:
    """A `NAME epochs` tab read back: its table, wherever a version of sheetsync put the header
    (the first row whose first cell is `epoch`)."""
    for i, row in enumerate(rows or []):
        if row and row[0] == "epoch":
            return read_table(rows, header_row=i)
    return pd.DataFrame()


def merge_history(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Previous epochs rows (as read back) followed by this run's, in this run's column order."""
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    previous = previous.copy()
    for name in previous.columns:
        if name in new.columns and pd.api.types.is_numeric_dtype(new[name]):
            previous[name] = pd.to_numeric(previous[name], errors="coerce")
        elif name in new.columns:
            previous[name] = previous[name].fillna("").astype(str)
    merged = pd.concat([previous, new], ignore_index=True)
    columns = list(new.columns) + [c for c in previous.columns if c not in new.columns]
    return merged[columns]


def render_epochs(result: Result, history: pd.DataFrame, x: np.ndarray, y: np.ndarray,
                  notes: list[str]) -> TabPlan:
    name = epochs_tab_name(result.experiment.name)
    tab = TabPlan(name, kind="epochs", frozen_rows=HEADER_ROW + 1)
    columns = frame_columns(history)
    tab.tables.append(Table(columns, row=HEADER_ROW, col=0))
    side = len(columns) + 1
    lines = ["Diagnostics"] + (notes or ["Nothing unusual: no divergence, no dead units."])
    for i, line in enumerate(lines):
        tab.texts.append(Text(i, side, line, bold=i == 0))
    chart_row = len(lines) + 1
    tab.charts.append(_path_chart(name, history, result.param_names, (chart_row, side)))
    fit_col = side + 9  # right of the charts (600 px is about 9 default columns)
    if x.ndim == 1 or x.shape[1] == 1:
        _add_fit(tab, result, x.reshape(len(x), -1)[:, 0], y, fit_col, (chart_row + CHART_ROWS, side))
    else:
        tab.texts.append(Text(len(lines), side, "No fit chart: the data has several inputs, which one "
                              "x axis cannot show."))
    return tab


def _path_chart(tab: str, history: pd.DataFrame, params: list[str], anchor) -> Chart:
    n, top = len(history), HEADER_ROW + 1
    columns = list(history.columns)
    epoch = RangeRef(tab, top, 0, top + n, 1)
    series = []
    for p in params[:MAX_PATH_SERIES]:
        if p in columns:
            c = columns.index(p)
            series.append(Series(p, RangeRef(tab, top, c, top + n, c + 1)))
    title = "Parameter paths (value carried into the next epoch)"
    if len(params) > MAX_PATH_SERIES:
        title += f": first {MAX_PATH_SERIES} of {len(params)}"
    return Chart("line", title, series, "epoch", "value", domain=epoch, anchor=anchor)


def _add_fit(tab: TabPlan, result: Result, x: np.ndarray, y: np.ndarray, col: int, anchor) -> None:
    shown = np.linspace(0, len(x) - 1, min(len(x), FIT_POINTS)).round().astype(int)
    grid = fit_grid(result, x)
    pred = predict(result, grid)
    tab.tables.append(Table([Column("data x", x[shown], "General", 10),
                             Column("data y", y[shown], "General", 10)], row=0, col=col))
    tab.tables.append(Table([Column("grid x", grid, "General", 10),
                             Column("model", pred, "General", 12)], row=0, col=col + 2))
    data_x = RangeRef(tab.name, 1, col, 1 + len(shown), col + 1)
    data_y = RangeRef(tab.name, 1, col + 1, 1 + len(shown), col + 2)
    grid_x = RangeRef(tab.name, 1, col + 2, 1 + len(grid), col + 3)
    model_y = RangeRef(tab.name, 1, col + 3, 1 + len(grid), col + 4)
    tab.charts.append(Chart("scatter", "Fit: data and the model at the final parameters",
                            [Series("data", data_y, data_x, "markers"), Series("model", model_y, grid_x, "line")],
                            "x", "y", anchor=anchor))


def fit_grid(result: Result, x: np.ndarray) -> np.ndarray:
    """Sorted x values spanning the data, including any ReLU elbow (x = -b/a) inside the span."""
    lo, hi = float(np.min(x)), float(np.max(x))
    grid = np.linspace(lo, hi, FIT_GRID)
    p = result.params
    if result.experiment.model == "two_relu" and p.get("a"):
        elbow = -p["b"] / p["a"]
        if lo < elbow < hi:
            grid = np.sort(np.r_[grid, elbow])
    return grid


def predict(result: Result, grid: np.ndarray) -> np.ndarray:
    """The model's prediction at the final parameters, from the engine's one model definition."""
    from ..engine.expr import evaluate
    from ..engine.models import build_model

    exp = result.experiment
    model = build_model(exp.model, 1, exp.hidden)
    out = np.empty(len(grid))
    for i, xv in enumerate(grid):
        env = dict(result.params)
        env[model.inputs[0]] = float(xv)
        for name, e in model.intermediates:
            env[name] = evaluate(e, env)
        out[i] = evaluate(model.pred, env)
    return out
