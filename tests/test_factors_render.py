"""The factors and similar tabs from a real dot_product training, through `layout.render`: where
they sit in the workbook's order, that their numbers are the run's, and that the map gains the
factors tab's rows."""

from __future__ import annotations

import numpy as np
import pytest

from sheetsync import Experiment, train
from sheetsync.backends.base import Column, Table, TabPlan
from sheetsync.engine import embeddings
from sheetsync.engine.embeddings import Ids
from sheetsync.layout import ExperimentOutput, RunEntry, render
from sheetsync.layout.factors import EmbeddingView, Geometry

USERS, ITEMS = [14, 29, 72, 211, 212], [27, 49, 57, 72]
RNG = np.random.default_rng(7)
GRID = RNG.integers(1, 11, size=(5, 4)) / 2.0
GRID[0, 1] = GRID[3, 3] = np.nan
IDS = Ids(tuple(map(str, USERS)), tuple(map(str, ITEMS)))


def ratings():
    u, m = np.nonzero(~np.isnan(GRID))
    cells = tuple(f"data!{chr(66 + j)}{i + 2}" for i, j in zip(u, m))
    return np.stack([u, m], axis=1).astype(float), GRID[u, m], EmbeddingView(IDS, u, m, GRID[u, m], cells)


def trained(**settings):
    x, y, view = ratings()
    exp = Experiment("cf", model="dot_product", flavour="pytorch", optimizer="adam", lr=0.05, epochs=4, factors=3,
                     seed=2, **settings)
    return train(exp, x, y, ids=IDS), x, y, view


def plan_of(result, x, y, view, map_tab=None):
    out = ExperimentOutput(result, result.epochs, embedding=view, map_tab=map_tab)
    return render([out], x=x, y=y, other_histories={}, states={}, entry=RunEntry("run", ["cf"]), previous_runs=None)


@pytest.mark.parametrize("settings", [{}, {"bias": False, "y_range": (0.0, 5.5)}])
def test_factors_and_similar_follow_the_epochs_tab_with_the_runs_numbers(settings):
    result, x, y, view = trained(**settings)
    plan = plan_of(result, x, y, view)
    names = [t.name for t in plan.tabs]
    assert names[:4] == ["cf steps", "cf epochs", "cf factors", "cf similar"]
    assert "cf landscape" not in names  # two of many factors say little; the factors tab shows them all
    factors = plan.tabs[2]
    tables = embeddings.tables_of(result)
    g = Geometry(3, tables.user_bias is not None, len(USERS), len(ITEMS))
    main = factors.tables[0]
    predicted = np.array([main.columns[g.c_i0 + j].values for j in range(len(ITEMS))]).T
    grid_x = np.array([(u, m) for u in range(len(USERS)) for m in range(len(ITEMS))])
    np.testing.assert_array_equal(predicted.ravel(), embeddings.predict(tables, grid_x))  # the engine's, bit for bit
    texts = {(t.row, t.col): t.value for t in factors.texts}
    assert texts[Geometry.RMSE_START] == embeddings.start_rmse(result)
    assert texts[Geometry.RMSE_NOW] == pytest.approx(result.epochs["rmse"].iloc[-1], rel=1e-13)  # the epochs tab's
    assert texts[(Geometry.RMSE_NOW[0], 0)] == "RMSE now (after epoch 4)"


def test_without_an_embedding_view_no_factors_tab():
    result, x, y, _ = trained()
    names = [t.name for t in plan_of(result, x, y, None).tabs]
    assert "cf factors" not in names and "cf similar" not in names


def test_the_map_gains_the_factors_tabs_rows():
    result, x, y, view = trained()
    headers = ["tab", "column", "cells", "formula (A1)", "formula (R1C1)", "precedents", "dependents",
               "boundary rows"]
    steps_map = TabPlan("cf map", tables=[Table([Column(h, ["x"]) for h in headers], row=2)])
    plan_of(result, x, y, view, steps_map)
    columns = {c.header: list(c.values) for c in steps_map.tables[0].columns}
    assert columns["tab"] == ["x", "cf factors", "cf factors", "cf factors", "cf factors"]
    assert columns["column"][1:] == ["prediction", "actual rating", "RMSE", "factors"]
    assert columns["formula (A1)"][1] == "(a number)"  # values mode


def test_in_the_workbook_the_tabs_sit_after_the_epochs_tab(tmp_path):
    import openpyxl

    from sheetsync.backends.xlsx import XlsxBackend

    result, x, y, view = trained()
    path = tmp_path / "cf.xlsx"
    XlsxBackend.create(str(path), {"data": [["user", "27"], [14, 3.0]]})
    XlsxBackend(str(path)).apply(plan_of(result, x, y, view))
    names = openpyxl.load_workbook(path, read_only=True).sheetnames
    assert names[:5] == ["data", "cf steps", "cf epochs", "cf factors", "cf similar"]
