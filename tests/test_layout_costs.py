"""Costs that must not grow with what is computed (issue 17), with the same output as before.

- The map's boundary rows are decided once per kind of line, not once per epoch: its text must
  be exactly what the per-line definition (`per_line_boundary`, the map as it was) gives, for
  every flavour, macro, batch size and a continued Run, and the work must not grow with epochs.
- The run log is rendered column by column: the same cells as row by row.
"""

import time

import numpy as np
import pandas as pd
import pytest

from sheetsync import Experiment, train
from sheetsync.layout.formulas import StepFormulas
from sheetsync.layout.map import MAX_BOUNDARY_ROWS, _typical_line, map_rows, to_r1c1
from sheetsync.layout.runs import MAX_LOG_ROWS, RUNS_HEADER, LogAsRead, RunEntry, render_runs
from sheetsync.layout.tables import read_table

X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
XS = [x / 100 for x in X]
YS = [round(2 * v + 0.3, 6) for v in XS]
X2 = [[x / 100, ((7 * i) % 11) / 10] for i, x in enumerate(X)]
Y2 = [round(2 * a - b + 0.3, 6) for a, b in X2]


def per_line_boundary(sf, column, typical):
    """The map's boundary rows as first written: every special line's formula, one by one."""
    lines = sf.lines
    notes = []
    special = np.flatnonzero((lines.prev_end < 0) | lines.epoch_start)
    for i in map(int, special):
        f = sf.formula(i, column)
        if f is None or (typical is not None and to_r1c1(f, lines.row(i), sf.columns.index(column)) ==
                         to_r1c1(typical, lines.row(_typical_line(sf)), sf.columns.index(column))):
            continue
        why = "first step of this Run: reads the saved state" if lines.prev_end[i] < 0 else \
            f"first row of epoch {int(lines.epoch[i])}"
        if sf.carried(i) is not None and lines.prev_end[i] >= 0:
            why += ": reads values the workbook's macro pasted"
        elif (lines.prev_end[i] >= 0 and lines.epoch_start[i] and column in sf.program.param_columns
              and sf.spec.carry_inputs):
            why += ": the last row's inputs (the workbook throws that row's update away)"
        notes.append(f"row {lines.row(i)} ({why}): {f}")
    if len(notes) > MAX_BOUNDARY_ROWS:
        notes = notes[:MAX_BOUNDARY_ROWS] + [f"… {len(notes) - MAX_BOUNDARY_ROWS} more epoch starts, same pattern"]
    return notes


E = 11  # epochs: more epoch starts than the map lists
CASES = {
    **{f"graddesc {o}": (dict(optimizer=o), X, [2 * x + 30 for x in X])
       for o in ("sgd", "momentum", "rmsprop", "adam", "adam_ann", "eve", "adagrad", "adagrad_ann")},
    "pytorch sgd batch 4": (dict(flavour="pytorch", optimizer="sgd", momentum=0.9, lr=0.05, batch_size=4), XS, YS),
    "pytorch adam batch 5 relu": (dict(flavour="pytorch", optimizer="adam", model="two_relu", lr=0.01,
                                       batch_size=5), XS, YS),
    "pytorch adagrad batch all": (dict(flavour="pytorch", optimizer="adagrad", lr=0.1, batch_size="all"), XS, YS),
    "pytorch rmsprop numeric": (dict(flavour="pytorch", optimizer="rmsprop", centered=True, lr=0.01,
                                     gradient="both"), XS, YS),
    "fastai adam": (dict(flavour="fastai", optimizer="adam", lr=0.05), XS, YS),
    "mlp batch 3": (dict(flavour="pytorch", optimizer="adam", model="mlp", hidden=3, lr=0.02, batch_size=3), X2, Y2),
    "one data row": (dict(optimizer="adagrad"), [0.5], [1.3]),
}


def formulas_for(settings, x, y, block, continued):
    exp = Experiment("e", epochs=E, **settings)
    result = train(exp, x, y)
    if continued:  # a second Run: it starts from the saved state
        result = train(Experiment("e", epochs=E, **settings), x, y, state=result.state)
    cols = "AB" if np.ndim(x[0]) == 0 else "CDE"
    names = ["x", "y"] if len(cols) == 2 else ["x1", "x2", "y"]
    return StepFormulas(result, lambda i, n: f"data!{cols[names.index(n)]}{i + 2}",
                        {"lr": "experiments!B5", "momentum": "experiments!B6"}, 4, settings_block=block)


