"""Formula mode of dot_product steps, proved by LibreOffice: a small crosstab of ratings trained in
values mode, written as per-row formulas (the slots the engine's numbers, pred a SUMPRODUCT over
the row's factor cells plus the biases, through the sigmoid range with y_range; err, loss,
gradients and new slots formulas of the same row), recalculated by LibreOffice headless and
compared with the values to 1e-12 of the magnitudes each column is computed from. The map's and
trace's precedents of a pred cell are its factor cells and the rating's cell on the data tab.
"""

import re
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_formula_mode import recalculate  # noqa: E402

from sheetsync import Experiment, train  # noqa: E402
from sheetsync.layout.formulas import FormulaModeError, StepFormulas, step_formulas  # noqa: E402
from sheetsync.layout.map import map_rows  # noqa: E402
from sheetsync.parse.ratings import parse_ratings  # noqa: E402

rng = np.random.default_rng(15)
USERS, ITEMS = [14, 29, 72, 211, 212], [27, 49, 57, 72, 79, 89]
GRID = [[None if rng.random() < 0.25 else float(rng.integers(1, 11)) / 2 for _ in ITEMS] for _ in USERS]
CROSSTAB = [["userId"] + ITEMS] + [[u] + row for u, row in zip(USERS, GRID)]
X, Y, RATINGS = parse_ratings(CROSSTAB, "data", [], [])

CASES = [
    Experiment("plain", model="dot_product", flavour="pytorch", optimizer="sgd", factors=2, bias=False, lr=0.1,
               epochs=2, embedding_init="uniform", seed=3),
    Experiment("biased", model="dot_product", flavour="pytorch", optimizer="sgd", factors=5, lr=0.05, epochs=2,
               weight_decay=0.01, embedding_init="uniform", seed=4),  # F=5: torch's order is not left to right
    Experiment("ranged", model="dot_product", flavour="fastai", optimizer="sgd", factors=3, y_range=(0, 5.5),
               lr=0.1, epochs=2, seed=5),
    Experiment("gd", model="dot_product", optimizer="sgd", gradient="analytic", factors=2, lr=0.05, epochs=2,
               embedding_init="uniform", seed=6),
]
SETTINGS = {"lr": "experiments!B2", "weight_decay": "experiments!B3"}


def data_cell(i, name):
    return {"y": RATINGS.cells, "user": RATINGS.user_cells, "item": RATINGS.item_cells}[name][i]


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    wb = openpyxl.Workbook()
    d = wb.active
    d.title = "data"
    for row in CROSSTAB:
        d.append(row)
    built = {}
    for exp in CASES:
        settings = wb.create_sheet(f"{exp.name} settings")
        settings["A2"], settings["B2"], settings["A3"], settings["B3"] = "lr", exp.lr, "weight decay", exp.weight_decay
        cells = {k: v.replace("experiments", f"{exp.name} settings") for k, v in SETTINGS.items()}
        result = train(exp, X, Y, ids=RATINGS.ids)
        formulas = step_formulas(result, data_cell, cells, 2)
        ws = wb.create_sheet(exp.name)
        ws.append(list(result.steps.columns))
        for i in range(len(result.steps)):
            ws.append([formulas[c][i] if formulas[c][i] is not None else float(result.steps[c].iat[i])
                       for c in result.steps.columns])
        built[exp.name] = (result, formulas)
    path = tmp_path_factory.mktemp("embedding_formulas") / "cf.xlsx"
    wb.save(path)
    return built, recalculate(path, list(built))


@pytest.mark.parametrize("name", [e.name for e in CASES])
def test_libreoffice_recalculates_every_cell_to_the_same_numbers(recalculated, name):
    built, sheets = recalculated
    result, formulas = built[name]
    sheet = sheets[name]
    assert sheet["errors"] == {}
    values = sheet["values"]
    columns = list(result.steps.columns)
    checked = 0
    for j, c in enumerate(columns):
        if all(f is None for f in formulas[c]):
            continue
        for i in range(len(result.steps)):
            got = values[i + 1][j]
            if c in ("user", "item"):  # the id from the data tab, where the Result holds its index
                ids = result.ids.users if c == "user" else result.ids.items
                assert str(int(float(got))) == ids[int(result.steps[c].iat[i])]
                continue
            expected = result.steps[c].iat[i]
            scale = np.nanmax(np.abs(result.steps[c].to_numpy())) or 1.0
            if c in ("err", "pred", "loss") or c.startswith("de/d"):  # a difference pred - y at its start
                scale = max(scale, np.nanmax(np.abs(result.steps["pred"].to_numpy())))
            assert abs(float(got) - expected) <= 1e-12 * max(abs(expected), scale), \
                f"{name} {c} line {i}: LibreOffice {got!r}, sheetsync {expected!r}"
            checked += 1
    assert checked >= len(result.steps) * 8


def test_pred_is_a_sumproduct_of_the_row_s_factor_cells(recalculated):
    built, _ = recalculated
    _, formulas = built["biased"]
    assert formulas["pred"][0] == "=((SUMPRODUCT(G2:K2,L2:P2)+Q2)+R2)"
    assert formulas["y"][0] == "=data!$B$2" and formulas["user"][0] == "=data!$A$2"
    assert formulas["u1"][0].startswith("=0.") and formulas["new u1"][0].startswith("=((")
    _, formulas = built["ranged"]
    assert formulas["pred"][3].count("SUMPRODUCT(G5:I5,J5:L5)") >= 1


def test_stateful_optimizers_and_batches_refuse_formula_mode_with_a_reason():
    adam = train(Experiment("a", model="dot_product", flavour="pytorch", optimizer="adam", factors=2), X, Y,
                 ids=RATINGS.ids)
    with pytest.raises(FormulaModeError, match="adam keeps state for every table row"):
        step_formulas(adam, data_cell, SETTINGS, 4)
    batched = train(Experiment("b", model="dot_product", flavour="pytorch", optimizer="sgd", factors=2,
                               batch_size=3), X, Y, ids=RATINGS.ids)
    with pytest.raises(FormulaModeError, match="formula mode takes batch size 1"):
        step_formulas(batched, data_cell, SETTINGS, 4)


def test_map_and_precedents_of_pred_name_the_factor_cells_and_the_rating(recalculated):
    built, _ = recalculated
    result, _ = built["biased"]
    sf = StepFormulas(result, data_cell, SETTINGS, 4)
    line = 7
    refs = sf.precedents(line, "pred")
    assert [(r.kind, r.name, r.line) for r in refs] == [("line", q, line) for q in
                                                        ["u1", "u2", "u3", "u4", "u5", "m1", "m2", "m3", "m4", "m5",
                                                         "bu", "bm"]]
    y_ref = sf.precedents(line, "y")[0]
    assert (y_ref.kind, y_ref.name) == ("data", RATINGS.cells[int(result.steps["row"].iat[line]) - 1])
    slot = sf.precedents(line, "u1")[0]
    assert slot.kind == "table" and slot.value == result.steps["u1"].iat[line]
    rows = {r["column"]: r for r in map_rows(sf, "biased steps")}
    assert "the user's table row before this step" in rows["u1"]["precedents"]
    assert "may have moved since that user's last row" in rows["u1"]["precedents"]
    assert "the item's table row" in rows["m2"]["precedents"]
    assert re.search(r"SUMPRODUCT\(G\d+:K\d+,L\d+:P\d+\)", rows["pred"]["formula (A1)"])
    assert rows["pred"]["precedents"].startswith("u1 (same row); u2 (same row)")
    assert rows["u1"]["boundary rows"] == ""
