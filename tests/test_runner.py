"""The Run and Reset buttons on a whole sheet, through an in-memory backend.

(The same flow through real .xlsx files is in test_workbook.py.)
"""

import numpy as np
import pytest

from memory_backend import MemoryBackend
from sheetsync import Experiment, train
from sheetsync.demo import X, Y, demo_tabs
from sheetsync.errors import InputError, OwnershipError, SettingError
from sheetsync.runner import run


def epochs_table(backend, name):
    from sheetsync.layout.epochs import HEADER_ROW

    grid = backend.grids[f"{name} epochs"]
    head = grid[HEADER_ROW]
    header = head[:head.index(None)] if None in head else head
    rows = [r[:len(header)] for r in grid[HEADER_ROW + 1:] if r[0] is not None]
    return header, rows


def test_run_then_run_again_equals_one_long_run():
    backend = MemoryBackend(demo_tabs())
    run("mem", backend=backend)
    report = run("mem", backend=backend)
    assert [e.start for e in report.experiments] == ["continued"] * 4
    header, rows = epochs_table(backend, "momentum")
    assert [r[0] for r in rows] == list(range(1, 11))
    long = train(Experiment("momentum", optimizer="momentum", epochs=10), np.array(X, float), np.array(Y, float))
    a = header.index("a")
    assert [r[a] for r in rows] == list(long.epochs["a"])
    assert report.experiments[1].params == long.params


def test_reset_starts_again_and_the_history_with_it():
    backend = MemoryBackend(demo_tabs())
    first = run("mem", backend=backend)
    run("mem", backend=backend)
    report = run("mem", backend=backend, action="reset", experiments=["basic"])
    assert [e.name for e in report.experiments] == ["basic"]
    assert report.experiments[0].params == first.experiments[0].params
    _, rows = epochs_table(backend, "basic")
    assert len(rows) == 5
    _, other = epochs_table(backend, "adam")  # not run: its tab and history stay
    assert len(other) == 10
    compare = backend.grids["compare"]
    assert compare[0][:5] == ["epoch", "basic loss", "momentum loss", "adam loss", "relu loss"]


def test_changing_the_model_resets_and_says_so_but_a_new_lr_continues():
    tabs = demo_tabs()
    backend = MemoryBackend(tabs)
    run("mem", backend=backend)
    exps = backend.grids["experiments"]
    exps[4][1] = 0.0002  # basic: new lr
    exps[1][2] = "two_linear"  # momentum: new model
    report = run("mem", backend=backend)
    basic, momentum = report.experiments[:2]
    assert basic.start == "continued" and basic.total_epochs == 10
    assert momentum.start.startswith("reset: model, params changed") and momentum.total_epochs == 5


def test_changed_data_resets():
    backend = MemoryBackend(demo_tabs())
    run("mem", backend=backend)
    backend.grids["data"][3][1] = 1000
    report = run("mem", backend=backend, experiments=["adam"])
    assert "the data changed" in report.experiments[0].start


def test_input_errors_write_only_the_run_log():
    tabs = demo_tabs()
    tabs["data"][6][0] = "abc"
    backend = MemoryBackend(tabs)
    with pytest.raises(InputError) as info:
        run("mem", backend=backend)
    assert str(info.value) == "data!A7: expected a number, found 'abc'"
    assert [t.name for t in backend.plans[0].tabs] == ["runs"]
    log = backend.grids["runs"]
    assert log[1][5] == "input errors" and "data!A7" in log[1][6]


def test_a_user_tab_with_an_output_name_stops_the_run_before_anything_is_written():
    tabs = demo_tabs()
    tabs["basic steps"] = [["my own notes"]]
    backend = MemoryBackend(tabs)
    with pytest.raises(OwnershipError, match="'basic steps' was not created by sheetsync"):
        run("mem", backend=backend)
    assert backend.plans == [] and backend.grids["basic steps"] == [["my own notes"]]


def test_progress_reports_every_step_of_every_experiment():
    seen = []
    run("mem", backend=MemoryBackend(demo_tabs()), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4 * 5 * 29, 4 * 5 * 29)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))


