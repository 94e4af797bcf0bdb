"""`NAME boundary`: the grid of p over the inputs, the data by class, formulas of the parameters.

The layout is tested on a stand-in head (a rational squashing of z = a1·x1 + a2·x2 + b, built
from the expression language) so the geometry is checked apart from any one model; the real
classifiers' boundary tabs are tested at the end of this file.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
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


# --- the real classifiers (engine.models' logistic and softmax heads)

import torch  # noqa: E402

import sheetsync  # noqa: E402
from sheetsync.labs import datasets as D  # noqa: E402


def grid_of(t, k=0):
    """(x1 axis, x2 axis, values) of the k-th grid of a boundary tab."""
    g = [tb for tb in t.tables if tb.columns[0].header.startswith("p(")][k]
    x1s = np.array([x.value for x in t.texts if x.row == g.row and x.col >= 1])
    return x1s, np.array(g.columns[0].values, dtype=float), np.array([c.values for c in g.columns[1:]]).T


def test_logistic_boundary_is_torchs_sigmoid_at_the_final_parameters():
    X, y = D.toy("gauss", 60, 0.3, 0)
    result = sheetsync.train(sheetsync.Experiment("toy", model="logistic", flavour="pytorch", lr=0.1, epochs=3),
                             X, y.astype(float))
    t = B.render_classifier_boundary(result, X, y)
    assert t.name == "toy boundary" and [s.name for s in t.charts[0].series] == ["0", "1"]
    x1s, x2s, values = grid_of(t)
    a1, a2, b = (torch.tensor(result.params[p], dtype=torch.float64) for p in ("a1", "a2", "b"))
    g1, g2 = torch.meshgrid(torch.tensor(x2s), torch.tensor(x1s), indexing="ij")
    expected = torch.sigmoid(a1 * g2 + a2 * g1 + b).numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=0)
    assert values.min() < 0.05 and values.max() > 0.95  # the boundary crosses the data's span
    params = {x.col: x.value for x in t.texts if x.row == B.PARAM_ROW + 1 and x.col >= 1}
    assert list(params.values()) == [result.params[p] for p in ("a1", "a2", "b")]


def test_softmax_boundary_has_one_grid_per_species_and_they_sum_to_one():
    P, species = D.penguins()
    names = list(dict.fromkeys(species))
    y = np.array([names.index(s) for s in species], dtype=float)
    result = sheetsync.train(sheetsync.Experiment("penguins", model="softmax", flavour="pytorch", optimizer="adam",
                                                  lr=0.01, epochs=1), P, y)
    result.classes = names  # what the runner sets from the sheet's text labels
    t = B.render_classifier_boundary(result, P, y)
    grids = [grid_of(t, k) for k in range(3)]
    assert [tb.columns[0].header.split(":")[0] for tb in t.tables if tb.columns[0].header.startswith("p(")] == \
        [f"p({n})" for n in names]
    total = sum(g[2] for g in grids)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    x1s, x2s, _ = grids[0]
    z = torch.stack([result.params[f"a{k}_1"] * torch.tensor(x1s)[None, :] +
                     result.params[f"a{k}_2"] * torch.tensor(x2s)[:, None] + result.params[f"b{k}"]
                     for k in (1, 2, 3)])
    expected = torch.softmax(z.to(torch.float64), dim=0).numpy()
    for k in range(3):
        np.testing.assert_allclose(grids[k][2], expected[k], rtol=1e-12, atol=1e-300)
    assert [s.name for s in t.charts[0].series] == names


def test_one_input_logistic_draws_p_against_x():
    x = np.linspace(-3, 3, 25)
    y = (x > 0.5).astype(float)
    result = sheetsync.train(sheetsync.Experiment("one", model="logistic", flavour="pytorch", lr=0.5, epochs=5), x, y)
    t = B.render_classifier_boundary(result, x, y)
    xs, p = (np.asarray(c.values) for c in t.tables[0].columns)
    np.testing.assert_allclose(p, torch.sigmoid(result.params["a"] * torch.tensor(xs) + result.params["b"]).numpy(),
                               rtol=1e-12)


def test_a_regression_has_no_boundary_tab():
    result = sheetsync.train(sheetsync.Experiment("lin", model="linear", epochs=1), [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert B.render_classifier_boundary(result, np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) is None


@pytest.fixture(scope="module")
def formula_book(tmp_path_factory):
    """A toy logistic run in formula mode and the same run in values mode, both through the runner."""
    X, y = D.toy("gauss", 30, 0.3, 1)
    tabs = {"data": D.data_rows(X, y),
            "experiments": [["setting", "toy"], ["model", "logistic"], ["flavour", "pytorch"], ["lr", 0.1],
                            ["epochs", 2]]}
    out = {}
    for mode in ("values", "formulas"):
        path = tmp_path_factory.mktemp(mode) / "toy.xlsx"
        XlsxBackend.create(str(path), tabs)
        report = sheetsync.run(str(path), mode=mode)
        assert "toy boundary" in report.tabs_written
        out[mode] = path
    return out


def test_the_runner_writes_the_boundary_tab_after_the_experiments_other_tabs(formula_book):
    import openpyxl

    names = openpyxl.load_workbook(formula_book["values"], read_only=True).sheetnames
    assert names.index("toy boundary") == names.index("toy landscape") + 1


def test_formula_mode_boundary_follows_the_steps_tab_in_libreoffice(formula_book):
    import openpyxl

    values = openpyxl.load_workbook(formula_book["values"], data_only=True)["toy boundary"]
    formulas = openpyxl.load_workbook(formula_book["formulas"])["toy boundary"]
    assert formulas["B3"].value == "='toy steps'!$R$63"  # new a1 of the last of 60 steps (rows 4-63)
    assert formulas["B6"].value.startswith("=IF(") and "$B$3" in formulas["B6"].value
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(formula_book["formulas"]),
                          "toy boundary"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sheet = json.loads(proc.stdout)["toy boundary"]
    assert sheet["errors"] == {}
    checked = 0
    for r in range(B.GRID_TOP + 1, B.GRID_TOP + 1 + B.GRID):
        for c in range(1, 1 + B.GRID):
            want = values.cell(r + 1, c + 1).value
            assert float(sheet["values"][r][c]) == pytest.approx(want, rel=1e-12, abs=1e-300), (r, c)
            checked += 1
    for c in range(1, 4):  # the parameters read from the steps tab
        assert float(sheet["values"][B.PARAM_ROW + 1][c]) == pytest.approx(values.cell(3, c + 1).value, rel=1e-12)
    assert checked == B.GRID * B.GRID


def test_the_colour_scale_sits_on_fixed_probabilities(tmp_path):
    """White at p = 0.5 and full colour at 0 and 1 whatever range the grid covers (a model
    unsure everywhere stays pale), written as fixed points into the .xlsx."""
    t = tab()
    (cs,) = t.color_scales
    assert (cs.low_value, cs.mid_value, cs.high_value, cs.mid) == (0.0, 0.5, 1.0, "FFFFFF")
    path = tmp_path / "b.xlsx"
    XlsxBackend.create(str(path), {"data": [[1.0]]})
    XlsxBackend(str(path)).apply(Plan([t]))
    with zipfile.ZipFile(path) as z:
        sheet = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet"))
    assert '<cfvo type="num" val="0.0"/><cfvo type="num" val="0.5"/><cfvo type="num" val="1.0"/>' in sheet
    several = tab(outputs=[("p(neg)", 1.0 - SQUASH), ("p(pos)", SQUASH)])
    assert all((c.low, c.low_value, c.high_value) == ("FFFFFF", 0.0, 1.0) for c in several.color_scales)
