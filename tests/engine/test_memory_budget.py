"""The memory budget: a run inside the compute budget whose recorded steps would not fit in
memory is refused before training, naming the experiment's `epochs` cell."""

from __future__ import annotations

import time

import numpy as np
import openpyxl
import pytest

import sheetsync
from sheetsync import budgets
from sheetsync.errors import InputError


def book(tmp_path, epochs, rows=5000):
    x = np.arange(rows) % 97
    wb = openpyxl.Workbook()
    wb.active.title = "data"
    wb.active.append(["x", "y"])
    for v in x:
        wb.active.append([int(v), int(2 * v + 30)])
    experiments = wb.create_sheet("experiments")
    experiments.append(["setting", "small", "big"])
    experiments.append(["epochs", 5, epochs])
    wb.save(tmp_path / "book.xlsx")
    return tmp_path / "book.xlsx"


@pytest.fixture(autouse=True)
def recorded_whole(monkeypatch):
    """Runs recorded whole (a run over the cell budget is otherwise recorded sampled and holds
    far less: tests/test_record_plan.py)."""
    from sheetsync.engine import record

    monkeypatch.setattr(record, "RECORD_ALL", True)


def test_a_run_inside_the_compute_budget_that_would_exhaust_memory_is_refused(tmp_path):
    # 5,000 rows × 20,000 epochs: 100 million step lines, ~13 GB held; the compute budget allows it
    path = book(tmp_path, 20_000)
    started = time.monotonic()
    with pytest.raises(InputError) as raised:
        sheetsync.run(str(path))
    assert time.monotonic() - started < 5  # refused, not attempted
    [problem] = raised.value.problems
    assert problem.cell == "experiments!C2"  # big's epochs
    assert "GiB of memory" in problem.message and "lower epochs" in problem.message
    assert "compute" not in problem.message


def test_the_budget_counts_every_step_column(tmp_path):
    # linear, graddesc sgd with gradient both: 16 step columns; just under and just over
    lines = budgets.MEMORY_BUDGET // (16 * 8)
    fits = (lines - 5 * 5000) // 5000
    with pytest.raises(InputError):
        sheetsync.run(str(book(tmp_path, fits + 1)))
    report = sheetsync.run(str(book(tmp_path, 2)))
    assert [e.epochs_run for e in report.experiments] == [5, 2]
