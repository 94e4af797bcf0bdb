"""`NAME boundary`: what a classifier says over its input space (TensorFlow Playground's picture).

Two inputs: for each class probability the model puts out (p of class 1 for a sigmoid head, p
of every class for softmax), a grid of that probability over (x1, x2) as numbers under a
colour scale in the class's own colour, x1 along row 5 and x2 down column A (largest at the
top, as on a chart's y axis); beside the first grid a scatter of the data points by class over
the same axes, so the colours of grid and points meet at the decision boundary. One input: p
against x over a grid as lines, with the data points by class at their label's height. More
inputs cannot be drawn on a page: no tab.

Rows 2 and 3 hold the parameters the grid is computed from (the run's final ones). Every grid
cell is the model's own probability expression (engine.models, the one definition the steps
use) evaluated there; in formula mode the cell holds that expression as a formula of the
parameter cells and its axis cells, and the parameter cells read the last `new …` cells of
`NAME steps`, so the picture follows the sheet when a setting changes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..a1 import boundary_tab_name, col_letter
from ..backends.base import Chart, ColorScale, Column, RangeRef, Series, Table, TabPlan, Text
from ..engine.expr import Expr, evaluate, subs, to_formula

GRID = 21  # points per axis: 21 x 21 cells fit a first screen beside the chart
PARAM_ROW = 1  # 0-based: names in row 2, values in row 3
GRID_TOP = 4  # 0-based: the first grid's x1 axis (sheet row 5); its cells from row 6
CELL_WIDTH = 5.5  # characters: "-0.00" and a margin
MAX_POINTS = 500  # data points a chart draws per class (evenly sampled beyond)
LINE_GRID = 101  # one input: points along x
MARGIN = 0.05  # the grid reaches this share of the data's span beyond it on each side
# light tints of the charts' series colours (blue, orange, green, … : class k is series k), so numbers stay legible
TINTS = ("9BC2E6", "F4B084", "A9D08E", "FFD966", "BDD7EE", "C9C9C9")


def _halfway(a: str, b: str) -> str:
    """The RRGGBB colour halfway between two."""
    return "".join(f"{(int(a[i:i + 2], 16) + int(b[i:i + 2], 16)) // 2:02X}" for i in (0, 2, 4))


def inline(intermediates: list[tuple[str, Expr]], outputs: list[tuple[str, Expr]]) -> list[tuple[str, Expr]]:
    """Each output as one expression of inputs and parameters (intermediates substituted), so one
    grid cell holds one formula."""
    env: dict[str, Expr] = {}
    for name, e in intermediates:
        env[name] = subs(e, env)
    return [(label, subs(e, env)) for label, e in outputs]


def axis(values: np.ndarray, points: int) -> np.ndarray:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = (hi - lo) * MARGIN or 1.0
    return np.linspace(lo - pad, hi + pad, points)


def render_boundary(name: str, title: str, outputs: list[tuple[str, Expr]], inputs: list[str],
                    params: dict[str, float], x: np.ndarray, labels: np.ndarray, class_names: list[str],
                    final_cells: Callable[[str], str] | None = None) -> TabPlan | None:
    """The tab for experiment `name`.

    `outputs`: (label, probability expression over `inputs` and the parameters), one per grid,
    e.g. [("p(class 1)", …)] or one per class; `labels`: each data row's class index into
    `class_names`; `final_cells(param)`: formula mode, the A1 reference (with tab) of the cell
    holding the parameter's final value. Returns None for more than two inputs.
    """
    X = np.asarray(x, dtype=np.float64).reshape(len(labels), -1)
    if X.shape[1] > 2 or not outputs:
        return None
    labels = np.asarray(labels, dtype=np.int64)
    tab_name = boundary_tab_name(name)
    tab = TabPlan(tab_name, kind="boundary", row_heights={0: 48.0})
    names = list(params)
    tab.texts.append(Text(PARAM_ROW, 0, "parameter", bold=True))
    tab.texts.append(Text(PARAM_ROW + 1, 0, "final value", bold=True,
                          note="The parameters at the end of the run; the grid below is computed from these cells."))
    cell = {}
    for j, p in enumerate(names):
        tab.texts.append(Text(PARAM_ROW, 1 + j, p, bold=True))
        tab.texts.append(Text(PARAM_ROW + 1, 1 + j, float(params[p]), number_format="General",
                              formula=("=" + final_cells(p)) if final_cells else None))
        cell[p] = f"${col_letter(1 + j)}${PARAM_ROW + 2}"
    if X.shape[1] == 1:
        _one_input(tab, title, outputs, inputs[0], params, cell, X[:, 0], labels, class_names, final_cells is not None)
    else:
        _two_inputs(tab, title, outputs, inputs, params, cell, X, labels, class_names, final_cells is not None)
    return tab


def _two_inputs(tab: TabPlan, title: str, outputs, inputs, params, cell, X, labels, class_names, formulas: bool):
    x1s, x2s = axis(X[:, 0], GRID), axis(X[:, 1], GRID)[::-1]  # largest x2 at the top
    top = GRID_TOP
    env = dict(params)
    for k, (label, expr) in enumerate(outputs):
        values = np.empty((GRID, GRID))
        cells: list[list[str | None]] = [[None] * GRID for _ in range(GRID)]
        for i, v2 in enumerate(x2s):
            env[inputs[1]] = float(v2)
            for j, v1 in enumerate(x1s):
                env[inputs[0]] = float(v1)
                values[i, j] = evaluate(expr, env)
                if formulas:
                    refs = {inputs[0]: f"{col_letter(1 + j)}${top + 1}", inputs[1]: f"$A{top + 2 + i}", **cell}
                    cells[i][j] = "=" + to_formula(expr, refs.__getitem__)
        grid = [Column(f"{x1s[j]:.3g}", values[:, j], "0.00", CELL_WIDTH,
                       [cells[i][j] for i in range(GRID)] if formulas else None) for j in range(GRID)]
        tab.tables.append(Table([Column(f"{label}: {inputs[1]} ↓ / {inputs[0]} →", x2s, "0.00", 12)] + grid,
                                row=top, col=0))
        for j, v in enumerate(x1s):  # the x1 values as numbers over the header's text (formulas read them)
            tab.texts.append(Text(top, 1 + j, float(v), bold=True, number_format="0.00"))
        colour = _class_of(label, k, len(outputs))
        # probabilities on fixed points (0, 0.5, 1), not the grid's own min/median/max: a pale
        # grid means an unsure model, whatever the range the grid happens to cover
        tint = TINTS[colour % len(TINTS)]
        tab.color_scales.append(ColorScale(top + 1, 1, GRID, GRID, low="FFFFFF", mid=_halfway("FFFFFF", tint),
                                           high=tint, low_value=0.0, mid_value=0.5, high_value=1.0)
                                if len(outputs) > 1 else
                                ColorScale(top + 1, 1, GRID, GRID, low=TINTS[0], mid="FFFFFF", high=TINTS[1],
                                           low_value=0.0, mid_value=0.5, high_value=1.0))
        top += GRID + 2
    chart_col = GRID + 2
    points_col = chart_col + 10  # right of the chart (600 px: about 9.4 default columns)
    series = []
    for k, cls in enumerate(class_names):
        rows = np.flatnonzero(labels == k)
        rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), MAX_POINTS)).round().astype(int)] if len(rows) else rows
        c = points_col + 2 * k
        tab.tables.append(Table([Column(f"{inputs[0]} ({cls})", X[rows, 0], "General", 10),
                                 Column(f"{inputs[1]} ({cls})", X[rows, 1], "General", 10)], row=GRID_TOP, col=c))
        if len(rows):
            series.append(Series(str(cls), RangeRef(tab.name, GRID_TOP + 1, c + 1, GRID_TOP + 1 + len(rows), c + 2),
                                 RangeRef(tab.name, GRID_TOP + 1, c, GRID_TOP + 1 + len(rows), c + 1), "markers"))
    tab.charts.append(Chart("scatter", f"The data by class, on the grid's axes ({inputs[0]}, {inputs[1]})", series,
                            inputs[0], inputs[1], anchor=(GRID_TOP, chart_col), width_px=600, height_px=420,
                            x_min=float(x1s[0]), x_max=float(x1s[-1]), y_min=float(x2s[-1]), y_max=float(x2s[0]),
                            axis_format="0.0"))
    what = ("the probability of class " + str(class_names[-1]) if len(outputs) == 1 else
            "the probability of each class, one grid per class")
    tab.texts.append(Text(0, 0, f"{title}: {what} over ({inputs[0]}, {inputs[1]}), from the parameters in row 3. "
                          f"Row {GRID_TOP + 1} holds {inputs[0]}, column A {inputs[1]} (largest at the top), as on the "
                          "chart beside the grid, which draws the data by class over the same axes. The decision "
                          "boundary runs where p passes 0.5 (several classes: where the most probable class "
                          "changes); " + ("each grid is white at p = 0 and its class's colour at p = 1."
                                       if len(outputs) > 1 else "white is p = 0.5, full colour p = 0 or 1."),
                          wrap=True, span=GRID + 1))


def _one_input(tab: TabPlan, title: str, outputs, xname, params, cell, x, labels, class_names, formulas: bool):
    xs = axis(x, LINE_GRID)
    top = GRID_TOP
    env = dict(params)
    columns = [Column(xname, xs, "General", 10)]
    for label, expr in outputs:
        values, fs = np.empty(len(xs)), []
        for i, v in enumerate(xs):
            env[xname] = float(v)
            values[i] = evaluate(expr, env)
            fs.append("=" + to_formula(expr, {xname: f"$A{top + 2 + i}", **cell}.__getitem__))
        columns.append(Column(label, values, "0.0000", 12, fs if formulas else None))
    tab.tables.append(Table(columns, row=top, col=0))
    n = len(xs)
    domain = RangeRef(tab.name, top + 1, 0, top + 1 + n, 1)
    series = [Series(c.header, RangeRef(tab.name, top + 1, 1 + k, top + 1 + n, 2 + k), domain, "line")
              for k, c in enumerate(columns[1:])]
    col = len(columns) + 1
    binary = len(outputs) == 1
    for k, cls in enumerate(class_names):
        rows = np.flatnonzero(labels == k)
        rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), MAX_POINTS)).round().astype(int)] if len(rows) else rows
        height = float(k) if binary else 1.0  # two classes: at their label; more: at p = 1
        tab.tables.append(Table([Column(f"{xname} ({cls})", x[rows], "General", 10),
                                 Column(f"at ({cls})", np.full(len(rows), height), "General", 8)], row=top, col=col))
        if len(rows):
            series.append(Series(f"data: {cls}", RangeRef(tab.name, top + 1, col + 1, top + 1 + len(rows), col + 2),
                                 RangeRef(tab.name, top + 1, col, top + 1 + len(rows), col + 1), "markers"))
        col += 2
    tab.charts.append(Chart("scatter", f"p against {xname}, and the data by class", series, xname, "p",
                            anchor=(top, len(columns) + 1 + 2 * len(class_names) + 1), width_px=520, height_px=360,
                            x_min=float(xs[0]), x_max=float(xs[-1]), y_min=-0.05, y_max=1.05))
    where = ("the data at the height of its label (0 or 1)" if binary else "the data of each class at p = 1")
    tab.texts.append(Text(0, 0, f"{title}: the probability the model gives against {xname}, from the parameters in "
                          f"row 3, with {where}. Where p crosses 0.5 the predicted class changes.",
                          wrap=True, span=8))


def _class_of(label: str, k: int, n_outputs: int) -> int:
    """The colour index of a grid: its class (series k of the chart is class k)."""
    return k if n_outputs > 1 else 1


def classifier_outputs(result) -> list[tuple[str, Expr]]:
    """The probabilities a classifier's boundary tab draws, each one expression of the inputs and
    parameters, taken from the model's own row cells (the ones the steps tab shows): p of the
    last class for a sigmoid head, p of every class for softmax. Empty for a regression."""
    spec = result.spec
    model = getattr(spec, "model", None)
    if model is None or not getattr(model, "classifier", False):
        return []
    classes = class_names(result)
    wanted = ["p"] if model.head == "sigmoid" else [f"p{k}" for k in range(1, model.classes + 1)]
    cells = list(model.intermediates)
    for name, e in model.head_cells(spec.loss, None):
        cells.append((name, e))
        if name == wanted[-1]:
            break
    labels = [f"p({classes[-1]})"] if model.head == "sigmoid" else [f"p({c})" for c in classes]
    return inline(cells, [(label, Expr("sym", (w,))) for label, w in zip(labels, wanted)])


def class_names(result) -> list[str]:
    model = result.spec.model
    names = [str(c) for c in getattr(result, "classes", [])]
    return names if len(names) == model.classes else [str(k) for k in range(model.classes)]


def render_classifier_boundary(result, x: np.ndarray, y: np.ndarray,
                               final_cells: Callable[[str], str] | None = None) -> TabPlan | None:
    """`NAME boundary` of a trained classifier (None for a regression or more than two inputs),
    at the parameters the run ended with."""
    outputs = classifier_outputs(result)
    if not outputs:
        return None
    exp = result.experiment
    title = f"{exp.name}: {exp.model}, {getattr(exp, 'loss', '')} loss, {exp.flavour} {exp.optimizer}"
    params = {p: float(result.params[p]) for p in result.param_names}
    return render_boundary(exp.name, title, outputs, list(result.input_names), params, x,
                           np.asarray(y, dtype=np.float64).round().astype(np.int64), class_names(result),
                           final_cells)
