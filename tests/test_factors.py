"""`NAME factors` (issue 15): Jeremy's picture of a dot_product model, cell by cell.

A hand-made model of 3 users × 2 items and 2 factors, whose every prediction is worked out here
by hand; the cap on large tables; formula mode's formulas and the map's rows. LibreOffice's
recalculation of formula mode is in test_factors_recalc.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from sheetsync.a1 import experiment_tabs, factors_tab_name, similar_tab_name
from sheetsync.engine.embeddings import Ids, Tables
from sheetsync.layout import factors as Fa
from sheetsync.layout.factors import EmbeddingView, Geometry, render_factors
from workbooks import formula_cells

IDS = Ids(("u1", "7", "Bob's"), ("27", "Star Wars (1977)"))
UF = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])  # users × factors
MF = np.array([[2.0, 1.0], [-1.0, 0.25]])  # items × factors
UB, MB = np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0])
# ratings: (user, item, rating, data cell); user 7 did not rate item 27, Bob's not Star Wars
RATINGS = [(0, 0, 4.0, "data!B2"), (0, 1, 2.5, "data!C2"), (1, 1, 3.0, "data!C3"), (2, 0, 5.0, "data!B4")]


def view(cells=True) -> EmbeddingView:
    u, m, r, c = zip(*RATINGS)
    return EmbeddingView(IDS, np.array(u), np.array(m), np.array(r), c if cells else None)


def tables(bias=True, y_range=None) -> Tables:
    return Tables(IDS, UF, MF, UB if bias else None, MB if bias else None, y_range)


def cell_values(tab) -> dict[tuple[int, int], object]:
    """(row, col) -> value of every cell the plan writes (tables' headers and values, texts)."""
    out = {}
    for t in tab.tables:
        for j, c in enumerate(t.columns):
            out[(t.row, t.col + j)] = c.header
            for i, v in enumerate(c.values):
                out[(t.row + 1 + i, t.col + j)] = v
    for x in tab.texts:
        out[(x.row, x.col)] = x.value
    return out


def test_tab_names_are_the_experiments_and_shortened_like_the_landscape():
    assert factors_tab_name("dotprod") == "dotprod factors" and similar_tab_name("dotprod") == "dotprod similar"
    assert {"dotprod factors", "dotprod similar"} <= set(experiment_tabs("dotprod"))
    long = "n" * 24  # the longest name an experiment may have
    assert factors_tab_name(long) == "n" * 22 + "~ factors" and len(factors_tab_name(long)) == 31


def test_jeremys_picture_by_hand():
    tab = render_factors("cf", tables(), view(), start_rmse=2.0)
    g = Geometry(2, True, 3, 2)
    v = cell_values(tab)
    # items across the top: parameter names, biases, then factors (one row per factor), ids under them
    assert [v[(4, g.c_i0 + j)] for j in range(2)] == ["m27", "mStar_Wars_1977"]
    assert [v[(g.r_bias, g.c_i0 + j)] for j in range(2)] == [1.0, -1.0]
    assert [[v[(g.r_f0 + f, g.c_i0 + j)] for j in range(2)] for f in range(2)] == [[2.0, -1.0], [1.0, 0.25]]
    assert [v[(g.r_id, g.c_i0 + j)] for j in range(2)] == ["27", "Star Wars (1977)"]
    # users down the side: parameter prefix, bias, factors, id
    assert [v[(g.r_u0 + i, 0)] for i in range(3)] == ["uu1", "u7", "uBob_s"]
    assert [v[(g.r_u0 + i, g.c_bias)] for i in range(3)] == [0.1, 0.2, 0.3]
    assert [[v[(g.r_u0 + i, g.c_f0 + f)] for f in range(2)] for i in range(3)] == UF.tolist()
    assert [v[(g.r_u0 + i, g.c_id)] for i in range(3)] == ["u1", 7, "Bob's"]
    # the middle: user · item + user bias + item bias, worked out by hand
    by_hand = [[1 * 2 + 2 * 1 + 0.1 + 1.0, 1 * -1 + 2 * 0.25 + 0.1 - 1.0],
               [0.5 * 2 - 1 * 1 + 0.2 + 1.0, 0.5 * -1 - 1 * 0.25 + 0.2 - 1.0],
               [0 * 2 + 3 * 1 + 0.3 + 1.0, 0 * -1 + 3 * 0.25 + 0.3 - 1.0]]
    predicted = [[v[(g.r_u0 + i, g.c_i0 + j)] for j in range(2)] for i in range(3)]
    np.testing.assert_allclose(predicted, by_hand, rtol=0, atol=1e-15)
    # below, same columns: the actual ratings, blank where not rated
    assert [[v[(g.r_a0 + i, g.c_i0 + j)] for j in range(2)] for i in range(3)] == [[4.0, 2.5], [None, 3.0], [5.0, None]]
    assert [v[(g.r_a0 + i, g.c_id)] for i in range(3)] == ["u1", 7, "Bob's"]
    # RMSE at the start and now, labelled, near the top
    r, c = Geometry.RMSE_NOW
    errors = [4.0 - by_hand[0][0], 2.5 - by_hand[0][1], 3.0 - by_hand[1][1], 5.0 - by_hand[2][0]]
    assert v[(1, 0)] == "RMSE at the start" and v[Geometry.RMSE_START] == 2.0
    assert v[(r, 0)].startswith("RMSE now")
    assert v[(r, c)] == pytest.approx(np.sqrt(np.mean(np.square(errors))), rel=1e-15)
    assert "each predicted rating in the middle is the user's row of factors times the item's column" in v[(0, 0)]
    assert not formula_cells(tab)  # values mode: numbers only


def test_no_bias_no_bias_cells_and_y_range_through_the_sigmoid():
    tab = render_factors("cf", tables(bias=False, y_range=(0.0, 5.5)), view())
    g = Geometry(2, False, 3, 2)
    v = cell_values(tab)
    assert g.c_f0 == 1 and v[(g.r_id, 1)] == "f1" and "bias" not in [v.get((g.r_id, c)) for c in range(g.c_i0)]
    assert v[(g.r_f0, g.c_id)] == "factor 1"  # no bias row above the factors
    dot = 1 * 2 + 2 * 1
    assert v[(g.r_u0, g.c_i0)] == pytest.approx(1 / (1 + np.exp(-dot)) * 5.5, rel=1e-15)
    assert "sigmoid_range(0, 5.5)" in v[(0, 0)]


def test_colour_scales_factors_signed_around_zero_ratings_on_one_fixed_scale():
    tab = render_factors("cf", tables(), view())
    g = Geometry(2, True, 3, 2)
    scales = {(s.row, s.col, s.n_rows, s.n_cols): s for s in tab.color_scales}
    users, items = scales[(g.r_u0, g.c_f0, 3, 2)], scales[(g.r_f0, g.c_i0, 2, 2)]
    for s in (users, items):  # both factor blocks: white at 0, ends at ± the largest |factor|
        assert (s.low_value, s.mid_value, s.high_value) == (-3.0, 0.0, 3.0) and s.mid == Fa.ZERO
    assert (scales[(g.r_u0, g.c_bias, 3, 1)].low_value, scales[(g.r_bias, g.c_i0, 1, 2)].high_value) == (-1.0, 1.0)
    predicted, actual = scales[(g.r_u0, g.c_i0, 3, 2)], scales[(g.r_a0, g.c_i0, 3, 2)]
    for s in (predicted, actual):  # the ratings' range, the same on both: colours compare
        assert (s.low_value, s.mid_value, s.high_value) == (2.5, 3.75, 5.0)
    assert (predicted.low, predicted.high) == (actual.low, actual.high) != (users.low, users.high)


def test_formula_mode_writes_jeremys_formulas():
    tab = render_factors("cf", tables(y_range=(0.5, 5.5)), view(), formulas=True)
    g = Geometry(2, True, 3, 2)
    f = formula_cells(tab)
    # the first user (row 10: bias B10, factors C10:D10) and the second item (column G: bias G6,
    # factors G7:G8), through the sigmoid
    assert (g.r_u0, g.c_i0 + 1) == (9, 6) and (g.r_bias, g.r_f0) == (5, 6)
    assert f[(9, 6)] == "=1/(1+EXP(-(MMULT($C10:$D10,G$7:G$8)+$B10+G$6)))*(5.5-0.5)+0.5"
    assert f[(g.r_a0, g.c_i0)] == "=data!B2"
    assert f[(g.r_a0 + 2, g.c_i0)] == "=data!B4" and (g.r_a0 + 1, g.c_i0) not in f  # not rated: blank
    a, p = g.actual, g.predictions
    assert (a, p) == ("F16:G18", "F10:G12")
    assert f[Geometry.RMSE_NOW] == f"=SQRT(SUMPRODUCT(ISNUMBER({a})*({a}-{p})^2)/COUNT({a}))"
    assert Fa.prediction_formula(Geometry(2, False, 3, 2), 0, 0, None) == "=MMULT($B9:$C9,E$6:E$7)"


def test_formula_mode_without_data_cells_writes_the_ratings_as_numbers():
    tab = render_factors("cf", tables(), view(cells=False), formulas=True)
    g = Geometry(2, True, 3, 2)
    assert not any(r == g.r_a0 for r, _ in formula_cells(tab))
    assert cell_values(tab)[(g.r_a0, g.c_i0)] == 4.0


def test_a_quoted_data_tab_is_quoted_in_the_formula():
    u, m, r, _ = zip(*RATINGS)
    cells = tuple(f"my ratings!B{k + 2}" for k in range(len(RATINGS)))
    tab = render_factors("cf", tables(), EmbeddingView(IDS, np.array(u), np.array(m), np.array(r), cells),
                         formulas=True)
    g = Geometry(2, True, 3, 2)
    assert formula_cells(tab)[(g.r_a0, g.c_i0)] == "='my ratings'!B2"


def test_large_tables_are_capped_to_the_most_rated_and_the_tab_says_so():
    rng = np.random.default_rng(3)
    n_users, n_items = 45, 40
    ids = Ids(tuple(str(u) for u in range(n_users)), tuple(str(i) for i in range(n_items)))
    # user u rates items 0..(u % 40): the last users rate most; item i is rated by every user rating past it
    pairs = [(u, i) for u in range(n_users) for i in range(u % n_items + 1)]
    u, m = (np.array(x) for x in zip(*pairs))
    v = EmbeddingView(ids, u, m, rng.integers(1, 6, len(u)).astype(float))
    t = Tables(ids, rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3)), None, None)
    tab = render_factors("big", t, v, cap=30)
    g = Geometry(3, False, 30, 30)
    cells = cell_values(tab)
    shown_users = [cells[(g.r_u0 + i, g.c_id)] for i in range(30)]
    counts = np.bincount(u, minlength=n_users)
    assert sorted(shown_users) == shown_users  # table order
    assert min(counts[shown_users]) >= max(np.delete(counts, shown_users))  # the most rated
    assert [cells[(g.r_id, g.c_i0 + j)] for j in range(30)] == [str(i) for i in range(30)]
    assert "the 30 users and 30 items with the most ratings, of 45 users and 40 items" in cells[(0, 0)]
    assert tab.extent()[1] <= g.c_i0 + 30 and tab.extent()[0] <= g.r_a0 + 30
    r, c = Geometry.RMSE_NOW
    assert cells[(r, c)] == pytest.approx(Fa.rmse(t, v), rel=1e-14)  # every rating, not only those shown
    assert cells[(r, c + 2)] == "of the ratings shown"


