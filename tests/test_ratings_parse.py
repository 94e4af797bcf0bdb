"""Reading a ratings sheet (model: dot_product): both layouts, every problem at its cell, starting
factors from ranges on another tab."""

import numpy as np
import pytest

from sheetsync.backends.base import Snapshot, TabInfo
from sheetsync.engine.embeddings import Ids, param_names
from sheetsync.errors import InputError
from sheetsync.parse.inputs import factor_ranges, parse_inputs


def snapshot(data, experiments, **extra):
    values = {"data": data, "experiments": experiments, **extra}
    return Snapshot("test.xlsx", [TabInfo(t, i, owned=False) for i, t in enumerate(values)], values)


def dot(**settings):
    rows = [["setting", "cf"], ["model", "dot_product"], ["flavour", "pytorch"]]
    rows += [[k.replace("init_", "init ", 1), v] for k, v in settings.items()]
    return rows


def problems_of(snap):
    with pytest.raises(InputError) as info:
        parse_inputs(snap)
    return {p.cell: p.message for p in info.value.problems}


CROSSTAB = [["userId", 27, "Star Wars", 49.0],
            [14, 3, 5, None],
            ["ann", None, 4, 1.5],
            [29.0, 2, None, None]]


def test_crosstab_reads_row_by_row_with_ids_as_the_sheet_shows_them():
    d = parse_inputs(snapshot(CROSSTAB, dot(factors=2))).dataset
    assert d.ids == Ids(("14", "ann", "29"), ("27", "Star Wars", "49"))
    np.testing.assert_array_equal(d.x, [[0, 0], [0, 1], [1, 1], [1, 2], [2, 0]])
    np.testing.assert_array_equal(d.y, [3, 5, 4, 1.5, 2])
    assert d.ratings.layout == "crosstab"
    assert d.ratings.cells == ["data!B2", "data!C2", "data!C3", "data!D3", "data!B4"]
    assert (d.cell(3, "y"), d.cell(3, "user"), d.cell(3, "item")) == ("data!D3", "data!A3", "data!D1")
    assert d.input_names == ["user", "item"]


def test_crosstab_a1_may_be_blank():
    data = [[None] + CROSSTAB[0][1:]] + CROSSTAB[1:]
    assert parse_inputs(snapshot(data, dot())).dataset.ids.users == ("14", "ann", "29")


def test_long_layout_with_movielens_headers_ignores_other_columns():
    data = [["userId", "movieId", "rating", "timestamp"],
            [196, 242, 3, 881250949], ["bob", 302, 4.5, 0], [196, 302, 1, 0], [None, None, None],
            [22, 1, 1, 0]]
    inputs = parse_inputs(snapshot(data, dot()))
    d = inputs.dataset
    assert d.ratings.layout == "long"
    assert d.ids == Ids(("196", "bob"), ("242", "302"))  # first appearance
    np.testing.assert_array_equal(d.x, [[0, 0], [1, 1], [0, 1]])
    np.testing.assert_array_equal(d.y, [3, 4.5, 1])
    assert d.cell(1, "y") == "data!C3" and d.cell(1, "user") == "data!A3" and d.cell(1, "item") == "data!B3"
    assert any("rows from 6 on are ignored" in w for w in inputs.warnings)


@pytest.mark.parametrize("headers", [["User", "Item", "Rating"], ["user_id", "movie", "rating"],
                                     ["rating", "user", "item"]])
def test_long_headers_ignore_case_and_synonyms(headers):
    cols = {h.lower().replace("_", ""): k for k, h in enumerate(headers)}
    rows = [[None] * 3 for _ in range(2)]
    for r, (u, i, v) in enumerate([(1, 10, 3.0), (2, 10, 4.0)]):
        for key, val in (("user", u), ("item", i), ("rating", v)):
            k = next(c for h, c in cols.items() if h.startswith(key) or (key == "item" and h == "movie"))
            rows[r][k] = val
    d = parse_inputs(snapshot([headers] + rows, dot())).dataset
    np.testing.assert_array_equal(d.y, [3, 4])
    assert d.ids == Ids(("1", "2"), ("10",))


