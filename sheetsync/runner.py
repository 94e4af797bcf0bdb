"""`run`: one press of the Run (or Reset) button on a whole sheet.

read → parse → train each experiment → layout → one atomic write. The entry points (Python API,
CLI, server, scheduler) all call this and only report what it returns.

Reading takes one round for the inputs, the run log and the saved state, and a second round
for the `NAME epochs` histories when a run continues (their names are known only once the
experiments tab has been read). A run whose inputs have problems writes the run log alone and
raises the `InputError`; a clash with a tab the user owns writes nothing at all.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from . import budgets
from .a1 import FIXED_TABS, RUNS_TAB, STATE_TAB, epochs_tab_name, experiment_tabs, steps_tab_name
from .backends.base import Snapshot
from .engine import State, train
from .engine.record import RecordPlan
from .engine.result import Columns
from .engine.train import RESTARTED
from .errors import BackendError, InputError, OwnershipError
from .layout import ExperimentOutput, RunEntry, SavedState, log_only_plan, merge_history, render
from .layout.runs import first_read, log_as_read
from .layout.state import read_state, settings_hash, signature
from .layout.steps import divergence_sentence, steps_cells
from .layout.epochs import epochs_so_far, read_history, with_start_rmse
from .layout.tables import read_table, result_table
from .locks import one_writer
from .parse import DATA_TAB, EXPERIMENTS_TAB, parse_inputs
from .parse.inputs import Inputs, factor_ranges, model_params
from .parse.ratings import factor_tabs

ACTIONS = ("run", "reset")


@dataclass
class ExperimentReport:
    """What a run did to one experiment (the CLI's lines, the JSON report's entries)."""

    name: str
    start: str  # "continued" | "reset" | "first run" | "reset: <why>"
    epochs_run: int
    total_epochs: int
    loss: float | None  # last epoch's loss
    params: dict[str, float]
    diverged: str | None = None
    notes: list[str] = field(default_factory=list)
    sampled: bool = False
    sqrt_sum_err2: float | None = None  # the workbook's "error" cell: sqrt(sum err²) of the last epoch
    diagnostics: dict[str, Any] = field(default_factory=dict)  # safe_lr, onset, dead units, …
    accuracy: float | None = None  # classifiers: the last epoch's share of rows predicted right
    rmse: float | None = None  # dot_product: the last epoch's RMSE over every rating (Jeremy's sheet's cell)


@dataclass
class RunReport:
    """What a run did: its experiments, warnings and the tabs it wrote."""

    target: str
    action: str
    experiments: list[ExperimentReport]
    warnings: list[str]
    data_hash: str
    tabs_written: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@one_writer
def run(target: str, *, experiments: list[str] | None = None, action: str = "run", backend=None,
        progress: Callable[..., None] | None = None, data_tab: str = DATA_TAB,
        experiments_tab: str = EXPERIMENTS_TAB, credentials: str | None = None,
        mode: str | None = None, force: bool = False) -> RunReport:
    """Run (continue from saved state) or reset the sheet's experiments (all, or `experiments`).

    One writer at a time per workbook, from the first read to the write (`one_writer`); `force`
    writes even while the workbook is open in LibreOffice or Excel.

    `mode` ("values" or "formulas"), when given, overrides every experiment's own `mode` setting.
    `progress(done, total, phase)` hears each phase ("read", "train", "layout", "write"); a
    callback taking only `(done, total)` hears the training steps, as it always did.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    started = time.perf_counter()
    if backend is None:
        from .backends import open_backend

        backend = open_backend(target, credentials)
    tell = _phases(progress)
    tell("read", 0, 1)
    snapshot = first_read(backend, [data_tab, experiments_tab, RUNS_TAB, STATE_TAB])  # the log's header alone
    _check_owned(snapshot, list(FIXED_TABS))
    previous_runs = log_as_read(backend, snapshot)  # read whole only when it must be written whole
    saved = read_state(_owned_table(snapshot, STATE_TAB))
    history_lengths = {n: s.state.get("epoch", 0) for n, s in saved.items()} if action == "run" else {}
    try:
        inputs = parse_inputs(snapshot, data_tab=data_tab, experiments_tab=experiments_tab,
                              only=experiments, previous_epochs=history_lengths)
    except InputError as e:
        _log_problems(backend, action, experiments, e, previous_runs)
        raise
    if mode is not None:
        inputs.experiments = [e.replace(mode=mode) for e in inputs.experiments]
    names = [e.name for e in inputs.experiments]
    _check_owned(snapshot, [t for n in names for t in experiment_tabs(n)])
    starting_over = set(names) if action == "reset" else set()  # their history is not needed
    histories, more = _read_more(backend, snapshot, [n for n in inputs.all_names if n not in starting_over],
                                 factor_tabs(inputs.experiments) if inputs.dataset.ratings else [])
    if more is not None:  # dot_product: starting factors from the ranges the experiments name
        try:
            factor_ranges(inputs, more, experiments_tab)
        except InputError as e:
            _log_problems(backend, action, experiments, e, previous_runs)
            raise
    tell("read", 1, 1)
    outputs, reports = _train_all(inputs, saved, histories, action, tell)
    _formulas_and_maps(outputs, inputs, tell)
    entry = _run_entry(action, inputs, reports)
    others = {n: h for n, h in histories.items() if n not in names}
    plan = render(outputs, x=inputs.dataset.train_x(), y=inputs.dataset.y, other_histories=others,
                  states=saved, entry=entry, previous_runs=previous_runs, order=inputs.all_names,
                  cell_budget=_cell_budget(snapshot, names))
    tell("layout", len(outputs) + 1, len(outputs) + 1)
    _what_was_laid_out(reports, plan)
    tell("write", 0, 1)
    backend.apply(plan)
    tell("write", 1, 1)
    return RunReport(target, action, reports, inputs.warnings, inputs.dataset.fingerprint(),
                     [t.name for t in plan.tabs], round(time.perf_counter() - started, 3))