def test_map_rows_trace_predictions_to_factors_and_ratings():
    rows = {r["column"]: r for r in Fa.factors_map_rows("cf", tables(), view(), True, "data")}
    pred = rows["prediction"]
    assert pred["tab"] == "cf factors" and pred["cells"] == "F10:G12"
    assert pred["formula (A1)"] == "=MMULT($C10:$D10,F$7:F$8)+$B10+F$6"
    assert pred["formula (R1C1)"] == "=MMULT(RC3:RC4,R7C:R8C)+RC2+R6C"
    assert "user's factors" in pred["precedents"] and "item's bias (row 6)" in pred["precedents"]
    assert rows["actual rating"]["formula (A1)"] == "=data!B2" and "data" in rows["actual rating"]["precedents"]
    assert rows["RMSE"]["cells"] == "E3"
    values = {r["column"]: r for r in Fa.factors_map_rows("cf", tables(), view(), False)}
    assert values["prediction"]["formula (A1)"] == "(a number)"


def test_predictions_are_the_engines_model():
    t = tables(y_range=(1.0, 5.0))
    x = np.array([[0, 0], [2, 1]])
    dot = np.array([1 * 2 + 2 * 1 + 0.1 + 1.0, 3 * 0.25 + 0.3 - 1.0])
    np.testing.assert_allclose(Fa.predict(t, x), 1 / (1 + np.exp(-dot)) * 4.0 + 1.0, rtol=1e-15)


