"""The graddesc flavour against the values the published graddesc.xlsm cached when saved.

tests/reference/graddesc_workbooks.json holds them (which repository, commit and cells: its
"sources" and tests/reference/make_graddesc_reference.py). Each saved tab is a Reset followed by
Runs; sheetsync replays the same and must land on the same carried cells and the same displayed
pass: the 2016 tabs bit for bit, adam_ann to 1e-9 (docs/graddesc-flavour.md says why not exact).
"""

import json
import math
from pathlib import Path

import pytest

from sheetsync import Experiment, train

REF = json.loads((Path(__file__).parents[1] / "reference" / "graddesc_workbooks.json").read_text())
X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
Y = [2 * x + 30 for x in X]


def replay(optimizer, runs):
    """Reset + `runs` Runs, then the displayed pass (one more epoch): (state, that epoch's steps)."""
    state = None
    for _ in range(runs):
        state = train(Experiment(optimizer=optimizer), X, Y, state).state
    shown = train(Experiment(optimizer=optimizer, epochs=1), X, Y, state)
    return state, shown


def rows_match(tab, steps, tol=0.0):
    """Every cached row of the displayed pass; `tol` relative to the column's largest value
    (a gradient near the fit is a difference of nearly equal numbers)."""
    for col, name in tab["columns"].items():
        scale = max(abs(v) for v in tab["rows"][col])
        for r, (want, got) in enumerate(zip(tab["rows"][col], steps[name])):
            assert abs(got - want) <= tol * scale, f"{tab['tab']}!{col}{r + 4} ({name}): {got!r} != {want!r}"


def test_2016_adagrad_reset_pastes_the_first_pass_normalisers():
    tab = REF["tabs"]["2016 adagrad"]
    c = tab["cells"]
    _, shown = replay("adagrad", 0)  # the sheet was saved right after Reset
    start = shown.starts[1]
    assert start["opt"]["n"] == {"b": c["F1"], "a": c["G1"]}
    assert (start["params"]["b"], start["params"]["a"]) == (c["C1"], c["C2"])
    rows_match(tab, shown.steps)
    assert shown.state.opt["n"] == {"b": c["F33"], "a": c["G33"]}  # what the next onestep pastes


def test_2016_adagrad_ann_after_reset_and_two_runs():
    tab = REF["tabs"]["2016 adagrad_ann"]
    c = tab["cells"]
    state, shown = replay("adagrad_ann", 2)
    assert (state.params["b"], state.params["a"]) == (c["C1"], c["C2"])
    assert state.opt["n"] == {"b": c["F1"], "a": c["G1"]}
    # the displayed pass (epoch 11) was tested by the second Run's last onestep: lr and J1
    assert shown.epochs["lr"].tolist() == [c["D2"]]
    assert shown.state.extra["remembered"] == c["J1"] == c["H33"]
    rows_match(tab, shown.steps)


@pytest.mark.parametrize("year", ["2018", "2022"])
def test_adam_ann_after_reset_and_five_runs(year):
    tab = REF["tabs"][f"{year} adam_ann"]
    c = tab["cells"]
    state, shown = replay("adam_ann", 5)

    def close(a, b):
        return math.isclose(a, b, rel_tol=1e-8, abs_tol=1e-12)

    assert state.extra["lr"] == c["D2"] == shown.epochs["lr"].iloc[0]
    assert close(state.extra["best_g2"], c["N3"])
    assert close(state.params["b"], c["C1"]) and close(state.params["a"], c["C2"])
    for stem, q, cell in (("m", "b", "J33"), ("m", "a", "K33"), ("v", "b", "L33"), ("v", "a", "M33")):
        assert close(state.opt[stem][q], c[cell]), cell
    rows_match(tab, shown.steps, tol=1e-8)