# ---------------------------------------------------------------------------------------------


def _phases(progress) -> Callable[[str, int, int], None]:
    """report(phase, done, total) for `progress`: with the phase if it takes one, else the
    training steps alone (a callback written for `progress(done, total)`)."""
    if progress is None:
        return lambda phase, done, total: None
    try:
        inspect.signature(progress).bind(0, 0, "train")
    except (TypeError, ValueError):  # takes (done, total), or has no signature to inspect
        return lambda phase, done, total: progress(done, total) if phase == "train" else None
    return lambda phase, done, total: progress(done, total, phase)


def _log_problems(backend, action: str, experiments, error: InputError, previous_runs) -> None:
    """Bad input writes the run log alone, so the sheet itself says why nothing else changed."""
    entry = RunEntry(action, list(experiments or []), outcome="input errors",
                     messages=[str(p) for p in error.problems])
    try:
        backend.apply(log_only_plan(entry, previous_runs))
    except BackendError:  # a read-only workbook: the problems matter more than the log
        pass


def _train_all(inputs: Inputs, saved: dict[str, SavedState], histories: dict[str, Columns],
               action: str, progress) -> tuple[list[ExperimentOutput], list[ExperimentReport]]:
    dataset = inputs.dataset
    data_hash = dataset.fingerprint()
    x, y = dataset.train_x(), dataset.y
    total = sum(e.epochs * dataset.n_rows for e in inputs.experiments)
    done_before = 0
    outputs, reports = [], []
    ids = {"ids": dataset.ids} if dataset.ratings is not None else {}  # dot_product: the ratings' users, items
    embedding = _embedding_view(dataset) if dataset.ratings is not None else None  # the factors, similar tabs
    for exp in inputs.experiments:
        params = model_params(exp, dataset.x.shape[1], dataset.y, dataset.ids)
        sig = signature(exp, params, data_hash)
        state, start = _starting_state(exp.name, saved.get(exp.name), sig, action)

        def step_progress(done, _total, offset=done_before):
            progress("train", offset + done, total)

        # a run whose steps the cell budget must sample records only the lines written (issue 17)
        result = train(exp, x, y, state=state, progress=step_progress, plan=RecordPlan(budgets.CELL_BUDGET), **ids)
        result.classes = dataset.classes + result.classes[len(dataset.classes):]  # text labels by index
        if start == f"reset: {RESTARTED}":
            result.diagnostics.restarted = RESTARTED  # decided here, from the saved state
        done_before += exp.epochs * dataset.n_rows
        history = merge_history(histories.get(exp.name) if start == "continued" else None,
                                result_table(result, "epochs"))
        if embedding is not None and start != "continued":  # the history starts where the RMSE did
            history = with_start_rmse(history, result)
        notes = _notes(result, start)
        state = result.state.to_dict()
        state["starts"] = {str(k): v for k, v in result.starts.items()}  # for `trace` of carried values
        state["start_origin"] = result.start_origin
        saved[exp.name] = SavedState(exp.name, sig, settings_hash(exp, data_hash), state)
        outputs.append(ExperimentOutput(result, history, notes, embedding=embedding))
        reports.append(_report(exp.name, start, result, history, notes))
    return outputs, reports


