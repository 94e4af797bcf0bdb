"""`NAME boundary`: the grid of p over the inputs, the data by class, formulas of the parameters.

The layout is tested on a stand-in head (a rational squashing of z = a1·x1 + a2·x2 + b, built
from the expression language) so the geometry is checked apart from any one model; the real
classifiers' boundary tabs are tested at the end of this file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sheetsync.backends.base import Plan
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.engine.expr import absolute, evaluate, sym
from sheetsync.layout import boundary as B

ROOT = Path(__file__).resolve().parent.parent
Z = sym("a1") * sym("x1") + sym("a2") * sym("x2") + sym("b")
SQUASH = 0.5 + 0.5 * sym("z") / (1.0 + absolute(sym("z")))  # in (0, 1), rises through 0.5 at z = 0
PARAMS = {"a1": 1.5, "a2": -0.5, "b": 0.25}


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n, 2))
    return X, (X[:, 0] * 1.5 - X[:, 1] * 0.5 + 0.25 > 0).astype(int)


def tab(formulas=False, outputs=None, X=None, labels=None, names=("neg", "pos"), inputs=("x1", "x2")):
    if X is None:
        X, labels = data()
    outs = B.inline([("z", Z)], outputs or [("p(pos)", SQUASH)])
    final = (lambda p: f"'toy steps'!$Z${10 + list(PARAMS).index(p)}") if formulas else None
    return B.render_boundary("toy", "toy: logistic", outs, list(inputs), PARAMS, X, labels, list(names), final)


def test_the_grid_is_the_model_evaluated_over_the_data_span():
    t = tab()
    grid = t.tables[0]
    x2s = np.asarray(grid.columns[0].values)
    x1s = np.array([x.value for x in t.texts if x.row == B.GRID_TOP and x.col >= 1])
    X, _ = data()
    assert len(x1s) == len(x2s) == B.GRID
    assert x1s[0] < X[:, 0].min() and x1s[-1] > X[:, 0].max()
    assert x2s[0] > X[:, 1].max() and x2s[-1] < X[:, 1].min()  # largest at the top
    for i in (0, 7, B.GRID - 1):
        for j in (0, 10, B.GRID - 1):
            env = dict(PARAMS, x1=x1s[j], x2=x2s[i])
            env["z"] = evaluate(Z, env)
            assert grid.columns[1 + j].values[i] == evaluate(SQUASH, env)
    assert t.color_scales[0].n_rows == t.color_scales[0].n_cols == B.GRID


def test_the_chart_draws_each_class_on_the_grids_axes():
    X, labels = data()
    t = tab()
    chart = t.charts[0]
    assert [s.name for s in chart.series] == ["neg", "pos"]
    x1s = [x.value for x in t.texts if x.row == B.GRID_TOP and x.col >= 1]
    assert (chart.x_min, chart.x_max) == (x1s[0], x1s[-1])
    points = {c.header: np.asarray(c.values) for tb in t.tables[1:] for c in tb.columns}
    np.testing.assert_array_equal(points["x1 (pos)"], X[labels == 1, 0])
    np.testing.assert_array_equal(points["x2 (neg)"], X[labels == 0, 1])


def test_parameters_sit_in_row_3_and_say_where_they_come_from():
    t = tab(formulas=True)
    row = {x.col: x for x in t.texts if x.row == B.PARAM_ROW + 1 and x.col >= 1}
    assert [row[j + 1].value for j in range(3)] == list(PARAMS.values())
    assert row[1].formula == "='toy steps'!$Z$10"


def test_one_grid_per_class_for_several_outputs():
    X, _ = data()
    labels = np.arange(len(X)) % 3
    outputs = [("p(a)", SQUASH), ("p(b)", 1.0 - SQUASH), ("p(c)", SQUASH * 0.0 + 0.5)]
    t = tab(outputs=outputs, labels=labels, X=X, names=("a", "b", "c"))
    grids = [tb for tb in t.tables if tb.columns[0].header.startswith("p(")]
    assert [g.columns[0].header.split(":")[0] for g in grids] == ["p(a)", "p(b)", "p(c)"]
    assert [g.row for g in grids] == [B.GRID_TOP, B.GRID_TOP + B.GRID + 2, B.GRID_TOP + 2 * (B.GRID + 2)]
    assert len(t.color_scales) == 3 and len(t.charts[0].series) == 3


def test_one_input_draws_p_against_x_with_the_data_at_its_label():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 30)
    labels = (x > 0).astype(int)
    z = sym("a") * sym("x") + sym("b")
    outs = B.inline([("z", z)], [("p", 0.5 + 0.5 * sym("z") / (1.0 + absolute(sym("z"))))])
    t = B.render_boundary("one", "one", outs, ["x"], {"a": 2.0, "b": 0.0}, x, labels, ["0", "1"])
    assert len(t.tables[0].columns[0].values) == B.LINE_GRID
    heights = {c.header: set(np.asarray(c.values)) for tb in t.tables[1:] for c in tb.columns if c.header.startswith("at")}
    assert heights == {"at (0)": {0.0}, "at (1)": {1.0}}
    assert [s.name for s in t.charts[0].series] == ["p", "data: 0", "data: 1"]


def test_no_tab_for_three_inputs():
    X = np.zeros((5, 3))
    assert tab(X=X, labels=np.zeros(5, int), inputs=("x1", "x2", "x3")) is None


def test_long_names_are_cut_to_excels_31_characters():
    assert B.boundary_tab_name("a" * 30) == "a" * 21 + "~ boundary"
    assert len(B.boundary_tab_name("a" * 30)) == 31


def test_formula_mode_recalculates_in_libreoffice_to_the_values(tmp_path):
    values, formulas = tab(), tab(formulas=True)
    # the parameter cells read a stand-in steps tab holding the final parameters at Z10:Z12
    steps = [[None] * 26 for _ in range(12)]
    for k, v in enumerate(PARAMS.values()):
        steps[9 + k][25] = v
    path = tmp_path / "b.xlsx"
    XlsxBackend.create(str(path), {"toy steps": steps})
    XlsxBackend(str(path)).apply(Plan([formulas]))
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), formulas.name],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sheet = json.loads(proc.stdout)[formulas.name]
    assert sheet["errors"] == {}
    grid = values.tables[0]
    checked = 0
    for j, column in enumerate(grid.columns[1:], start=1):
        assert formulas.tables[0].columns[j].formulas[0].startswith("=")
        for i, v in enumerate(column.values):
            lo = float(sheet["values"][B.GRID_TOP + 1 + i][j])
            assert lo == pytest.approx(v, rel=1e-12, abs=0), (i, j)
            checked += 1
    assert checked == B.GRID * B.GRID
