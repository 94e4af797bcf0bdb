"""Rendering results into tabs: geometry, sampling, diagnostics, history and state round trips."""

import numpy as np
import pandas as pd
import pytest

from sheetsync import Experiment, train
from sheetsync.demo import X, Y
from sheetsync.layout import ExperimentOutput, RunEntry, merge_history, render
from sheetsync.layout.compare import render_compare
from sheetsync.layout.epochs import fit_grid, predict, render_epochs
from sheetsync.layout.state import SavedState, read_state, render_state
from sheetsync.engine.record import epoch_starts, sample_lines
from sheetsync.layout.steps import DEAD, DIVERGED, HEADER_ROW, render_steps
from sheetsync.layout.tables import read_table

x, y = np.array(X, float), np.array(Y, float)


def basic(epochs=5):
    return train(Experiment("basic", epochs=epochs), x, y)


def grid_of(tab):
    """The cells a TabPlan's tables and texts fill, as a dict (row, col) -> value."""
    cells = {}
    for t in tab.tables:
        for j, c in enumerate(t.columns):
            cells[(t.row, t.col + j)] = c.header
            for i, v in enumerate(c.values):
                cells[(t.row + 1 + i, t.col + j)] = v
    for text in tab.texts:
        cells[(text.row, text.col)] = text.value
    return cells


def test_steps_tab_puts_the_first_step_in_row_4_under_a_frozen_header():
    tab = render_steps(basic())
    cells = grid_of(tab)
    assert tab.name == "basic steps" and tab.frozen_rows == 3
    assert [cells[(2, j)] for j in range(4)] == ["epoch", "step", "row", "x"]
    assert cells[(3, 7)] == 15.0 and cells[(3, 9)] == 1849.0  # pred and loss of the first step
    assert "All 145 steps" in cells[(0, 0)] and "start of this Run" in cells[(1, 0)]
    assert "graddesc sgd" in cells[(0, 0)]


def test_sampling_keeps_epoch_boundaries_and_labels_the_tab():
    result = basic(epochs=20)  # 580 steps
    tab = render_steps(result, allowed_rows=100)
    cells = grid_of(tab)
    n = tab.tables[0].n_rows
    assert n <= 100 + 2
    steps = result.steps
    written = set(tab.tables[0].columns[1].values)
    for epoch, group in steps.groupby("epoch"):
        assert group["step"].iloc[0] in written and group["step"].iloc[-1] in written
    assert cells[(0, 0)].splitlines()[1].startswith("SAMPLED:")


def test_sample_lines_with_more_epochs_than_room_still_fits():
    epoch = np.repeat(np.arange(1, 10_001), 3)
    rows, k = sample_lines(len(epoch), epoch_starts(epoch), 1000)
    assert len(rows) <= 1000 and k > 1 and rows[0] == 0 and rows[-1] == len(epoch) - 1


def test_divergence_is_highlighted_on_its_row_with_a_plain_note():
    result = train(Experiment("hot", lr=0.01, epochs=3), x, y)
    div = result.diagnostics.divergence
    assert div is not None
    tab = render_steps(result)
    red = [h for h in tab.highlights if h.color == DIVERGED]
    assert len(red) == 1
    row = red[0].row - HEADER_ROW - 1
    assert result.steps["step"].iloc[row] == div.step
    assert "DIVERGED" in red[0].note and "Diverged at" in grid_of(tab)[(0, 0)]


def test_dead_relu_parameters_are_marked_in_their_columns():
    result = train(Experiment("dead", model="two_relu", flavour="pytorch", lr=1e-4, epochs=5,
                              init={"a": 1, "b": -40, "c": 1, "d": 60}), x, y)
    assert result.diagnostics.dead
    tab = render_steps(result)
    headers = [c.header for c in tab.tables[0].columns]
    grey = {headers[h.col] for h in tab.highlights if h.color == DEAD}
    dead = result.diagnostics.dead["u"]
    assert dead.params == ["a", "b", "c"]
    assert {h for p in dead.params for h in (p, f"de/d{p}", f"new {p}")} <= grey


