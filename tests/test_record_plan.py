"""The engine records only the step lines the steps tab writes (engine/record.py, issue 17):
a workbook run through that path equals, part for part, the workbook the record-every-line
path writes, below and above a (lowered) cell budget."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sheetsync import budgets, runner
from sheetsync.engine import record, train
from sheetsync.engine.record import RecordPlan, epoch_starts, sample_lines
from sheetsync.settings import Experiment

from workbooks import write_book

ROWS = 40
rng = np.random.default_rng(3)
X = rng.uniform(0, 9, ROWS).round(3)
Y = (3 * X + 2 + rng.normal(0, 0.5, ROWS)).round(3)
LABEL = (X > 4.5).astype(int)

# (name, settings): every kind the brief names; the plannable ones record sampled above the budget
REGRESSION = [
    ("lin", {"model": "linear", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.003, "epochs": 60}),
    ("batch", {"model": "linear", "flavour": "pytorch", "optimizer": "adam", "lr": 0.05, "epochs": 60,
               "batch_size": 7, "shuffle": "TRUE", "seed": 5}),
    ("two", {"model": "two_linear", "flavour": "pytorch", "optimizer": "momentum", "lr": 0.001, "epochs": 50}),
    ("relu", {"model": "two_relu", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.001, "epochs": 60,
              "init a": 1, "init b": -40, "init c": 1.5, "init d": 1}),  # dead from the start
    ("dies", {"model": "two_relu", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.02, "epochs": 60,
              "init a": 1, "init b": -3, "init c": 1.5, "init d": 1}),  # dies during the run
    ("alive", {"model": "two_relu", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.001, "epochs": 60,
               "init a": 1, "init b": 5, "init c": 1, "init d": 1}),  # always on: acts as a line
    ("numeric", {"model": "linear", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.003, "epochs": 60,
                 "gradient": "both"}),
    ("blowup", {"model": "linear", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.05, "epochs": 60}),
    ("macro", {"model": "linear", "flavour": "graddesc", "optimizer": "adagrad", "lr": 0.1, "epochs": 60}),
    ("anneal", {"model": "linear", "flavour": "graddesc", "optimizer": "adagrad_ann", "lr": 2, "epochs": 60}),
    ("eve", {"model": "linear", "flavour": "graddesc", "optimizer": "eve", "lr": 0.5, "epochs": 60}),
    ("carry", {"model": "linear", "flavour": "graddesc", "optimizer": "momentum", "lr": 0.001, "epochs": 80}),
]
CLASSIFIER = [
    ("logit", {"model": "logistic", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.5, "epochs": 60}),
    ("hot", {"model": "logistic", "flavour": "pytorch", "optimizer": "sgd", "lr": 50, "epochs": 60}),  # saturates
]


def book(path: Path, experiments, y) -> Path:
    settings = sorted({k for _, s in experiments for k in s})
    rows = [["setting"] + [n for n, _ in experiments]]
    rows += [[k] + [s.get(k) for _, s in experiments] for k in settings]
    return write_book(path, {"data": [["x", "y"]] + [[float(a), float(b)] for a, b in zip(X, y)],
                             "experiments": rows})


def written(path: Path) -> dict[str, bytes]:
    """Every part of the package but what differs from run to run anyway: the run log's sheet
    (times) and the package's timestamps."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        workbook = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        rid = re.search(r'<sheet [^>]*name="runs"[^>]*r:id="([^"]+)"', workbook).group(1)
        target = re.search(rf'Id="{rid}"[^>]*Target="([^"]+)"|Target="([^"]+)"[^>]*Id="{rid}"', rels)
        runs = "xl/" + (target.group(1) or target.group(2)).lstrip("/").removeprefix("xl/")
        return {n: z.read(n) for n in names if n != runs and not n.startswith("docProps/")}