def test_two_read_rounds_at_most():
    backend = MemoryBackend(demo_tabs())
    run("mem", backend=backend)
    assert backend.reads == 1  # nothing to continue: one round
    run("mem", backend=backend)
    assert backend.reads == 3  # inputs + state, then the epochs histories


def test_the_history_budget_counts_the_epochs_already_run(monkeypatch):
    from sheetsync import budgets

    monkeypatch.setattr(budgets, "EPOCHS_CELL_BUDGET", 800)  # 100 epochs of a, b and 6 more
    tabs = demo_tabs()
    tabs["experiments"] = [["", "e"], ["epochs", 60]]
    backend = MemoryBackend(tabs)
    run("mem", backend=backend)
    with pytest.raises(InputError, match="epochs history would need 960 cells"):
        run("mem", backend=backend)
    report = run("mem", backend=backend, action="reset")
    assert report.experiments[0].total_epochs == 60


def test_above_the_cell_budget_steps_are_sampled_and_say_so(monkeypatch):
    from sheetsync import budgets

    monkeypatch.setattr(budgets, "CELL_BUDGET", 6000)
    tabs = demo_tabs()
    tabs["experiments"] = [["", "long"], ["epochs", 40]]
    backend = MemoryBackend(tabs)
    report = run("mem", backend=backend)
    assert report.experiments[0].sampled
    steps = backend.grids["long steps"]
    assert steps[0][0].splitlines()[1].startswith("SAMPLED:")
    written = [r for r in steps[3:] if r[0] is not None]
    assert 10 < len(written) < 40 * 29
    _, epochs = epochs_table(backend, "long")
    assert len(epochs) == 40  # the epochs tab is never sampled


def test_a_diverged_run_is_a_result_and_the_next_run_starts_again_from_init():
    tabs = demo_tabs()
    tabs["experiments"] = [["", "hot"], ["lr", 0.01], ["epochs", 3]]
    backend = MemoryBackend(tabs)
    first = run("mem", backend=backend).experiments[0]
    assert first.diverged.startswith("DIVERGED at epoch 1, step 7") and first.epochs_run == 1
    assert first.diagnostics["safe_lr"] is not None and first.diagnostics["safe_lr"] < 0.01
    steps = backend.grids["hot steps"]
    assert "Diverged at epoch 1, step 7" in steps[0][0]
    again = run("mem", backend=backend).experiments[0]
    assert again.start == "reset: the last run diverged; this Run started again from the init values"
    assert again.diagnostics["restarted"] == "the last run diverged; this Run started again from the init values"
    assert any("started again from the init values" in n for n in again.notes)
    assert "started again from the init values" in backend.grids["runs"][2][6]
    _, rows = epochs_table(backend, "hot")
    assert [r[0] for r in rows] == [1]  # the history started again too


def test_the_other_tabs_of_a_spreadsheet_count_against_its_cells(monkeypatch):
    from sheetsync import budgets

    monkeypatch.setattr(budgets, "SPREADSHEET_CELLS", 40_000)
    tabs = demo_tabs()
    tabs["big notes"] = [[1] * 100] * 150  # 15,000 cells of the user's
    backend = MemoryBackend(tabs)
    report = run("mem", backend=backend)
    assert all(e.sampled for e in report.experiments)
    total = sum(len(g) * max(len(r) for r in g) for g in backend.grids.values())
    assert 35_000 < total <= 40_000  # sampling kept the whole spreadsheet inside its limit


def test_a_mode_given_to_run_overrides_the_sheets_setting():
    backend = MemoryBackend(demo_tabs())
    run("mem", backend=backend, experiments=["basic"], mode="formulas")
    steps = backend.plans[-1].tabs[0]
    pred = next(c for c in steps.tables[0].columns if c.header == "pred")
    assert pred.formulas[0].startswith("=")
    with pytest.raises(SettingError, match="mode"):
        run("mem", backend=backend, mode="pictures")