@pytest.mark.parametrize("continued", [False, True], ids=["first Run", "second Run"])
@pytest.mark.parametrize("block", [False, True], ids=["values", "settings block"])
@pytest.mark.parametrize("case", list(CASES))
def test_map_text_is_what_the_per_line_map_wrote(case, block, continued):
    settings, x, y = CASES[case]
    sf = formulas_for(settings, x, y, block, continued)
    rows = map_rows(sf, "e steps")
    t = _typical_line(sf)
    listed = 0
    for r in rows:
        c = r["column"]
        f = sf.formula(t, c)
        want = per_line_boundary(sf, c, f) if f and c not in sf.program.input_columns else []
        assert r["boundary rows"] == "\n".join(want), (case, c)
        listed += len(want)
    assert listed > 0


def test_the_map_does_not_grow_with_epochs():
    """Formula calls for the boundary rows: the same at 10 and at 2,000 epochs."""
    calls = {}
    for epochs in (10, 2000):
        sf = StepFormulas(train(Experiment("e", optimizer="adagrad", epochs=epochs), X, [2 * x + 30 for x in X]),
                          lambda i, n: f"data!A{i + 2}", {"lr": "experiments!B5"}, 4)
        count = [0]
        formula = sf.formula

        def counted(i, c, formula=formula):
            count[0] += 1
            return formula(i, c)

        sf.formula = counted
        rows = map_rows(sf, "e steps")
        calls[epochs] = count[0]
        assert any("more epoch starts, same pattern" in r["boundary rows"] for r in rows)
    assert calls[2000] == calls[10], calls


# -- the run log ----------------------------------------------------------------------------------

def per_row_log(previous, entry):
    """The run log's cells as first written: row by row through iterrows."""
    rows = []
    if previous is not None and not previous.empty:
        for _, r in previous.iterrows():
            rows.append(["" if r.get(h) is None else str(r.get(h)) for h in RUNS_HEADER])
    rows.append(entry.row())
    return rows[-MAX_LOG_ROWS:]


def logs():
    entry = RunEntry("run", ["a", "b"], "h", ["graddesc", "pytorch"], "ok", ["a: first run", "warning: x"])
    mixed = pd.DataFrame([["2026-01-01T00:00:00+00:00", "run", "a", "h1", "graddesc", "ok", "line1\nline2"],
                          ["2026-01-02T00:00:00+00:00", "reset", None, 7, None, "input errors", 3.5],
                          [None, "push", "a, b", "", "pytorch", None, ""]], columns=RUNS_HEADER)
    old = pd.DataFrame({"when (UTC)": ["t1"], "action": ["run"], "experiments": ["a"]})  # an older version's log
    extra = mixed.assign(note=["x", "y", "z"])  # a column the log does not write
    full = pd.DataFrame([entry.row()] * (MAX_LOG_ROWS + 3), columns=RUNS_HEADER)
    full["when (UTC)"] = [f"t{i}" for i in range(len(full))]
    return {"none": None, "empty": pd.DataFrame(), "mixed": mixed, "old columns": old, "extra column": extra,
            "over the cap": full}, entry


def as_read(frame):
    """A log as the backend reads it back: its cells, the header row first."""
    if frame is None:
        return None
    return [list(frame.columns)] + frame.astype(object).values.tolist()


@pytest.mark.parametrize("name", list(logs()[0]))
def test_run_log_writes_the_same_cells(name):
    previous, entry = logs()[0][name], logs()[1]
    tab = render_runs(as_read(previous), entry)
    want = per_row_log(read_table(as_read(previous)).frame(), entry)  # as a DataFrame, row by row
    columns = tab.tables[0].columns
    assert [c.header for c in columns] == RUNS_HEADER
    got = [[c.values[k] for c in columns] for k in range(len(columns[0].values))]
    assert got == want
    assert all(type(v) is str for row in got for v in row)


def test_run_log_at_its_cap_renders_only_this_runs_row_when_it_appends():
    """The cost of the log does not grow with the rows it holds (bench/run_log.py times it): a
    log the backend appends to is rendered as this run's row alone, below the rows it has."""
    entry = RunEntry("run", ["a"], "h")
    for held in (0, 1, MAX_LOG_ROWS):
        tab = render_runs(LogAsRead(append_after=held), entry)
        assert tab.append_after == held and tab.log
        assert [c.values for c in tab.tables[0].columns] == [[v] for v in entry.row()]


# -- progress over every phase --------------------------------------------------------------------