def run_both(tmp_path: Path, template: Path, monkeypatch) -> tuple[dict, dict, list, set]:
    """Both paths on copies of `template` (Reset, then Run): their workbooks, the Reset's reports
    and the experiments the new path recorded sampled."""
    import importlib

    train_module = importlib.import_module("sheetsync.engine.train")

    out, sampled = {}, set()
    real = train_module._train_sampled

    def spy(job, *a, **k):
        result = real(job, *a, **k)
        if result is not None:
            sampled.add(job.experiment.name)
        return result

    monkeypatch.setattr(train_module, "_train_sampled", spy)
    monkeypatch.setattr(record, "PLAN_CHUNK_STEPS", 100)  # several kernel calls: reductions across them
    first_reports = None
    for record_all in (True, False):
        path = tmp_path / f"{'all' if record_all else 'plan'}.xlsx"
        shutil.copy(template, path)
        monkeypatch.setattr(record, "RECORD_ALL", record_all)
        for action in ("reset", "run"):  # a Run continues from the saved state: epochs and steps go on
            report = runner.run(str(path), action=action)
            first_reports = first_reports or report.experiments
        out[record_all] = written(path)
    return out[True], out[False], first_reports, sampled


def same_parts(old: dict, new: dict) -> None:
    assert sorted(old) == sorted(new) and len(old) > 20  # every tab, its notes and charts
    differ = [n for n in old if old[n] != new[n]]
    assert not differ, f"parts written differently: {differ}"


@pytest.mark.parametrize("budget", [None, 30_000])
def test_regression_runs_write_the_same_workbook(tmp_path, monkeypatch, budget):
    """Every kind of run the brief names; the numeric gradients' gap sentence found in the loop."""
    if budget is not None:
        monkeypatch.setattr(budgets, "CELL_BUDGET", budget)
    template = book(tmp_path / "in.xlsx", REGRESSION, Y)
    old, new, reports, recorded_sampled = run_both(tmp_path, template, monkeypatch)
    same_parts(old, new)
    sampled = {r.name: r.sampled for r in reports}
    assert any(r.diverged for r in reports)  # the diverging run is among them
    assert all(sampled.values()) if budget else not any(sampled.values())
    assert recorded_sampled == ({"lin", "batch", "two", "carry", "numeric", "macro", "anneal", "eve", "relu",
                                 "dies", "alive"} if budget else set())
    said = {r.name: " ".join(r.notes) for r in reports}
    assert "dead from the start" in said["relu"] and "acted as the line" in said["alive"]
    assert "died at epoch" in said["dies"]
    assert any("Numeric against analytic gradients" in n for r in reports if r.name == "numeric" for n in r.notes)


@pytest.mark.parametrize("budget", [None, 8_000])
def test_classifier_and_formula_mode_write_the_same_workbook(tmp_path, monkeypatch, budget):
    if budget is not None:
        monkeypatch.setattr(budgets, "CELL_BUDGET", budget)
    experiments = CLASSIFIER + [("formulas", {"model": "linear", "flavour": "pytorch", "optimizer": "sgd",
                                              "lr": 0.003, "epochs": 20, "mode": "formulas"})]
    template = book(tmp_path / "in.xlsx", experiments, LABEL)
    old, new, reports, recorded_sampled = run_both(tmp_path, template, monkeypatch)
    same_parts(old, new)
    assert [r.sampled for r in reports] == ([True] * 3 if budget else [False] * 3)
    assert recorded_sampled == ({"logit", "hot", "formulas"} if budget else set())
    hot = " ".join(reports[1].notes)
    assert "Saturated logits" in hot and "Log of 0 avoided" in hot  # the sentences found in the loop


def test_runs_above_the_budget_record_a_fraction_of_their_lines(monkeypatch):
    """The point of it all: what a sampled run holds is the lines written, not every line."""
    exp = Experiment(model="linear", flavour="pytorch", optimizer="sgd", lr=0.003, epochs=500)
    result = train(exp, X, Y, plan=RecordPlan(50_000))
    full = train(exp, X, Y)
    assert result.sampled and result.total_steps == len(full.steps) == 500 * ROWS
    assert len(result.steps) < len(full.steps) / 10
    lines = np.arange(3, result.total_steps, 101)
    result.record_lines(lines)  # recorded later by running the loop again: the same bits
    pd.testing.assert_frame_equal(result.steps.iloc[result.position(lines)].reset_index(drop=True),
                                  full.steps.iloc[lines].reset_index(drop=True))
    for c in ("epoch", "step", "row"):
        assert np.array_equal(result.counter(c), full.column("steps", c))