def test_a_prediction_traces_to_its_factor_cells_and_its_ratings_data_cell(tmp_path):
    from sheetsync.backends.base import Plan
    from sheetsync.backends.xlsx import XlsxBackend

    tab = render_factors("cf", tables(), view(), formulas=True)
    path = tmp_path / "cf.xlsx"
    XlsxBackend.create(str(path), {"data": [["user", "27", "Star Wars (1977)"], ["u1", 4, 2.5], ["7", None, 3],
                                            ["Bob's", 5, None]]})
    XlsxBackend(str(path)).apply(Plan([tab]))
    rows = XlsxBackend(str(path)).read([tab.name]).values[tab.name]
    g = Fa.read_geometry(rows)
    assert g == Geometry(2, True, 3, 2)
    sources = {(u, m): c for u, m, _, c in [(IDS.users[a], IDS.items[b], r, c) for a, b, r, c in RATINGS]}
    tree = Fa.trace_cell(tab.name, rows, g.r_u0, g.c_i0, lambda u, m: sources.get((str(u), str(m))))
    assert tree["cell"] == "'cf factors'!F10" and tree["label"] == "prediction of user u1 for item 27"
    kids = {k["label"]: k for k in tree["children"]}
    assert [kids[f"uu1_{f}"]["cell"] for f in (1, 2)] == ["'cf factors'!C10", "'cf factors'!D10"]
    assert [kids[f"m27_{f}"]["cell"] for f in (1, 2)] == ["'cf factors'!F7", "'cf factors'!F8"]
    assert (kids["buu1"]["cell"], kids["bm27"]["cell"]) == ("'cf factors'!B10", "'cf factors'!F6")
    assert kids["uu1_2"]["value"] == 2.0 and kids["m27_1"]["value"] == 2.0
    actual = kids["actual rating of user u1 for item 27"]
    assert actual["cell"] == "'cf factors'!F16" and actual["value"] == 4
    assert actual["children"] == [{"cell": "data!B2", "label": "rating", "value": 4, "kind": "data"}]
    # user 7 did not rate item 27: its prediction has no actual rating beside it
    unrated = Fa.trace_cell(tab.name, rows, g.r_u0 + 1, g.c_i0)
    assert not any(k["label"].startswith("actual") for k in unrated["children"])
    with pytest.raises(ValueError, match="starts from a predicted rating"):
        Fa.trace_cell(tab.name, rows, 0, 0)