def test_progress_reports_each_phase_in_order_and_old_callbacks_hear_training_only():

    from memory_backend import MemoryBackend
    from sheetsync import run
    from sheetsync.demo import demo_tabs

    phased, legacy = [], []
    run("mem", backend=MemoryBackend(demo_tabs()), progress=lambda d, t, phase: phased.append((phase, d, t)))
    run("mem", backend=MemoryBackend(demo_tabs()), progress=lambda d, t: legacy.append((d, t)))
    order = list(dict.fromkeys(p for p, _, _ in phased))
    assert order == ["read", "train", "layout", "write"]
    for phase in order:
        ends = [(d, t) for p, d, t in phased if p == phase]
        assert ends[-1][0] == ends[-1][1] > 0, phase  # each phase reaches its total
    assert legacy == [(d, t) for p, d, t in phased if p == "train"]
    assert legacy[-1] == (4 * 5 * 29, 4 * 5 * 29)


def test_cli_progress_is_a_bar_per_phase_and_json_lines_with_json(monkeypatch):
    import io
    import json
    import sys

    from sheetsync import cli

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    bar = cli._ProgressBar(enabled=True)
    bar.DELAY = 0
    bar(10, 100)
    bar(100, 100)
    bar(0, 1, "write")
    bar(1, 1, "write")
    bar.close()
    assert "training" in err.getvalue() and "100/100" in err.getvalue() and "write" in err.getvalue()
    err = Terminal()  # a phase that blocks (one call at its start) shows up once it takes a while
    monkeypatch.setattr(sys, "stderr", err)
    bar = cli._ProgressBar(enabled=True)
    bar.DELAY = 0.05
    bar(0, 1, "write")
    time.sleep(0.4)
    assert "write" in err.getvalue()
    bar.close()
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    events = cli._ProgressBar(enabled=False, as_json=True)
    events.DELAY = 0
    events(5, 10, "train")
    events(10, 10, "train")
    events(1, 1, "write")
    lines = [json.loads(line) for line in err.getvalue().splitlines()]
    assert lines[-1] == {"progress": {"phase": "write", "done": 1, "total": 1}}
    assert {"progress": {"phase": "train", "done": 10, "total": 10}} in lines


def test_formula_mode_over_the_cell_budget_builds_no_formulas(monkeypatch):
    """Steps that will be sampled whatever else is written get no formulas built (they would be
    thrown away): a note says values were written; under the budget formulas are written."""

    from memory_backend import MemoryBackend
    from sheetsync import budgets, run
    from sheetsync.demo import demo_tabs

    built = []
    original = StepFormulas.all
    monkeypatch.setattr(StepFormulas, "all", lambda self: built.append(1) or original(self))
    tabs = demo_tabs()
    tabs["experiments"].append(["mode"] + ["formulas"] * (len(tabs["experiments"][0]) - 1))
    report = run("mem", backend=MemoryBackend(tabs))
    assert len(built) == 4 and not any("over the cell budget" in n for e in report.experiments for n in e.notes)
    # each experiment's steps fit the budget alone, not all four together: all are sampled
    from sheetsync.layout.steps import steps_cells

    sizes = [steps_cells(train(Experiment(n, **{k: v for k, v in zip([r[0] for r in tabs["experiments"]][1:],
                                                                       [r[j] for r in tabs["experiments"]][1:])
                                                 if v is not None and not k.startswith("init")}),
                               [r[0] for r in tabs["data"][1:]], [r[1] for r in tabs["data"][1:]]))
             for j, n in enumerate(tabs["experiments"][0][1:], start=1)]
    budget = max(sizes) + 1
    assert budget < sum(sizes)
    monkeypatch.setattr(budgets, "CELL_BUDGET", budget)
    report = run("mem", backend=MemoryBackend(tabs), action="reset")
    assert len(built) == 4
    assert all(e.sampled for e in report.experiments)
    assert all(any(f"are over the cell budget of {budget:,}, so they are sampled and values were written" in n
                   for n in e.notes) for e in report.experiments)


@pytest.mark.parametrize("continued", [False, True], ids=["first Run", "second Run"])
@pytest.mark.parametrize("case", list(CASES))
def test_formula_mode_columns_are_each_cells_own_formula(case, continued):
    """`all()` builds whole columns at once (templates, one data formula per data row): every
    cell must still be the formula `formula(i, column)` gives for that cell alone."""
    settings, x, y = CASES[case]
    sf = formulas_for(settings, x, y, True, continued)
    columns = sf.all()
    for c in sf.columns:
        assert columns[c] == [sf.formula(i, c) for i in range(len(sf.lines.step))], (case, c)