def test_a_diverging_run_is_recorded_whole():
    exp = Experiment(model="linear", flavour="pytorch", optimizer="sgd", lr=0.05, epochs=500)
    result = train(exp, X, Y, plan=RecordPlan(1_000))
    assert result.diagnostics.divergence is not None and not result.sampled


def test_sample_lines_over_an_epoch_column_is_sample_lines_over_the_epoch_starts():
    epoch = np.repeat(np.arange(1, 8), 13)
    for allowed in (5, 20, 40, 91, 200):
        rows, k = sample_lines(len(epoch), epoch_starts(epoch), allowed, [17])
        lines, k2 = sample_lines(len(epoch), np.arange(0, len(epoch), 13), allowed, [17])
        assert np.array_equal(rows, lines) and k == k2


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_complete_lines_are_the_lines_of_every_line(batch):
    """A sampled run's structure for the map (record.CompleteLines) equals `Lines` over the
    complete table, attribute by attribute."""
    from sheetsync.layout.formulas import Lines

    exp = Experiment(model="linear", flavour="pytorch", optimizer="sgd", lr=0.003, epochs=30, batch_size=batch)
    first = train(exp, X, Y)
    sampled = train(exp, X, Y, first.state, plan=RecordPlan(1_000))  # a second Run: epochs and steps go on
    full = train(exp, X, Y, first.state)
    assert sampled.sampled
    lines = sampled.counters.lines(4)
    expected = Lines(full.column("steps", "epoch"), full.column("steps", "step"), 4)
    everything = np.arange(len(full.steps))
    for name in ("epoch", "step", "batch_start", "batch_end", "epoch_start", "prev_end", "last_of_prev_epoch"):
        got = getattr(lines, name)
        assert np.array_equal(got[everything], getattr(expected, name)), name
    assert np.array_equal(lines.prev_end < 0, expected.prev_end < 0)
    assert np.array_equal(lines.prev_end >= 0, expected.prev_end >= 0)
    assert np.array_equal(lines.last_of_prev_epoch < 0, expected.last_of_prev_epoch < 0)
    assert int(lines.epoch[np.int64(45)]) == int(expected.epoch[45]) and lines.row(7) == expected.row(7)


def test_a_sampled_run_that_diverges_past_the_memory_budget_is_refused_naming_epochs(monkeypatch):
    from sheetsync.errors import SettingError

    monkeypatch.setattr(budgets, "MEMORY_BUDGET", 1_000)
    exp = Experiment(model="linear", flavour="pytorch", optimizer="sgd", lr=0.05, epochs=500)
    with pytest.raises(SettingError) as caught:
        train(exp, X, Y, plan=RecordPlan(1_000))
    assert caught.value.setting == "epochs" and "diverged after" in str(caught.value)


def test_held_bytes_is_what_a_sampled_run_holds():
    from sheetsync.engine.loop.spec import build_spec

    linear = build_spec(Experiment(model="linear", flavour="pytorch", optimizer="sgd", epochs=10), 1_000_000, 1)
    every = 10_000_000 * len(linear.step_columns()) * 8
    assert every > budgets.MEMORY_BUDGET  # what parsing refused
    held = record.held_bytes(linear, 1_000_000, 10, budgets.CELL_BUDGET)
    assert held == (1_000_000 * len(linear.step_columns()) + budgets.CELL_BUDGET) * 8 < budgets.MEMORY_BUDGET
    # ReLU units over two inputs: every data row decides whether a unit is on, so every line is kept
    relu = build_spec(Experiment(model="mlp", flavour="pytorch", optimizer="sgd", epochs=10), 1_000_000, 2)
    assert record.held_bytes(relu, 1_000_000, 10, budgets.CELL_BUDGET) == 10_000_000 * len(relu.step_columns()) * 8


