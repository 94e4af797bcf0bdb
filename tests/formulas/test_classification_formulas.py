"""Formula mode for classifiers, proved by LibreOffice: logistic, focal, softmax and an mlp with
a sigmoid head, trained in values mode, written as per-row formulas (EXP, LN, IF: no array
formulas), recalculated by LibreOffice headless, and compared with the values to 1e-12 of the
magnitudes each column is computed from (as tests/formulas/test_formula_mode.py does for the
pytorch flavour). The precedents map's edges are exactly the references in each formula.
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
from sheetsync.layout.formulas import StepFormulas, step_formulas  # noqa: E402

rng = np.random.default_rng(14)
X1 = [round(v, 3) for v in rng.uniform(-2, 2, 18)]
X2 = [round(v, 3) for v in rng.uniform(-2, 2, 18)]
BINARY = [float(a - 0.5 * b + 0.3 * np.sin(7 * a) > 0) for a, b in zip(X1, X2)]
THREE = [float(0 if a < -0.6 else (1 if a < 0.7 else 2)) if abs(b) < 1.8 else 1.0 for a, b in zip(X1, X2)]
XY = [[a, b] for a, b in zip(X1, X2)]

CASES = [
    (Experiment("lg_bce", model="logistic", flavour="pytorch", optimizer="sgd", lr=0.3, epochs=3), BINARY),
    (Experiment("lg_b4", model="logistic", flavour="pytorch", optimizer="adam", lr=0.1, epochs=3, batch_size=4,
                log_base="10"), BINARY),
    (Experiment("lg_focal", model="logistic", loss="focal", gamma=2, focal_alpha=0.25, flavour="pytorch",
                optimizer="momentum", lr=0.2, epochs=3, batch_size=5), BINARY),
    (Experiment("sm_ce", model="softmax", flavour="pytorch", optimizer="adam", lr=0.1, epochs=3, batch_size=4), THREE),
    (Experiment("mlp_sig", model="mlp", output="sigmoid", hidden=2, flavour="fastai", optimizer="adam", lr=0.05,
                epochs=2), BINARY),
]


def data_cell(i, name):
    return f"data!{ {'x1': 'A', 'x2': 'B', 'y': 'C', 'y3': 'D'}[name] }{i + 2}"


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    wb = openpyxl.Workbook()
    d = wb.active
    d.title = "data"
    d.append(["x1", "x2", "y", "y3"])
    for i in range(len(X1)):
        d.append([X1[i], X2[i], BINARY[i], THREE[i]])
    settings = wb.create_sheet("experiments")
    settings["A1"], settings["A2"] = "setting", "lr"
    built = {}
    for k, (exp, y) in enumerate(CASES):
        letter = openpyxl.utils.get_column_letter(k + 2)
        settings[f"{letter}1"], settings[f"{letter}2"] = exp.name, exp.lr
        result = train(exp, XY, y)
        ycol = "y3" if y is THREE else "y"
        formulas = step_formulas(result, lambda i, name, ycol=ycol: data_cell(i, ycol if name == "y" else name),
                                 {"lr": f"experiments!{letter}2"}, 2)
        ws = wb.create_sheet(exp.name)
        ws.append(list(result.steps.columns))
        for i in range(len(result.steps)):
            ws.append([formulas[c][i] if formulas[c][i] is not None else
                       (None if np.isnan(result.steps[c].iat[i]) else float(result.steps[c].iat[i]))
                       for c in result.steps.columns])
        built[exp.name] = (result, formulas)
    path = tmp_path_factory.mktemp("classify") / "classify.xlsx"
    wb.save(path)
    return built, recalculate(path, list(built))


@pytest.mark.parametrize("name", [e.name for e, _ in CASES])
def test_libreoffice_recalculates_classifiers_to_the_same_numbers(recalculated, name):
    built, sheets = recalculated
    result, formulas = built[name]
    sheet = sheets[name]
    assert sheet["errors"] == {}
    values = sheet["values"]
    text = " ".join(f for c in formulas for f in formulas[c] if f)
    assert "EXP(" in text and "LN(" in text and "{" not in text  # no array formulas
    checked = 0
    for j, c in enumerate(result.steps.columns):
        if all(f is None for f in formulas[c]):
            continue
        scale = np.nanmax(np.abs(result.steps[c].to_numpy())) or 1.0
        for i in range(len(result.steps)):
            expected = result.steps[c].iat[i]
            if np.isnan(expected):
                continue
            got = float(values[i + 1][j])
            assert abs(got - expected) <= 1e-12 * max(abs(expected), scale), \
                f"{name} {c} line {i}: LibreOffice {got!r}, sheetsync {expected!r}"
            checked += 1
    assert checked >= len(result.steps) * 8


@pytest.mark.parametrize("exp,y", CASES[1:4], ids=lambda v: getattr(v, "name", ""))
def test_map_edges_are_exactly_the_references_in_the_formula(exp, y):
    result = train(exp.replace(epochs=1), XY, y)
    sf = StepFormulas(result, data_cell, {"lr": "experiments!B2"}, 4)
    for i in range(len(result.steps)):
        for c in result.steps.columns:
            formula = sf.formula(i, c)
            refs = sf.precedents(i, c)
            if formula is None:
                assert refs == [] or c in ("epoch", "step", "row")
                continue
            cells = {m.replace("$", "") for m in re.findall(r"(?:data!|experiments!)?\$?[A-Z]{1,2}\$?\d+", formula)}
            expected = set()
            for r in refs:
                if r.kind == "line":
                    expected.add(f"{sf.letter[r.name]}{sf.lines.row(r.line)}")
                elif r.kind in ("data", "setting"):
                    expected.add(r.name)
            assert cells == expected, (i, c, formula)
