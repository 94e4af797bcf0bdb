"""`NAME landscape`: the loss over a grid of two parameters, with the optimizer's path.

The layout is a contract (the README documents it): A1 says which two parameters and what is
held fixed; row 3 from column B holds the values of the first parameter (the x axis), column A
from row 4 the values of the second (largest at the top, as on a chart's y axis); the grid from
B4 holds the mean row loss at those values, by the model's own arithmetic, under a colour scale.
Right of the grid, a scatter chart draws the path of the parameters step by step over the same
axes (its bounds are the grid's), and beside it the path's numbers. With more than two
parameters the grid is a slice over the two that moved most, the others held where the path
ends, and A1 says so.
"""

from __future__ import annotations

import numpy as np

from ..a1 import landscape_tab_name
from ..backends.base import Chart, ColorScale, Column, RangeRef, Series, Table, TabPlan, Text
from ..engine.explain import LANDSCAPE_PATH, LANDSCAPE_POINTS, Landscape, landscape
from ..engine.result import Result

GRID_ROW = 3  # 0-based row of the grid's first line (sheet row 4)
CELL_WIDTH = 6.5  # characters: a loss of 205799 fits, so the grid and its chart share a first screen


def render_landscape(result: Result, x: np.ndarray, y: np.ndarray, max_cells: int) -> TabPlan | None:
    """The tab, or None when the model or the cells left (`max_cells`) have no room for it."""
    X = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    width = LANDSCAPE_POINTS + 1 + 8 + 3  # grid, the chart's columns, the path's numbers
    path_points = min(LANDSCAPE_PATH, max_cells // width - GRID_ROW)
    if path_points < 2:
        return None
    land = landscape(result, X, np.asarray(y, dtype=np.float64), path_points=path_points)
    if land is None:
        return None
    name = landscape_tab_name(result.experiment.name)
    tab = TabPlan(name, kind="landscape", frozen_rows=0, row_heights={0: 45.0, 1: 45.0})
    g = len(land.xs)
    tab.texts.append(Text(0, 0, _title(result, land), bold=True, wrap=True, span=g + 1))
    tab.texts.append(Text(1, 0, _how_to_read(result, land), wrap=True, span=g + 1))
    fmt = "0" if np.nanmin(land.loss) >= 10 else "0.00"  # losses large or small, in 6 characters
    if np.nanmax(land.loss) >= 1e6:
        fmt = "0.0E+0"
    grid = [Column(_number(v), land.loss[:, j], fmt, CELL_WIDTH) for j, v in enumerate(land.xs)]
    tab.tables.append(Table([Column(f"{land.q} ↓ / {land.p} →", land.ys, "0.0000", 10)] + grid,
                            row=GRID_ROW - 1, col=0))
    for j, v in enumerate(land.xs):  # the x values as numbers over the header's text
        tab.texts.append(Text(GRID_ROW - 1, 1 + j, float(v), bold=True, number_format="0.000"))
    tab.color_scales.append(ColorScale(GRID_ROW, 1, len(land.ys), g))
    chart_col = g + 1  # right of the grid, on the first screen; the path's numbers right of it
    path_col = chart_col + 8
    k = len(land.path)
    tab.tables.append(Table([Column("step", land.path_steps.astype(float), "0", 7),
                             Column(f"path {land.p}", land.path[:, 0], "0.0000", 10),
                             Column(f"path {land.q}", land.path[:, 1], "0.0000", 10)],
                            row=GRID_ROW - 1, col=path_col))
    top = GRID_ROW
    series = [Series("path", RangeRef(name, top, path_col + 2, top + k, path_col + 3),
                     RangeRef(name, top, path_col + 1, top + k, path_col + 2), "line"),
              Series("start", RangeRef(name, top, path_col + 2, top + 1, path_col + 3),
                     RangeRef(name, top, path_col + 1, top + 1, path_col + 2), "markers")]
    chart = Chart("scatter", f"The path over ({land.p}, {land.q}), on the grid's axes",
                  series, land.p, land.q, anchor=(GRID_ROW - 1, chart_col), width_px=400, height_px=330,
                  x_min=float(land.xs[0]), x_max=float(land.xs[-1]),
                  y_min=float(land.ys[-1]), y_max=float(land.ys[0]), axis_format="0.00")
    tab.charts.append(chart)
    return tab


def _number(v: float) -> str:
    return f"{v:.4g}"


def _title(result: Result, land: Landscape) -> str:
    exp = result.experiment
    fixed = ", ".join(f"{k} = {v:.4g}" for k, v in land.fixed.items())
    what = (f"the loss over {land.p} and {land.q}" if not land.fixed else
            f"a slice of the loss over {land.p} and {land.q}, the two parameters that moved most, "
            f"with {fixed} held fixed (where the path ends)")
    rows = (f"mean row loss over all {land.rows_total:,} data rows" if land.rows_used == land.rows_total else
            f"mean row loss over {land.rows_used:,} of the {land.rows_total:,} data rows, evenly spaced "
            "(the grid would cost too much over all of them)")
    return f"{exp.name}: {what}. Each cell: the {rows}."


def _how_to_read(result: Result, land: Landscape) -> str:
    text = (f"Row 3 holds {land.p} (x axis), column A {land.q} (y axis, largest at the top); green is low "
            f"loss, red high. The chart beside the grid draws the {len(land.path):,} points of the path over the same axes: "
            "a long narrow valley makes gradient descent zig-zag across it and creep along it, and forces a "
            "small learning rate.")
    if land.cut_at is not None:
        text += f" The path stops at step {land.cut_at}: after it the run exploded and left the grid."
    return text