def _embedding_view(dataset):
    """What the factors and similar tabs need of the ratings: ids, each rating's indices, its cell."""
    from .layout.factors import EmbeddingView

    x = dataset.x.astype(np.int64)
    return EmbeddingView(dataset.ids, x[:, 0], x[:, 1], dataset.y, tuple(dataset.ratings.cells))


def _formulas_and_maps(outputs: list[ExperimentOutput], inputs: Inputs, progress) -> None:
    """Each experiment's map, and its formulas where it asks for formula mode."""
    from .layout.map import formula_mode, map_tab

    dataset = inputs.dataset
    # Steps over the cell budget all together are sampled (layout.render.steps_allowances), and
    # formula mode needs every step: such formulas would be built only to be thrown away.
    steps = sum(steps_cells(o.result) for o in outputs)
    for k, o in enumerate(outputs):
        settings = inputs.setting_cells.get(o.result.experiment.name, {})
        if o.result.experiment.mode == "formulas":
            if steps > budgets.CELL_BUDGET:
                o.notes.append(f"Formula mode needs every step, and this run's steps ({steps:,} cells) are over "
                               f"the cell budget of {budgets.CELL_BUDGET:,}, so they are sampled and values "
                               "were written.")
            else:
                o.formulas, o.settings_block, o.epochs_formulas, problem = formula_mode(o.result, dataset.cell,
                                                                                        settings, o.history)
                o.notes.extend([problem] if problem else [])
        o.map_tab = map_tab(o.result, dataset.cell, settings, o.history, o.formulas is not None)
        progress("layout", k + 1, len(outputs) + 1)  # its map (and formulas)


def _what_was_laid_out(reports: list[ExperimentReport], plan) -> None:
    """Each report learns whether its steps tab is sampled and where its highlighted rows are."""
    steps_tabs = {t.name: t for t in plan.tabs if t.kind == "steps"}
    for report in reports:
        tab = steps_tabs.get(steps_tab_name(report.name))
        report.sampled = tab is not None and any("SAMPLED" in str(t.value) for t in tab.texts)
        if tab is not None:
            report.diagnostics["rows"] = highlighted_rows(tab)


def _starting_state(name: str, saved: SavedState | None, sig: dict, action: str) -> tuple[State | None, str]:
    """The state to continue from, and how this run starts, in words."""
    if action == "reset":
        return None, "reset"
    if saved is None:
        return None, "first run"
    changed = [k for k in sig if saved.signature.get(k) != sig[k]]
    if changed:
        what = ", ".join("the data" if k == "data" else k for k in changed)
        return None, f"reset: {what} changed since the last run, so it started again from init"
    try:
        state = State.from_dict(saved.state)
    except (KeyError, TypeError, ValueError):
        return None, "reset: the saved state could not be read, so it started again from init"
    if state.diverged:
        return None, f"reset: {RESTARTED}"
    return state, "continued"


def _notes(result, start: str) -> list[str]:
    notes = []
    if start.startswith("reset:"):
        why = start[len("reset: "):]
        notes.append(why[0].upper() + why[1:] + ".")
    notes += [n for n in result.diagnostics.notes if n not in notes]
    return notes


def _cell_budget(snapshot: Snapshot, names: list[str]) -> int:
    """The run's cell budget, less whatever the tabs this run keeps already hold beyond the
    spreadsheet's share (a Google spreadsheet holds 10 million cells in all)."""
    replaced = {t.lower() for n in names for t in experiment_tabs(n)}
    replaced |= set(FIXED_TABS)
    if not snapshot.cells_limited:  # .xlsx: no limit on the workbook as a whole
        return budgets.CELL_BUDGET
    kept = sum(t.rows * t.cols for t in snapshot.tabs if t.title.lower() not in replaced)
    return max(0, min(budgets.CELL_BUDGET, budgets.SPREADSHEET_CELLS - kept))


