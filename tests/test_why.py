"""The sheet answers the learner's questions (docs/why.md): where and how the error exploded, a
learning rate that is proven to train, what Run does after a divergence, when a ReLU died, why
the numeric gradient differs, where the first momentum comes from, and the loss landscape.
Each statement is checked against the steps tab's own numbers, recomputed here by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sheetsync import Experiment, train
from sheetsync.demo import X, Y
from sheetsync.engine import explain
from sheetsync.layout.compare import axis_cut
from sheetsync.layout.landscape import GRID_ROW, render_landscape
from sheetsync.layout.steps import DIVERGED, HEADER_ROW, ONSET, render_steps

x = np.array(X, dtype=float)
y = np.array(Y, dtype=float)

# The thread's experiment: the workbook's 29 samples, c*(a*x+b)+d from every init 1, lr 1e-4,
# numeric gradients, one epoch.
THREAD = Experiment("thread", model="two_linear", lr=1e-4, epochs=1, gradient="numeric")


def two_linear_loss(row, a, b, c, d) -> float:
    err = (c * (a * row["x"] + b) + d) - row["y"]
    return err * err


@pytest.fixture(scope="module")
def thread():
    return train(THREAD, x, y)


def full_loss(a, b, c, d) -> float:
    return math.fsum((c * (a * xv + b) + d - yv) ** 2 for xv, yv in zip(X, Y)) / len(X)


def test_the_explosion_starts_where_the_loss_left_the_runs_start_for_good(thread):
    steps = thread.steps
    onset, div = thread.diagnostics.onset, thread.diagnostics.divergence
    assert (div.step, onset.step, onset.row, onset.x) == (28, 24, 24, 64.0)
    before = [full_loss(r["a"], r["b"], r["c"], r["d"]) for _, r in steps.iterrows()]
    start = before[0]
    i = onset.line
    assert before[i] <= start  # just before the step: no worse than where the Run began
    assert all(v > start for v in before[i + 1:])  # after it, never back there
    assert onset.lowest == pytest.approx(before[i], rel=1e-12) and onset.start_loss == pytest.approx(start, rel=1e-12)
    own = two_linear_loss(steps.iloc[i], *(steps[f"new {q}"].iloc[i] for q in "abcd"))
    assert onset.loss_after == pytest.approx(own, rel=1e-12) and own > onset.loss_before  # it overshot
    assert onset.moved == ["a", "c"]  # their updates were largest relative to their values
    a0, a1 = steps["a"].iloc[i], steps["new a"].iloc[i]
    assert onset.relative["a"] == pytest.approx(abs(a1 - a0) / abs(a0), rel=1e-12)
    quick = train(Experiment("line", lr=2e-3, epochs=1), x, y)  # blows up at once: x = 86, the 2nd row
    assert (quick.diagnostics.onset.step, quick.diagnostics.onset.x) == (2, 86.0)


def test_the_story_says_where_how_and_what_trains_from_the_model_itself(thread):
    story = " ".join(thread.diagnostics.story)
    assert "It started at epoch 1, step 24 (data row 24, x = 64)" in story and "never came back" in story
    assert "a and c multiply each other" in story
    assert "de/da = c·x·g" in story and "de/dc = (a·x + b)·g" in story and "g = 2·err" in story
    assert "lr 3e-05 trains: loss 847.3 → 504.1 over 3 epochs" in story
    linear = train(Experiment("line", lr=2e-3, epochs=1), x, y)  # plain per-row SGD, linear
    text = " ".join(linear.diagnostics.story)
    assert "curvature along the gradient is 2·(x² + 1)" in text
    assert "lr·2·(x² + 1) > 2" in text and "x = 99" in text and f"{1 / (99 * 99 + 1):.3g}" in text


def test_the_safe_lr_trains_from_reset_with_a_falling_loss(thread):
    safe = thread.diagnostics.safe_lr
    assert safe == 3e-5
    check = train(THREAD.replace(lr=safe, epochs=3), x, y)
    losses = check.epochs["loss"].to_numpy()
    assert check.diagnostics.divergence is None and (np.diff(losses) < 0).all()
    assert (losses[0], losses[-1]) == (thread.diagnostics.safe_lr_check.first_loss,
                                       thread.diagnostics.safe_lr_check.last_loss)
    # the next lr up the grid does not train: the search really kept the largest
    assert 1e-4 > safe and not explain.trains(train(THREAD.replace(lr=1e-4, epochs=3), x, y).epochs["loss"])


def test_a_loss_that_rises_without_diverging_gets_a_safe_lr_too():
    adam = train(Experiment("adam", optimizer="adam", lr=1, epochs=5), x, y)  # the demo's adam
    d = adam.diagnostics
    assert d.divergence is None and d.rose == (3, 5)
    assert adam.epochs["loss"].iloc[3] > adam.epochs["loss"].iloc[2] * (1 + explain.RISE)
    assert d.safe_lr == 0.3 and explain.trains(train(adam.experiment.replace(lr=0.3), x, y).epochs["loss"])
    calm = train(Experiment("basic", epochs=5), x, y)
    assert calm.diagnostics.safe_lr is None and calm.diagnostics.rose is None


def test_run_after_a_divergence_starts_again_from_init(thread):
    assert thread.state.diverged
    lower = THREAD.replace(lr=3e-5)
    again = train(lower, x, y, state=thread.state)
    fresh = train(lower, x, y)
    assert again.diagnostics.restarted == "the last run diverged; this Run started again from the init values"
    assert again.steps.equals(fresh.steps) and again.params == fresh.params
    assert again.diagnostics.divergence is None  # 3e-5 is not "too large" once it starts from init
    assert "started again from the init values" in again.diagnostics.notes[0]


def test_the_margin_is_lr_times_the_curvature_for_plain_sgd():
    r = train(Experiment("basic", epochs=1), x, y)  # graddesc sgd on a*x + b
    margin = explain.step_geometry(r).margin
    expected = 1e-4 * 2 * (r.steps["x"].to_numpy() ** 2 + 1)  # the row's curvature along (x, 1)
    # the update uses the analytic gradient, which points along (x, 1): the margin is exact
    np.testing.assert_allclose(margin, expected, rtol=1e-12)
    hot = train(Experiment("hot", lr=2e-4, epochs=1), x, y)
    geo = explain.step_geometry(hot)
    over = geo.margin > 2
    assert (over == (hot.steps["x"].to_numpy() ** 2 + 1 > 1 / 2e-4)).all()
    assert (geo.overshoot == over).all()  # for a parabola the second-order prediction is exact


def test_the_steps_tab_highlights_both_rows_and_charts_the_margin(thread):
    tab = render_steps(thread)
    fills = {h.color: h for h in tab.highlights if h.color in (ONSET, DIVERGED)}
    assert fills[ONSET].row == HEADER_ROW + 1 + thread.diagnostics.onset.line
    assert fills[DIVERGED].row == HEADER_ROW + 1 + len(thread.steps) - 1
    assert fills[ONSET].note.startswith("WHERE IT STARTED: It started at epoch 1, step 24")
    headers = [c.header for c in tab.tables[0].columns]
    assert headers[-1] == "margin"
    text = tab.texts[0]
    assert text.row == 0 and text.wrap and text.span > 1 and "It started at" in text.value
    titles = [c.title for c in tab.charts]
    assert titles[0].startswith("Loss (log scale)") and titles[1].startswith("Margin")
    assert all(c.anchor[0] == 0 for c in tab.charts)  # all in row 1, the first screen
    assert tab.frozen_rows == 3 and tab.row_heights[0] > 100


def test_a_relu_unit_is_reported_at_the_step_it_died():
    exp = Experiment("relu", model="two_relu", flavour="pytorch", lr=1e-4, epochs=2,
                     init={"a": 1, "b": -40, "c": 1.5, "d": 80})
    r = train(exp, x, y)
    dead = r.diagnostics.dead["u"]
    assert (dead.epoch, dead.step) == (1, 26) and dead.params == ["a", "b", "c"]
    steps = r.steps
    k = int(np.flatnonzero(steps["step"].to_numpy() == dead.step)[0])
    on = lambda a, b: (a * x + b > 0).any()  # noqa: E731
    assert on(steps["a"].iloc[k], steps["b"].iloc[k])  # alive before the killing update
    assert not any(on(steps["new a"].iloc[j], steps["new b"].iloc[j]) for j in range(k, len(steps)))
    assert dead.before == {"a": steps["a"].iloc[k], "b": steps["b"].iloc[k]}
    sentences = [n for n in r.diagnostics.notes if "ReLU unit" in n]
    assert len(sentences) == 1 and "died at epoch 1, step 26 (data row 26, x = 70)" in sentences[0]


def test_a_relu_on_for_every_row_behaves_as_the_line():
    r = train(Experiment("on", model="two_relu", flavour="pytorch", lr=1e-5, epochs=3), x, y)
    assert not r.diagnostics.dead
    p = r.params
    slope, intercept = r.diagnostics.collapsed_line
    assert slope == pytest.approx(p["c"] * p["a"], rel=1e-12)
    assert intercept == pytest.approx(p["c"] * p["b"] + p["d"], rel=1e-12)
    assert any("acted as the line" in n for n in r.diagnostics.notes)
    blown = train(THREAD, x, y)
    assert blown.diagnostics.collapsed_line is None  # no line sentence for a diverged run


def test_numeric_gaps_are_the_tabs_own_differences_with_their_cause(thread):
    steps = thread.steps.iloc[: thread.diagnostics.onset.line]
    for q in "abcd":
        gaps = (steps[f"de/d{q} est"] - steps[f"de/d{q}"]).abs()
        assert thread.diagnostics.grad_gap[q] == gaps.max() > 0
    g = thread.diagnostics.grad_gaps["a"]
    row = thread.steps.iloc[g.line]
    curvature = 2 * (row["c"] * row["x"]) ** 2  # d²/da² of (c*(a*x+b)+d - y)²
    assert g.expected == pytest.approx(0.01 * curvature / 2, rel=1e-12)
    assert g.gap == pytest.approx(g.expected, rel=1e-6) and g.kind == "bias"
    assert 255 < g.gap < 262  # the 261 the thread saw, reported as 0 before


def test_a_numeric_gap_across_the_relu_kink_is_named():
    exp = Experiment("kink", model="two_relu", flavour="pytorch", lr=1e-6, epochs=1, gradient="both",
                     grad_method="central", grad_step=0.1, init={"a": 1, "b": -40, "c": 1.5, "d": 80})
    r = train(exp, x, y)
    g = r.diagnostics.grad_gaps["a"]
    row = r.steps.iloc[g.line]
    u = row["a"] * row["x"] + row["b"]
    assert g.kind == "kink" and (u > 0) != ((row["a"] + 0.1) * row["x"] + row["b"] > 0 if u <= 0
                                             else (row["a"] - 0.1) * row["x"] + row["b"] > 0)
    assert "crosses the ReLU's kink (a·x + b changes sign" in g.cause


def test_the_first_momentum_comes_from_the_reset_warm_up_and_is_shown():
    r = train(Experiment("momentum", optimizer="momentum", epochs=1), x, y)
    assert r.start_origin == "reset warm-up"
    tab = render_steps(r)
    headers = [c.header for c in tab.tables[0].columns]
    start = {t.col: t.value for t in tab.texts if t.row == 1}
    assert start[headers.index("m_a")] == 98.24583039212854  # the carried values learners ask about
    assert start[headers.index("m_b")] == -18.33392669020789
    assert "warm-up pass" in start[0]
    again = train(r.experiment, x, y, state=r.state)
    assert again.start_origin == "previous run"


def test_landscape_cells_are_the_loss_at_their_parameters_and_hold_the_path(thread):
    tab = render_landscape(thread, x, y, max_cells=100_000)
    grid = tab.tables[0]
    ys = np.asarray(grid.columns[0].values)
    xs = [t.value for t in tab.texts if t.row == GRID_ROW - 1]
    assert len(xs) == len(ys) == explain.LANDSCAPE_POINTS and all(np.diff(xs) > 0) and all(np.diff(ys) < 0)
    assert "a slice of the loss over a and c" in tab.texts[0].value
    fixed = {"b": thread.steps["b"].iloc[thread.diagnostics.onset.line + 1],
             "d": thread.steps["d"].iloc[thread.diagnostics.onset.line + 1]}
    for i in (0, 7, 14):
        for j in (0, 5, 14):
            a, c = xs[j], ys[i]
            by_hand = math.fsum((c * (a * xv + fixed["b"]) + fixed["d"] - yv) ** 2 for xv, yv in zip(X, Y)) / len(X)
            assert grid.columns[1 + j].values[i] == pytest.approx(by_hand, rel=1e-12)
    path = tab.tables[1]
    pa, pc = np.asarray(path.columns[1].values), np.asarray(path.columns[2].values)
    assert (xs[0] <= pa).all() and (pa <= xs[-1]).all() and (ys[-1] <= pc).all() and (pc <= ys[0]).all()
    chart = tab.charts[0]
    assert (chart.x_min, chart.x_max, chart.y_min, chart.y_max) == (xs[0], xs[-1], ys[-1], ys[0])
    assert tab.color_scales and tab.color_scales[0].n_rows == explain.LANDSCAPE_POINTS


def test_compare_cuts_a_blown_up_experiment_and_says_so():
    import pandas as pd

    cut = axis_cut({"thread": pd.Series([6.8e23]), "basic": pd.Series([310.0, 200.0]),
                    "adam": pd.Series([1400.0, 1239.0])})
    assert cut == (pytest.approx(1400.0 * 1.1), ["thread"])
    assert axis_cut({"basic": pd.Series([310.0]), "adam": pd.Series([1400.0])}) is None


def test_the_trace_names_where_a_carried_value_came_from(tmp_path):
    import sheetsync
    from sheetsync.backends.xlsx import XlsxBackend
    from sheetsync.demo import demo_tabs

    book = tmp_path / "m.xlsx"
    tabs = demo_tabs()
    tabs["experiments"] = [["setting", "momentum"], ["optimizer", "momentum"], ["epochs", 1]]
    XlsxBackend.create(str(book), tabs)
    sheetsync.run(str(book))

    def carried(tree):
        if tree.get("kind") == "carried":
            yield tree
        for child in tree.get("children", []):
            yield from carried(child)

    first = sheetsync.trace(str(book), "momentum steps!M4", depth=1)  # m_a of the first step
    labels = [n["label"] for n in carried(first["tree"])]
    assert labels == ["m_a carried in from the Reset macro's warm-up pass"]
    sheetsync.run(str(book))
    again = sheetsync.trace(str(book), "momentum steps!M4", depth=1)
    assert [n["label"] for n in carried(again["tree"])] == ["m_a carried in from the previous Run (saved state)"]


def test_spaced_ints_are_np_unique_of_the_rounded_linspace():
    """The landscape's path points: what np.unique gave, without importing numpy.ma."""
    from sheetsync.engine.explain import spaced_ints

    for last in range(0, 400, 7):
        for count in (1, 2, 3, 50, 200, last + 1):
            expected = np.unique(np.linspace(0, last, count).round().astype(np.int64))
            assert np.array_equal(spaced_ints(last, count), expected), (last, count)