def test_gradient_gap_is_noted_beside_the_estimate():
    tab = render_steps(basic())
    notes = [h.note for h in tab.highlights]
    assert any("de/da" in n and "98" in n for n in notes)


def test_fit_grid_holds_the_relu_elbow_and_the_prediction_bends_there():
    result = train(Experiment("relu", model="two_relu", flavour="pytorch", lr=3e-5, epochs=5,
                              init={"a": 1, "b": -40, "c": 1.5, "d": 80}), x, y)
    grid = fit_grid(result, x)
    elbow = -result.params["b"] / result.params["a"]
    assert elbow in grid and np.all(np.diff(grid) >= 0)
    pred = predict(result, grid)
    left = pred[grid < elbow]
    assert np.ptp(left) == pytest.approx(0, abs=1e-9)  # flat before the elbow
    assert pred[-1] > pred[0] + 50  # rising after it


def test_epochs_tab_has_path_and_fit_charts_but_no_fit_for_several_inputs():
    result = basic()
    tab = render_epochs(result, result.epochs, x, y, ["a note"])
    assert [c.kind for c in tab.charts] == ["line", "scatter", "line", "line"]  # loss, fit, a, b
    assert [c.title.split()[0] for c in tab.charts] == ["Loss", "Fit:", "a", "b"]
    X2 = np.c_[x, x]
    r2 = train(Experiment("two", flavour="pytorch", lr=1e-5, epochs=1), X2, y)
    tab2 = render_epochs(r2, r2.epochs, X2, y, [])
    assert [c.kind for c in tab2.charts] == []  # one epoch: nothing to draw per epoch, and no fit
    assert any("several inputs" in str(t.value) for t in tab2.texts)


def test_merge_history_appends_this_run_to_what_was_read_back():
    first = basic()
    back = read_table([list(first.epochs.columns)] + first.epochs.astype(object).values.tolist())
    second = train(Experiment("basic"), x, y, state=first.state)
    merged = merge_history(back, second.epochs)
    assert list(merged["epoch"]) == list(range(1, 11))
    assert merged["loss"].dtype == float


def test_compare_aligns_experiments_by_epoch():
    tab = render_compare({"a": pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}),
                          "b": pd.DataFrame({"epoch": [1], "loss": [5.0]})})
    cells = grid_of(tab)
    assert [cells[(0, j)] for j in range(3)] == ["epoch", "a loss", "b loss"]
    assert cells[(3, 1)] == 1.0 and np.isnan(cells[(3, 2)])
    assert tab.charts[0].kind == "line" and len(tab.charts[0].series) == 2


def test_state_survives_a_round_trip_through_cells_even_when_long():
    state = {"params": {f"p{i}": i / 3 for i in range(4000)}, "epoch": 5}
    tab = render_state({"big": SavedState("big", {"model": "mlp"}, "abc", state)})
    assert tab.hidden and len(tab.tables[0].columns) > 4
    rows = [[c.header for c in tab.tables[0].columns], [c.values[0] for c in tab.tables[0].columns]]
    back = read_state(read_table(rows))
    assert back["big"].state == state and back["big"].signature == {"model": "mlp"}


def test_render_keeps_inside_the_cell_budget_and_epochs_stay_complete():
    result = basic(epochs=50)
    plan = render([ExperimentOutput(result, result.epochs)], x=x, y=y, other_histories={}, states={},
                  entry=RunEntry("run", ["basic"]), previous_runs=None, cell_budget=5000)
    steps, epochs = plan.tabs[0], plan.tabs[1]
    assert steps.tables[0].n_rows < len(result.steps)
    assert epochs.tables[0].n_rows == 50
    assert [t.name for t in plan.tabs] == ["basic steps", "basic epochs", "basic landscape", "compare", "runs",
                                        "sheetsync state"]