def _report(name, start, result, history, notes) -> ExperimentReport:
    loss = error = accuracy = rmse = None
    epochs = result_table(result, "epochs")
    if len(epochs):
        def finite(column: str) -> float | None:
            return float(epochs[column][-1]) if column in epochs and np.isfinite(epochs[column][-1]) else None

        loss, error, rmse = finite("loss"), finite("sqrt(sum err^2)"), finite("rmse")
        accuracy = float(epochs["accuracy"][-1]) if "accuracy" in epochs else None
    div = result.diagnostics.divergence
    return ExperimentReport(name, start, len(epochs), epochs_so_far(history), loss,
                            {k: float(v) for k, v in result.params.items()},
                            divergence_sentence(result) if div else None, notes,
                            sqrt_sum_err2=error, diagnostics=diagnostics_summary(result), accuracy=accuracy,
                            rmse=rmse)


def highlighted_rows(tab) -> dict[str, str]:
    """The steps tab's cells of the rows where the explosion started and where it diverged."""
    from .backends.base import a1
    from .layout.steps import DIVERGED, ONSET

    kinds = {ONSET: "started", DIVERGED: "diverged"}
    return {kinds[h.color]: a1(h.row, 0, tab.name) for h in tab.highlights if h.color in kinds}


def diagnostics_summary(result) -> dict[str, Any]:
    """The machine-readable diagnosis (`--json`, the HTTP run summary)."""
    d = result.diagnostics
    onset = d.onset
    return {
        "safe_lr": d.safe_lr,
        "diverged_at": ({"epoch": d.divergence.epoch, "step": d.divergence.step, "row": d.divergence.row,
                         "param": d.divergence.param} if d.divergence else None),
        "started_at": ({"epoch": onset.epoch, "step": onset.step, "row": onset.row, "x": onset.x,
                        "params": onset.moved} if onset else None),
        "loss_rose": list(d.rose) if d.rose else None,
        "dead": {u: {"epoch": x.epoch, "step": x.step, "params": x.params} for u, x in d.dead.items()},
        "grad_gap": dict(d.grad_gap),
        "restarted": d.restarted,
        "story": list(d.story),
    }


def _run_entry(action: str, inputs: Inputs, reports: list[ExperimentReport]) -> RunEntry:
    diverged = [r.name for r in reports if r.diverged]
    outcome = f"ok; diverged: {', '.join(diverged)}" if diverged else "ok"
    messages = [f"{r.name}: {r.start}" for r in reports if r.start != "continued"]
    messages += [f"{r.name}: {n}" for r in reports for n in r.notes]
    messages += [f"warning: {w}" for w in inputs.warnings]
    return RunEntry(action, [e.name for e in inputs.experiments], inputs.dataset.fingerprint(),
                    [e.flavour for e in inputs.experiments], outcome, messages)


def _read_more(backend, snapshot: Snapshot, all_names: list[str],
               factor_tabs: list[str]) -> tuple[dict[str, Columns], Snapshot | None]:
    """A second read round, only if needed: every experiment's epochs history in the sheet, and the
    tabs of dot_product's starting-factor ranges (returned as a Snapshot holding both rounds'
    values, or None when no experiment names a range)."""
    tabs = [epochs_tab_name(n) for n in all_names if _owned(snapshot, epochs_tab_name(n))]
    wanted = tabs + [t for t in factor_tabs if t not in snapshot.values and t not in tabs]
    more = backend.read(wanted) if wanted else None
    histories = {n: read_history(more.values.get(epochs_tab_name(n))) for n in all_names
                 if epochs_tab_name(n) in tabs}
    if not factor_tabs:
        return histories, None
    values = dict(snapshot.values)
    values.update(more.values if more is not None else {})
    return histories, Snapshot(snapshot.target, more.tabs if more is not None else snapshot.tabs, values,
                               snapshot.cells_limited)


def _owned(snapshot: Snapshot, title: str) -> bool:
    info = snapshot.tab(title)
    return info is not None and info.owned


def _owned_table(snapshot: Snapshot, title: str) -> Columns | None:
    return read_table(snapshot.values.get(title)) if _owned(snapshot, title) else None


def _check_owned(snapshot: Snapshot, titles: list[str]) -> None:
    """Refuse before anything is trained or written when a tab we would write is the user's."""
    lowered = {t.title.lower(): t for t in snapshot.tabs}
    for title in titles:
        info = lowered.get(title.lower())
        if info is not None and not info.owned:
            raise OwnershipError(f"{snapshot.target}: the tab {info.title!r} was not created by sheetsync, "
                                 "so it will not be overwritten; rename or delete that tab, or rename "
                                 "the experiment")
