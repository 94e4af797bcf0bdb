"""Formula mode of `NAME factors`: LibreOffice recalculates every formula (MMULT predictions over
the factor cells, the sigmoid range, the actual ratings read from the data tab, the RMSE cell) to
the number values mode writes, within 1e-12 relative; and the same Plan lands in a Google sheet
(tests/google/test_factors_google.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sheetsync.backends.base import Plan
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.engine.embeddings import Ids, Tables
from sheetsync.layout.factors import EmbeddingView, Geometry, render_factors
from workbooks import formula_cells

ROOT = Path(__file__).resolve().parents[1]
USERS = [14, 29, 72, 211, 212, 293, 310, 379, 451, 467, 508, 546, 563, 579, 623]
ITEMS = [27, 49, 57, 72, 79, 89, 92, 99, 143, 179, 180, 197, 402, 417, 505]


def case(bias: bool, y_range, cap: int | None = None):
    """15 × 15 ratings in Jeremy's crosstab on the data tab (about a fifth unrated), random
    factors: the tab of an experiment named after the case."""
    rng = np.random.default_rng(11)
    ids = Ids(tuple(map(str, USERS)), tuple(map(str, ITEMS)))
    rated = rng.random((15, 15)) > 0.2
    u, m = np.nonzero(rated)
    r = rng.integers(1, 11, len(u)) / 2.0
    cells = tuple(f"data!{chr(66 + j)}{i + 2}" for i, j in zip(u, m))
    view = EmbeddingView(ids, u, m, r, cells)
    tables = Tables(ids, rng.normal(0, 0.7, (15, 5)), rng.normal(0, 0.7, (15, 5)),
                    rng.normal(0, 0.3, 15) if bias else None, rng.normal(0, 0.3, 15) if bias else None, y_range)
    name = f"b{int(bias)}y{int(y_range is not None)}c{cap or 0}"
    data = [["userId"] + ITEMS] + [[user] + [None] * 15 for user in USERS]
    for i, j, v in zip(u, m, r):
        data[i + 1][j + 1] = float(v)
    kwargs = {"cap": cap} if cap else {}
    return (render_factors(name, tables, view, formulas=True, start_rmse=1.0, **kwargs),
            render_factors(name, tables, view, formulas=False, start_rmse=1.0, **kwargs), data)


CASES = [(True, (0.0, 5.5), None), (False, None, None), (True, None, 10)]


def values(tab) -> dict[tuple[int, int], object]:
    out = {}
    for t in tab.tables:
        for j, c in enumerate(t.columns):
            for i, v in enumerate(c.values):
                out[(t.row + 1 + i, t.col + j)] = v
    out.update({(x.row, x.col): x.value for x in tab.texts})
    return out


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    tabs = [case(*c) for c in CASES]
    path = tmp_path_factory.mktemp("factors") / "factors.xlsx"
    XlsxBackend.create(str(path), {"data": tabs[0][2]})
    XlsxBackend(str(path)).apply(Plan([formulas for formulas, _, _ in tabs]))
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path),
                           *[f.name for f, _, _ in tabs]], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tabs, json.loads(proc.stdout)


def test_every_formula_recalculates_to_the_values_mode_number(recalculated):
    tabs, lo = recalculated
    for formulas, plain, _ in tabs:
        sheet = lo[formulas.name]
        assert sheet["errors"] == {}, formulas.name
        expected = values(plain)
        cells = formula_cells(formulas)
        assert len(cells) > 100, formulas.name  # predictions, ratings and the RMSE cell
        for (r, c), f in cells.items():
            theirs, ours = float(sheet["values"][r][c]), expected[(r, c)]
            assert abs(theirs - ours) <= 1e-12 * max(abs(ours), 1e-300), (formulas.name, r, c, f, theirs, ours)


def test_the_rmse_cell_is_recalculated_from_the_blocks(recalculated):
    tabs, lo = recalculated
    for formulas, plain, _ in tabs:
        capped = formulas.name.startswith("b1y0c10")
        r, c = Geometry.RMSE_NOW
        where = (r, c + 5) if capped else (r, c)  # capped: the shown ratings' RMSE beside the whole one
        assert "SUMPRODUCT(ISNUMBER(" in formula_cells(formulas)[where]
        assert float(lo[formulas.name]["values"][where[0]][where[1]]) == pytest.approx(values(plain)[where],
                                                                                        rel=1e-12)
