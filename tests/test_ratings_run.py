"""A ratings workbook (.xlsx) trained through `sheetsync.run`: both layouts, Run twice continues
from the saved state, starting factors from a range, the steps and epochs tabs of dot_product."""

import numpy as np
import pytest

from sheetsync import Experiment, train
from sheetsync.engine.embeddings import Ids, start_rmse
from sheetsync.errors import InputError
from sheetsync.runner import run
from workbooks import rows_of, write_book

USERS = [14, 29, 72, 211]
ITEMS = [27, 49, 57, 72, 79]
RNG = np.random.default_rng(5)
GRID = RNG.integers(1, 11, size=(len(USERS), len(ITEMS))) / 2.0
GRID[0, 1] = GRID[2, 3] = GRID[3, 0] = np.nan  # unrated


def crosstab_rows():
    rows = [["userId"] + ITEMS]
    for u, row in zip(USERS, GRID):
        rows.append([u] + [None if np.isnan(v) else float(v) for v in row])
    return rows


def long_rows():
    rows = [["userId", "movieId", "rating"]]
    for u, row in zip(USERS, GRID):
        rows += [[u, i, float(v)] for i, v in zip(ITEMS, row) if not np.isnan(v)]
    return rows


def experiments(**extra):
    settings = {"model": "dot_product", "flavour": "pytorch", "factors": 2, "optimizer": "sgd", "lr": 0.05, "epochs": 3, "seed": 1,
                "embedding_init": "uniform", **extra}
    return [["setting", "cf"]] + [[k, v] for k, v in settings.items()]


def ratings_xy(layout):
    """x, y and Ids as the sheet's layout orders them: the crosstab's users and items, or their
    first appearance in the long table (item 49 first appears in user 29's row there)."""
    pairs = [(u, i, v) for u, row in zip(USERS, GRID) for i, v in zip(ITEMS, row) if not np.isnan(v)]
    users = USERS if layout == "crosstab" else list(dict.fromkeys(u for u, _, _ in pairs))
    items = ITEMS if layout == "crosstab" else list(dict.fromkeys(i for _, i, _ in pairs))
    x = np.array([(users.index(u), items.index(i)) for u, i, _ in pairs], float)
    return x, np.array([v for _, _, v in pairs]), Ids(tuple(map(str, users)), tuple(map(str, items)))


def header_and_rows(path, tab, header_row):
    rows = rows_of(path, tab)
    header = [h for h in rows[header_row - 1] if h is not None]
    body = [r[:len(header)] for r in rows[header_row:] if r and r[0] is not None]
    return header, body


@pytest.mark.parametrize("layout", ["crosstab", "long"])
def test_run_twice_continues_and_equals_one_long_training(tmp_path, layout):
    data = crosstab_rows() if layout == "crosstab" else long_rows()
    path = write_book(tmp_path / "cf.xlsx", {"data": data, "experiments": experiments()})
    first = run(str(path))
    assert first.experiments[0].start == "first run"
    second = run(str(path))
    assert second.experiments[0].start == "continued"
    x, y, ids = ratings_xy(layout)
    assert ids.items[-1] == ("49" if layout == "long" else "79")
    long = train(Experiment("cf", model="dot_product", flavour="pytorch", factors=2, optimizer="sgd", lr=0.05, epochs=6, seed=1,
                            embedding_init="uniform"), x, y, ids=ids)
    assert second.experiments[0].params == {k: float(v) for k, v in long.params.items()}
    assert second.experiments[0].rmse == pytest.approx(float(long.epochs["rmse"].iloc[-1]), rel=1e-15)
    assert second.to_dict()["experiments"][0]["rmse"] == second.experiments[0].rmse  # --json, the HTTP summary
    header, body = header_and_rows(path, "cf epochs", 2)
    assert [r[0] for r in body] == [0, 1, 2, 3, 4, 5, 6]  # epoch 0: the starting tables' RMSE, no loss
    assert [r[header.index("rmse")] for r in body] == [start_rmse(long)] + list(long.epochs["rmse"])
    assert body[0][header.index("loss")] is None
    assert second.experiments[0].total_epochs == 6
    factors = rows_of(path, "cf factors")  # the factors tab counts epochs as the epochs tab does
    assert any(r and r[0] == "RMSE now (after epoch 6)" for r in factors)
    # the steps tab shows users and items by their ids, ratings in the sheet's reading order
    header, body = header_and_rows(path, "cf steps", 3)
    assert [r[header.index("user")] for r in body[:3]] == [14, 14, 14]
    assert [r[header.index("item")] for r in body[:3]] == [27, 57, 72]
    assert [r[header.index("y")] for r in body[:len(y)]] == list(y)