def test_a_sampled_result_pickles_with_the_lines_it_holds():
    import pickle

    exp = Experiment(model="linear", flavour="pytorch", optimizer="sgd", lr=0.003, epochs=100)
    result = train(exp, X, Y, plan=RecordPlan(5_000))
    copy = pickle.loads(pickle.dumps(result))
    assert copy.sampled and np.array_equal(copy.step_lines, result.step_lines)
    pd.testing.assert_frame_equal(copy.steps, result.steps)
    copy.record_lines(result.step_lines[:3])  # held already
    with pytest.raises(ValueError):
        copy.record_lines([1])


@pytest.mark.parametrize("lab", ["embeddings", "outputs"])
def test_the_labs_write_the_same_workbook_above_a_lowered_budget(tmp_path, monkeypatch, lab):
    """dot_product (the embeddings lab) and the outputs lab's classifiers and heads, recorded
    whole or sampled as each allows, write what recording every line wrote."""
    from sheetsync.demo import demo_runs, write_demo

    monkeypatch.setattr(budgets, "CELL_BUDGET", 20_000)
    template = write_demo(tmp_path / "in.xlsx", lab=lab)
    out = {}
    for record_all in (True, False):
        path = tmp_path / f"{record_all}.xlsx"
        shutil.copy(template, path)
        monkeypatch.setattr(record, "RECORD_ALL", record_all)
        for data_tab, experiments_tab in demo_runs(lab):
            runner.run(str(path), data_tab=data_tab, experiments_tab=experiments_tab)
        out[record_all] = written(path)
    same_parts(out[True], out[False])


@pytest.mark.parametrize("chunk", [40, 120, 100_000])
def test_dead_units_found_in_the_loop_are_those_found_over_every_line(monkeypatch, chunk):
    """Across kernel calls of `chunk` lines: the same sentences, whether a unit died in a call's
    last batch, its first, or never lived."""
    from sheetsync.engine import train as _  # noqa: F401

    monkeypatch.setattr(record, "PLAN_CHUNK_STEPS", chunk)
    for b in (-40.0, -3.0, -1.0, 0.5, 5.0):
        for lr in (0.001, 0.004, 0.01, 0.02):
            exp = Experiment(model="two_relu", flavour="pytorch", optimizer="sgd", lr=lr, epochs=30,
                             init={"a": 1.0, "b": b, "c": 1.5, "d": 1.0})
            sampled = train(exp, X, Y, plan=RecordPlan(1_000), find_safe_lr=False)
            full = train(exp, X, Y, find_safe_lr=False)
            assert sampled.sampled or full.diagnostics.divergence is not None
            assert sampled.diagnostics.notes == full.diagnostics.notes, (b, lr)
            assert sampled.diagnostics.dead == full.diagnostics.dead


def test_a_unit_that_dies_on_a_kernel_calls_first_batch_is_found_there():
    """record.Reductions across calls: alive at the last update of one call, dead from the first
    of the next (and after every update of a call after that)."""
    from sheetsync.engine.loop.spec import build_spec

    spec = build_spec(Experiment(model="two_relu", flavour="pytorch", optimizer="sgd"), ROWS, 1)
    cols = spec.step_columns()
    reductions = record.Reductions(spec, cols, X[:, None])
    alive_after = [True] * 40 + [False] * 80  # three calls of one 40-line epoch each
    base = 0
    for call in range(3):
        lines = np.zeros((40, len(cols)))
        lines[:, cols.index("step")] = np.arange(base, base + 40) + 1
        on = np.array(alive_after[base:base + 40])
        lines[:, cols.index("new a")] = 1.0
        lines[:, cols.index("new b")] = np.where(on, 1.0, -100.0)  # a·x + b on a data row or on none
        lines[:, cols.index("a")], lines[:, cols.index("b")] = 1.0, 1.0
        reductions.take(lines, base)
        base += 40
    assert reductions.reduced()["death"]["u"] == (40, 40)  # the second call's first batch
    assert set(reductions.named_rows()) == {0, 40}  # the first line (dead from the start?) and the death