def test_titles_wrap_in_rows_with_their_height_in_the_workbook(tmp_path):
    """Film titles as item ids: the id rows are tall and wrap; the .xlsx keeps those heights even
    though the table is alone in its rows (it used to write such rows whole, without a height)."""
    import openpyxl

    from sheetsync.backends.base import Plan
    from sheetsync.backends.xlsx import XlsxBackend

    ids = Ids(("1", "2"), ("Die Hard (1988)", "When Harry Met Sally (1989)"))
    v = EmbeddingView(ids, np.array([0, 1]), np.array([0, 1]), np.array([4.0, 2.0]))
    tab = render_factors("films", Tables(ids, np.ones((2, 2)), np.ones((2, 2)), None, None), v)
    g = Geometry(2, False, 2, 2)
    assert tab.row_heights[g.r_id] == tab.row_heights[g.r_actual_id] == 45.0
    wrapped = {(t.row, t.col) for t in tab.texts if t.wrap}
    assert {(g.r_id, g.c_i0), (g.r_id, g.c_i0 + 1), (g.r_actual_id, g.c_i0)} <= wrapped
    assert tab.tables[0].columns[g.c_i0].width == len("(1988)") + 1.5  # the longest word, and a margin
    path = tmp_path / "films.xlsx"
    XlsxBackend.create(str(path), {"data": [["user", "x"], [1, 2]]})
    XlsxBackend(str(path)).apply(Plan([tab]))
    sheet = openpyxl.load_workbook(path)[tab.name]
    assert sheet.row_dimensions[g.r_id + 1].height == 45.0
    assert sheet.cell(g.r_id + 1, g.c_i0 + 1).alignment.wrap_text