def test_long_problems_each_at_its_cell():
    data = [["user", "item", "rating"],
            [1, 2, 3.5],
            [1, 3, "four"],
            [2, 2, "4,5"],
            [1, 2, 2],
            [None, 3, 2],
            [2, True, 1]]
    found = problems_of(snapshot(data, dot()))
    assert found["data!C3"] == "expected a number, found 'four'"
    assert "a number stored as text ('4,5')" in found["data!C4"]
    assert found["data!C5"] == "user 1 rated item 2 twice (also in data!C2); keep one rating per user and item"
    assert found["data!A6"] == "missing user id"
    assert found["data!B7"] == "expected an item id (a number or text), found the logical value TRUE"


def test_long_missing_header_named():
    found = problems_of(snapshot([["user", "item", "score"], [1, 2, 3], [2, 2, 3]], dot()))
    assert "missing header rating" in found["data!D1"]


def test_crosstab_problems_each_at_its_cell():
    data = [[None, 27, 27, None, 49],
            [14, 3, "abc", None, 1],
            [14, 1, None, None, None],
            [None, 2, None, None, None],
            [30, None, None, None, None]]
    found = problems_of(snapshot(data, dot()))
    assert found["data!C1"] == "item id 27 repeated (also in data!B1)"
    assert found["data!D1"].startswith("missing item id")
    assert found["data!C2"] == "expected a number, found 'abc'"
    assert found["data!A3"] == "user id 14 repeated (also in data!A2)"
    assert found["data!A4"].startswith("missing user id")
    assert found["data!A5"] == "user 30 has no ratings; give the row a rating or delete it"


def test_crosstab_item_without_ratings():
    data = [[None, 1, 2, 3], [10, 4, None, 1], [11, 5, None, 2]]
    found = problems_of(snapshot(data, dot()))
    assert found == {"data!C1": "item 2 has no ratings; give the column a rating or delete it"}


def test_no_ratings_at_all():
    found = problems_of(snapshot([[None, 1, 2], [10, None, None]], dot()))
    assert "user 10 has no ratings" in found["data!A2"]
    found = problems_of(snapshot([["user", "item", "rating"]], dot()))
    assert found["data!A2"].startswith("no ratings at all")


def test_mixed_experiments_are_refused_at_the_model_cell():
    exps = [["setting", "cf", "line"], ["model", "dot_product", "linear"]]
    found = problems_of(snapshot(CROSSTAB, exps))
    assert found["experiments!C2"].startswith("line: model linear reads x and y, but the data tab holds ratings")


def test_init_cells_name_parameters_from_the_ids():
    exps = dot(factors=2) + [["init u14_1", 0.5], ["init mStar_Wars_2", 0.25], ["init u99_1", 1]]
    found = problems_of(snapshot(CROSSTAB, exps))
    assert list(found) == ["experiments!B7"]
    assert "no parameter 'u99_1'" in found["experiments!B7"]
    exp = parse_inputs(snapshot(CROSSTAB, exps[:-1])).experiments[0]
    assert exp.init == {"u14_1": 0.5, "mStar_Wars_2": 0.25}  # the parameter's own case


def test_what_the_table_model_cannot_do_is_refused_at_its_cell():
    exps = [["setting", "cf"], ["model", "dot_product"], ["gradient", "numeric"]]
    found = problems_of(snapshot(CROSSTAB, exps))
    assert found == {"experiments!B3": "cf: gradient: dot_product trains with analytic gradients only, not 'numeric'"}


def test_a_regression_sheet_parses_as_before():
    data = [["x", "y"], [1, 2], [2, 4]]
    d = parse_inputs(snapshot(data, [["setting", "a"], ["model", "linear"]])).dataset
    assert d.ratings is None and d.ids is None and d.input_names == ["x"]


