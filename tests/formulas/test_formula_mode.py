"""Formula mode, proved by a real spreadsheet engine.

Every experiment below is trained in values mode, written as per-row formulas (with the values
as cached results), and recalculated by LibreOffice headless. The recalculated cells must equal
the values: bit for bit in the graddesc flavour, and within 1e-12 relative in the pytorch and
fastai flavours, whose fused multiply-adds (torch's) a spreadsheet cannot express.
"""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from sheetsync import Experiment, train
from sheetsync.layout.formulas import StepFormulas, step_formulas
from sheetsync.layout.map import map_rows, to_r1c1

ROOT = Path(__file__).resolve().parents[2]
X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
Y = [2 * x + 30 for x in X]
# Data as a learner types it: short decimals. (LibreOffice may drop the 17th digit of a plain
# number cell when it imports an .xlsx — docs/spreadsheet-numbers.md — so 0.45999999999999996 would
# not survive; numbers inside formulas are read exactly, which is why formula mode writes
# carried values as formulas.)
XS = [x / 100 for x in X]
YS = [round(2 * v + 0.3, 6) for v in XS]
X2 = [[x / 100, ((7 * i) % 11) / 10] for i, x in enumerate(X)]
Y2 = [round(2 * a - b + 0.3, 6) for a, b in X2]

GRADDESC = [Experiment(f"g_{o}", optimizer=o, epochs=3) for o in
            ("sgd", "momentum", "rmsprop", "adam", "adam_ann", "eve", "adagrad", "adagrad_ann")]
OTHERS = [
    Experiment("t_sgd", flavour="pytorch", optimizer="sgd", momentum=0.9, dampening=0.1, weight_decay=0.01, lr=0.05),
    Experiment("t_nest", flavour="pytorch", optimizer="nesterov", model="two_relu", lr=0.02, gradient="both"),
    Experiment("t_ada", flavour="pytorch", optimizer="adagrad", lr_decay=0.01, initial_accumulator_value=0.1,
               weight_decay=0.1, lr=0.1, batch_size=4),
    Experiment("t_rms", flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5, lr=0.01, batch_size=5),
    Experiment("t_adam", flavour="pytorch", optimizer="adam", amsgrad=True, weight_decay=0.01, lr=0.05,
               model="two_linear", gradient="numeric", grad_method="central", grad_step=0.001),
    Experiment("t_adamw", flavour="pytorch", optimizer="adamw", lr=0.05, loss="absolute", batch_size="all"),
    Experiment("f_sgd", flavour="fastai", optimizer="momentum", lr=0.05, weight_decay=0.1),
    Experiment("f_rms", flavour="fastai", optimizer="rmsprop", momentum=0.9, lr=0.01, decouple_wd=False,
               weight_decay=0.01),
    Experiment("f_adam", flavour="fastai", optimizer="adam", lr=0.05, model="two_relu"),
]
MULTI = [Experiment("m_mlp", flavour="pytorch", optimizer="adam", model="mlp", hidden=3, lr=0.02, batch_size=3)]


def build_workbook(path, cases):
    """data tabs, an experiments tab with lr, and one formula-mode steps tab per experiment."""
    wb = openpyxl.Workbook()
    d = wb.active
    d.title = "data"
    d.append(["x", "y", "x1", "x2", "y2", "xs", "ys"])
    for i in range(len(X)):
        d.append([X[i], Y[i], X2[i][0], X2[i][1], Y2[i], XS[i], YS[i]])
    settings = wb.create_sheet("experiments")
    settings["A1"], settings["A2"] = "setting", "lr"
    out = {}
    for k, (exp, x, y, cols) in enumerate(cases):
        letter = openpyxl.utils.get_column_letter(k + 2)
        settings[f"{letter}1"], settings[f"{letter}2"] = exp.name, exp.lr
        result = train(exp, x, y)
        formulas = step_formulas(result, lambda i, name, cols=cols: f"data!{cols[name]}{i + 2}",
                                 {"lr": f"experiments!{letter}2"}, 2)
        ws = wb.create_sheet(exp.name)
        ws.append(list(result.steps.columns))
        for i in range(len(result.steps)):
            row = []
            for c in result.steps.columns:
                v = result.steps[c].iat[i]
                row.append(formulas[c][i] if formulas[c][i] is not None else (None if np.isnan(v) else float(v)))
            ws.append(row)
        out[exp.name] = (result, formulas)
    wb.save(path)
    return out


def recalculate(path, tabs):
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), *tabs],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    one = {"x": "A", "y": "B"}
    scaled = {"x": "F", "y": "G"}
    two = {"x1": "C", "x2": "D", "y": "E"}
    cases = [(e, X, Y, one) for e in GRADDESC] + [(e, XS, YS, scaled) for e in OTHERS]
    cases += [(e, X2, Y2, two) for e in MULTI]
    path = tmp_path_factory.mktemp("formulas") / "formulas.xlsx"
    built = build_workbook(path, cases)
    return built, recalculate(path, list(built))