def test_factor_ranges_start_the_tables(tmp_path):
    users = [[0.1 * (r + 1), 0.2] for r in range(len(USERS))]
    items = [[0.3] * len(ITEMS), [0.01 * (c + 1) for c in range(len(ITEMS))]]
    sheet = [[None] * 12 for _ in range(10)]
    for r, row in enumerate(users):
        sheet[4 + r][1:3] = row  # B5:C8
    for r, row in enumerate(items):
        sheet[1 + r][4:4 + len(row)] = row  # E2:I3
    exps = experiments(user_factors_from="dotprod!B5:C8", item_factors_from="dotprod!E2:I3", epochs=1)
    path = write_book(tmp_path / "cf.xlsx", {"data": crosstab_rows(), "experiments": exps, "dotprod": sheet})
    run(str(path))
    header, body = header_and_rows(path, "cf steps", 3)
    first = dict(zip(header, body[0]))  # user 14, item 27: the ranges' first row and column
    assert (first["u1"], first["u2"], first["m1"], first["m2"]) == (0.1, 0.2, 0.3, 0.01)


def test_a_bad_factor_range_writes_only_the_run_log(tmp_path):
    exps = experiments(user_factors_from="dotprod!B5:C7")
    path = write_book(tmp_path / "cf.xlsx", {"data": crosstab_rows(), "experiments": exps, "dotprod": [[1]]})
    with pytest.raises(InputError) as info:
        run(str(path))
    assert "expected 4 × 2: 4 users (one per row) × 2 factors" in str(info.value)


@pytest.mark.parametrize("mode", ["values", "formulas"])
def test_trace_of_a_pred_cell_names_its_factor_cells_and_the_rating(tmp_path, mode):
    from sheetsync.trace import trace

    path = write_book(tmp_path / "cf.xlsx", {"data": crosstab_rows(), "experiments": experiments(mode=mode)})
    run(str(path))
    header, body = header_and_rows(path, "cf steps", 3)
    col = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[header.index("pred")]
    line = 4  # the fifth rating: user 29's first (GRID[1, 0]), sheet row 8
    tree = trace(str(path), f"cf steps!{col}{4 + line}")["tree"]
    children = tree["children"]
    slots = ["u1", "u2", "m1", "m2", "bu", "bm"]
    assert [c["label"] for c in children] == slots
    assert [c["cell"] for c in children] == [f"'cf steps'!{'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[header.index(q)]}8"
                                             for q in slots]
    table = children[0]["children"][0]
    assert table["kind"] == "value" and "the user's table row before this step" in table["label"]
    y_col = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[header.index("y")]
    err = trace(str(path), f"cf steps!{'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[header.index('err')]}8", depth=2)["tree"]
    y_node = next(c for c in err["children"] if c["label"] == "y")
    assert y_node["cell"] == f"'cf steps'!{y_col}8"
    assert y_node["children"][0]["cell"] == "data!B3" and y_node["children"][0]["kind"] == "data"
    if mode == "formulas":
        wb_header, first = header_and_rows(path, "cf steps", 3)
        import openpyxl

        ws = openpyxl.load_workbook(path)["cf steps"]
        assert ws[f"{col}8"].value.startswith("=((SUMPRODUCT(")


def test_formula_mode_with_adam_writes_values_and_says_why(tmp_path):
    exps = experiments(mode="formulas", optimizer="adam", epochs=1)
    path = write_book(tmp_path / "cf.xlsx", {"data": crosstab_rows(), "experiments": exps})
    report = run(str(path))
    assert any(n.startswith("Formula mode: adam keeps state for every table row") and n.endswith("values were written.")
               for n in report.experiments[0].notes)
    import openpyxl

    ws = openpyxl.load_workbook(path)["cf steps"]
    assert all(not isinstance(c.value, str) or not c.value.startswith("=") for row in ws.iter_rows(min_row=4)
               for c in row)


def test_trace_of_a_factors_prediction_reaches_the_rating_s_data_cell(tmp_path):
    from sheetsync.errors import SheetsyncError
    from sheetsync.layout.factors import read_geometry
    from sheetsync.trace import trace

    path = write_book(tmp_path / "cf.xlsx", {"data": crosstab_rows(), "experiments": experiments(epochs=1)})
    run(str(path))
    g = read_geometry(rows_of(path, "cf factors"))
    col = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[g.c_i0 + 1]  # user 29's prediction for item 49 (rated: data!C3)
    tree = trace(str(path), f"cf factors!{col}{g.r_u0 + 2}")["tree"]
    labels = [c["label"] for c in tree["children"]]
    assert labels[:4] == ["u29_1", "u29_2", "m49_1", "m49_2"]
    found = []

    def walk(node):
        found.append(node["cell"])
        for child in node.get("children", []):
            walk(child)

    walk(tree)
    assert "data!C3" in found
    with pytest.raises(SheetsyncError):
        trace(str(path), "cf factors!A1")