# ---------------------------------------------------------------------------------------------
# starting factors from ranges


def factor_sheet(users_block, items_block, **settings):
    tab = [[None] * 12 for _ in range(10)]
    for r, row in enumerate(users_block):  # users at B3: one row per user
        tab[2 + r][1:1 + len(row)] = row
    for r, row in enumerate(items_block):  # items at F2: one column per item
        tab[1 + r][5:5 + len(row)] = row
    exps = dot(factors=2, user_factors_from="dotprod!B3:C5", item_factors_from="'dotprod'!F2:H3", **settings)
    return snapshot(CROSSTAB, exps, dotprod=tab)


def test_factor_ranges_fill_init_by_parameter_name():
    snap = factor_sheet([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[1, 2, 3], [4, 5, 6]])
    inputs = parse_inputs(snap)
    factor_ranges(inputs, snap)
    exp = inputs.experiments[0]
    names = param_names(inputs.dataset.ids, 2, False)
    assert [exp.init[n] for n in names] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1, 4, 2, 5, 3, 6]
    assert names[6:8] == ["m27_1", "m27_2"]


def test_factor_range_problems_name_cells():
    snap = factor_sheet([[0.1, "x"], [0.3, 0.4], [0.5, None]], [[1, 2, 3], [4, 5, 6]])
    inputs = parse_inputs(snap)
    with pytest.raises(InputError) as info:
        factor_ranges(inputs, snap)
    found = {p.cell: p.message for p in info.value.problems}
    assert found == {"dotprod!C3": "cf: user_factors_from: expected a number, found 'x'",
                     "dotprod!C5": "cf: user_factors_from: expected a number, found an empty cell"}


def test_factor_range_shape_and_tab_problems_at_the_setting():
    exps = dot(factors=3, user_factors_from="dotprod!B3:C5", item_factors_from="nowhere!A1:C3")
    snap = snapshot(CROSSTAB, exps, dotprod=[[1]])
    inputs = parse_inputs(snap)
    with pytest.raises(InputError) as info:
        factor_ranges(inputs, snap)
    found = {p.cell: p.message for p in info.value.problems}
    assert found["experiments!B5"] == ("cf: user_factors_from: dotprod!B3:C5 is 3 rows × 2 columns; expected "
                                       "3 × 3: 3 users (one per row) × 3 factors")
    assert found["experiments!B6"].startswith("cf: item_factors_from: no tab 'nowhere' in the workbook")


def test_an_init_cell_wins_over_the_range():
    snap = factor_sheet([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[1, 2, 3], [4, 5, 6]], init_u14_1=9)
    inputs = parse_inputs(snap)
    factor_ranges(inputs, snap)
    assert inputs.experiments[0].init["u14_1"] == 9


def test_budgets_count_a_table_model_s_work_per_row_and_its_dense_updates():
    from sheetsync.parse.inputs import Dataset, budget_problems, memory_problems
    from sheetsync.parse.ratings import Ratings
    from sheetsync.settings import Experiment

    n, users, items = 100_000, 943, 1682  # MovieLens 100k's shape
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, users, n), rng.integers(0, items, n)], axis=1).astype(float)
    ids = Ids(tuple(map(str, range(users))), tuple(map(str, range(items))))
    dataset = Dataset(x, np.ones(n), ["user", "item"], ratings=Ratings(ids, "long", [], [], []))
    sgd = Experiment("sgd", model="dot_product", flavour="pytorch", optimizer="sgd", epochs=5)
    adam = Experiment("adam", model="dot_product", flavour="pytorch", optimizer="adam", epochs=5)
    assert budget_problems([sgd], dataset, {}) == []  # 5 × 100,000 ratings × 12 slots
    refused = budget_problems([adam], dataset, {})  # adam moves all 13,250 entries every step
    assert len(refused) == 1 and "row-steps × parameters, over the budget" in refused[0].message
    assert memory_problems([sgd], dataset, {}) == []