@pytest.mark.parametrize("name", [e.name for e in GRADDESC + OTHERS + MULTI])
def test_libreoffice_recalculates_every_cell_to_the_same_numbers(recalculated, name):
    built, sheets = recalculated
    result, formulas = built[name]
    sheet = sheets[name]
    assert sheet["errors"] == {}
    values = sheet["values"]
    assert [str(v) for v in values[0][: len(result.steps.columns)]] == list(result.steps.columns)
    checked = 0
    for j, c in enumerate(result.steps.columns):
        if all(f is None for f in formulas[c]):
            continue
        for i in range(len(result.steps)):
            expected = result.steps[c].iat[i]
            if np.isnan(expected):
                continue
            got = float(values[i + 1][j])
            if result.experiment.flavour == "graddesc":
                assert got == expected, f"{name} {c} line {i}: LibreOffice {got!r}, sheetsync {expected!r}"
            else:
                # torch fuses its multiply-adds (engine.fused); a spreadsheet has no FMA, so a
                # parameter may differ in its last bit. A gradient is a difference (pred - y) of
                # numbers far larger than itself, and an estimate divides a difference of losses
                # by h: each is held to 1e-12 of the magnitudes it is computed from.
                scale = np.nanmax(np.abs(result.steps[c].to_numpy())) or 1.0
                if c.endswith(" est"):
                    scale = np.nanmax(np.abs(result.steps["loss"].to_numpy())) / result.experiment.grad_step
                assert abs(got - expected) <= 1e-12 * max(abs(expected), scale), \
                    f"{name} {c} line {i}: LibreOffice {got!r}, sheetsync {expected!r}"
            checked += 1
    assert checked >= len(result.steps) * 5


def test_map_edges_are_exactly_the_references_in_the_formula():
    result = train(Experiment("m", flavour="pytorch", optimizer="adam", model="two_relu", lr=0.01, batch_size=2,
                              epochs=2), XS, YS)
    sf = StepFormulas(result, lambda i, name: f"data!{'F' if name == 'x' else 'G'}{i + 2}", {"lr": "experiments!B2"}, 4)
    for i in range(len(result.steps)):
        for c in result.steps.columns:
            formula = sf.formula(i, c)
            refs = sf.precedents(i, c)
            if formula is None:
                assert refs == [] or c in ("epoch", "step", "row")
                continue
            cells = set(re.findall(r"(?:data!|experiments!)?\$?[A-Z]{1,2}\$?\d+", formula))
            cells = {c.replace("$", "") for c in cells}
            expected = set()
            for r in refs:
                if r.kind == "line":
                    expected.add(f"{sf.letter[r.name]}{sf.lines.row(r.line)}")
                elif r.kind in ("data", "setting"):
                    expected.add(r.name)
            assert cells == expected, (i, c, formula)


def test_map_lists_every_column_with_its_pattern_and_boundaries():
    result = train(Experiment("basic", epochs=2), X, Y)
    sf = StepFormulas(result, lambda i, name: f"data!{'A' if name == 'x' else 'B'}{i + 2}", {"lr": "experiments!B5"}, 4)
    rows = {r["column"]: r for r in map_rows(sf, "basic steps")}
    assert list(rows) == list(result.steps.columns)
    assert rows["new a"]["formula (A1)"] == "=(F5-(experiments!$B$5*K5))"
    assert rows["new a"]["formula (R1C1)"] == "=(RC[-9]-(experiments!R5C2*RC[-4]))"
    assert "experiments!B5 (lr)" in rows["new a"]["precedents"]
    assert rows["a"]["precedents"] == "new a (row above)"
    assert "row 33 (first row of epoch 2: the last row's inputs" in rows["a"]["boundary rows"]
    assert "row 4 (first step of this Run: reads the saved state): =1" in rows["a"]["boundary rows"]
    assert "a (next row)" in rows["new a"]["dependents"]


def test_r1c1_conversion():
    assert to_r1c1("=(F5-(experiments!$B$5*K5))", 5, 14) == "=(RC[-9]-(experiments!R5C2*RC[-4]))"
    assert to_r1c1("='my tab'!$A$2+SQRT(B4)", 5, 1) == "='my tab'!R2C1+SQRT(R[-1]C)"


def test_a_run_after_infinity_starts_again_from_init_so_its_formulas_can_be_written():
    exp = Experiment(flavour="pytorch", epochs=1)
    state = train(exp, X, Y).state
    state.params["a"] = float("inf")  # what a diverged Run leaves behind
    result = train(exp, X, Y, state)
    assert result.diagnostics.restarted and result.steps["a"].iloc[0] == 1.0
    formulas = step_formulas(result, lambda i, name: f"data!A{i + 2}", {}, 4)
    assert formulas["pred"][0].startswith("=")


def test_formulas_come_from_the_results_own_spec(monkeypatch):
    """Formula mode reads the Spec the Result carries (no job prepared again from zero-filled
    data), and a Result rebuilt from a sheet's tables (a trace's) carries the same structure."""
    from sheetsync.engine.result import Result
    from sheetsync.layout import formulas as formulas_module

    exp = Experiment("s", flavour="pytorch", optimizer="adam", batch_size="all", epochs=2, lr=0.05)
    result = train(exp, XS, YS)
    cells = lambda i, name: f"data!A{i + 2}"  # noqa: E731
    expected = step_formulas(result, cells, {"lr": "experiments!B2"}, 2)

    def no_prepare(*args, **kwargs):
        raise AssertionError("formula mode prepared a job again")

    monkeypatch.setattr(formulas_module, "prepare", no_prepare, raising=False)
    assert step_formulas(result, cells, {"lr": "experiments!B2"}, 2) == expected
    again = Result.from_tables(exp, result.steps, result.epochs, ["x"], result.starts, n_rows=len(XS))
    assert again.spec.batch_size == result.spec.batch_size == len(XS)
    assert (again.spec.update.state, again.spec.update.hyper) == (result.spec.update.state, result.spec.update.hyper)
    assert step_formulas(again, cells, {"lr": "experiments!B2"}, 2) == expected
