"""`train` and `sweep`: run experiments on data, Reset or continue, and build the Result.

The compiled loop (`kernel`) does the per-row work; this module decides what a Run and a Reset
mean for each flavour (the workbook's macros live in `graddesc`), turns the loop's arrays into
the steps and epochs tables, and derives the diagnostics.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .. import budgets
from ..errors import SettingError, SheetsyncError
from ..settings import Experiment
from . import graddesc, labels, losses, record
from .loop.backend import run_kernel
from .loop.run import (CHUNK_STEPS, Chunk, Job, as_data, current_lr, job_for, pack, prepare,  # noqa: F401
                       reset_state, run_epochs, signature, unpack)
from .loop.spec import build_spec  # noqa: F401
from .models import Model
from .record import Counters, RecordPlan
from .result import Columns, Diagnostics, Divergence, Lazy, Result, State

if TYPE_CHECKING:
    from .embeddings import Ids  # imported where table models use it: a run without one does without


def train(experiment: Experiment, x, y, state: State | None = None, *, keep_steps: bool = True,
          progress: Callable[[int, int], None] | None = None, find_safe_lr: bool = True,
          ids: Ids | None = None, plan: RecordPlan | None = None) -> Result:
    """Train `experiment` on (x, y): Reset when `state` is None, else continue from it (Run).

    Runs `experiment.epochs` epochs. Returns a `Result` whose `state` continues the next Run.
    A state left by a diverged run is not continued from: the Run starts again from init and
    `result.diagnostics.restarted` says so. When the run diverges or its loss rises, a search
    (`find_safe_lr`) finds the largest learning rate that trains (diagnostics.safe_lr).

    Table models (dot_product): x holds 0-based (user, item) indices and `ids` the users and
    items of the tables' rows (default: the indices themselves); see engine/embeddings.py.

    `plan` (engine/record.py): the steps will be written within `plan.cell_budget` cells, so a
    run too long for that records only the lines the layout asks for (`Result.record_lines`).
    """
    job = prepare(experiment, x, y, ids)
    if (plan is not None and keep_steps and not record.RECORD_ALL
            and record.sampled(job.spec, job.X.shape[0], experiment.epochs, plan.cell_budget)):
        result = _train_sampled(job, state, progress, find_safe_lr)
        if result is not None:
            return result
        # it diverged: the diagnostics read the lines around the explosion, so record them all
    restarted = None
    if state is not None:
        check_state(job, state)
        if state.diverged:  # blown-up parameters are no place to continue from
            state, restarted = None, RESTARTED
    start = state
    state, origin = starting_state(job, state)
    chunks: list[Chunk] = []
    starts = {state.epoch + 1: start_values(job, state)}
    total = experiment.epochs * job.X.shape[0]
    done_steps = 0
    remaining = experiment.epochs
    while remaining > 0:
        if job.spec.update.epoch_macro:
            epoch = state.epoch + 1
            starts[epoch] = start_values(job, state)
            state, chunk = graddesc.run_macro_epoch(job, state, keep_steps)
            starts[epoch]["lr"] = chunk.lr  # adagrad_ann's test may halve it within the epoch
            n = 1
        else:
            n = max(1, min(remaining, CHUNK_STEPS // max(1, job.X.shape[0])))
            state, chunk = run_epochs(job, state, n, keep_steps)
        chunks.append(chunk)
        remaining -= n
        done_steps += n * job.X.shape[0]
        if progress:
            progress(min(done_steps, total), total)
        if chunk.diverged:
            break
    result = build_result(job, state, chunks, keep_steps)
    result.starts = starts
    result.start_origin = origin
    if job.spec.tables:
        result.start_rmse = table_start_rmse(job, starts[min(starts)]["params"])
    result.diagnostics.restarted = restarted
    diagnose(job, result, start, search=find_safe_lr)
    return result


def _check_diverged_size(job: Job, lines: int) -> None:
    """A sampled run that diverged is run again recording every line up to the divergence (its
    story reads them); refuse when those would not fit budgets.MEMORY_BUDGET, as parsing refuses
    such a run when it would record every line from the start."""
    held = lines * len(job.spec.step_columns()) * 8
    if held > budgets.MEMORY_BUDGET:
        raise SettingError("epochs", f"{job.experiment.name}: the run diverged after {lines:,} steps, and "
                           f"explaining it needs every step up to there: {held / (1 << 30):,.1f} GiB of "
                           f"memory, over the budget of {budgets.MEMORY_BUDGET / (1 << 30):,.0f} GiB; lower "
                           "the lr (the divergence note says which trains) or epochs")


def _train_sampled(job: Job, given: State | None, progress, find_safe_lr: bool) -> Result | None:
    """`train` recording only the lines the layout asks for (engine/record.py); None when the
    run diverged (the caller runs it again recording every line)."""
    from .explain import LANDSCAPE_PATH, spaced_ints

    experiment = job.experiment
    restarted = None
    if given is not None:
        check_state(job, given)
        if given.diverged:
            given, restarted = None, RESTARTED
    start, origin = starting_state(job, given)
    n_rows = job.X.shape[0]
    n = experiment.epochs * n_rows
    cols = job.spec.step_columns()

    per_call = max(1, record.PLAN_CHUNK_STEPS // max(1, n_rows))  # epochs per kernel call

    def run(wanted: np.ndarray, tell=None, reduce: bool = True):
        """The loop from `start`: the final state, its chunks (epoch sums only), the `wanted`
        lines and those the diagnoses name as Columns with their line numbers, and what the
        diagnoses need over every line (record.Reductions; not when `reduce` is False: the
        loop run again for more lines reduces nothing anew); None if it diverged."""
        state, chunks, kept = start, [], []
        starts = {start.epoch + 1: start_values(job, start)}
        reductions = record.Reductions(job.spec, cols, job.X)
        buffer = np.empty((1, min(per_call, experiment.epochs) * n_rows, len(cols)))  # every call's lines
        base, remaining = 0, experiment.epochs
        while remaining > 0:
            if job.spec.update.epoch_macro:  # the workbook's macros between epochs, as `train` runs them
                k, epoch = 1, state.epoch + 1
                starts[epoch] = start_values(job, state)
                state, chunk = graddesc.run_macro_epoch(job, state, True)
                starts[epoch]["lr"] = chunk.lr
            else:
                k = min(remaining, per_call)
                state, chunk = run_epochs(job, state, k, True, out=buffer)
            if chunk.diverged:
                _check_diverged_size(job, base + chunk.diverged[0] + 1)
                return None
            lines = chunk.lines
            lines[:, 0] += state.epoch - k + 1  # epochs counted across Runs, 1-based
            if reduce:
                reductions.take(lines, base)
            a, b = np.searchsorted(wanted, [base, base + len(lines)])
            kept.append(lines[wanted[a:b] - base])  # a copy: the chunk's lines go now
            chunks.append(Chunk(lines[:0].copy(), chunk.epochs, chunk.lr, None))
            base += len(lines)
            del lines, chunk  # before the next call writes its own lines
            remaining -= k
            if tell:
                tell(base, n)
        named = {line: row for line, row in reductions.named_rows().items()
                 if not np.isin(line, wanted)}  # a line named by a diagnosis, not written
        at = np.r_[wanted, list(named)].astype(np.int64)
        table = np.concatenate(kept + [np.array(list(named.values())).reshape(-1, len(cols))])
        order = np.argsort(at, kind="stable")
        table, at = table[order], at[order]
        columns = {c: table[:, i] for i, c in enumerate(cols)}
        for c in ("epoch", "step", "row"):
            columns[c] = columns[c].astype(np.int64)
        return state, chunks, Columns(columns), at, reductions, starts

    path = spaced_ints(n, min(n + 1, LANDSCAPE_PATH))
    wanted = record.whole_batches(path[path < n], n_rows, job.spec.batch_size, n)
    done = run(wanted, progress)
    if done is None:
        return None
    state, chunks, columns, recorded, reductions, starts = done
    counters = Counters(n, n_rows, job.spec.batch_size, start.epoch, start.t, job.order)
    if not all(np.array_equal(columns[c], getattr(counters, c)(recorded)) for c in ("epoch", "step", "row")):
        return None  # a structure the counters do not describe: record every line rather than guess

    def more(lines: np.ndarray) -> tuple[Columns, np.ndarray]:
        """The loop run again (the same bits), recording `lines` and the rest of their batches."""
        _, _, columns, recorded, _, _ = run(record.whole_batches(lines, n_rows, job.spec.batch_size, n),
                                            reduce=False)
        return columns, recorded

    result = build_result(job, state, chunks, keep_steps=False)
    result.steps = columns
    result.step_lines, result.counters, result.more_lines = recorded, counters, more
    result.param_range, result.reduced = reductions.ranges(), reductions.reduced()
    result.starts = starts
    result.start_origin = origin
    result.diagnostics.restarted = restarted
    diagnose(job, result, given, search=find_safe_lr)
    return result


# Why a Run after a diverged one starts again from init (said in the output and the run log).
RESTARTED = "the last run diverged; this Run started again from the init values"


def starting_state(job: Job, state: State | None) -> tuple[State, str]:
    """The state a Run starts from, and where its carried values come from (Result.start_origin)."""
    if state is not None:
        return state, "previous run"
    if job.flavour != "graddesc":
        return reset_state(job), "init"
    state = graddesc.reset(job)
    plain = reset_state(job)
    return state, "reset warm-up" if state.opt != plain.opt else "init"


def start_values(job: Job, state: State) -> dict:
    """The carried values an epoch starts from (see Result.starts)."""
    if job.spec.update.epoch_macro:
        state = graddesc.macro_start(job, state)
    return {"params": dict(state.params), "opt": {s: dict(v) for s, v in state.opt.items()},
            "lr": current_lr(job.experiment, state), "eve_d": state.extra.get("eve_d", 1.0)}


def table_start_rmse(job: Job, params: dict[str, float]) -> float:
    from . import embeddings

    e = job.experiment
    tables = embeddings.Tables.from_params(job.ids, params, e.factors, e.bias, e.y_range)
    return embeddings.rmse(embeddings.predict(tables, job.X), job.Y)


def check_state(job: Job, state: State) -> None:
    if not isinstance(state, State):
        raise SheetsyncError(f"expected a State to continue from, found {type(state).__name__}")
    sig = signature(job)
    if state.signature and state.signature != sig:
        old = state.signature
        raise SheetsyncError(
            f"the saved state is for {old.get('model')} / {old.get('flavour')} {old.get('optimizer')} "
            f"with parameters {', '.join(old.get('params', []))}; this experiment is "
            f"{sig['model']} / {sig['flavour']} {sig['optimizer']}: reset it to start again")
    if job.spec.tables:  # the same sizes may hold other ids
        missing = [q for q in job.param_names if q not in state.params]
        if missing:
            raise SheetsyncError(f"the saved state has no value for {missing[0]} (and {len(missing) - 1} more): "
                                 "it is for other users or items; reset it to start again")


# ---------------------------------------------------------------------------------------------
# Tables and diagnostics


def build_result(job: Job, state: State, chunks: list[Chunk], keep_steps: bool,
                 then: Callable[[Result], None] | None = None) -> Result:
    """The Result of a run: final parameters and state now; the steps and epochs tables and the
    diagnostics on first read (`then` completes the diagnostics, once they are first read)."""
    spec = job.spec
    start_epoch = state.epoch - sum(len(c.epochs) for c in chunks)
    if any(c.diverged for c in chunks):
        state.extra["diverged"] = True
    details = dict(spec.update.details)
    details["loss"] = losses.as_loss(spec.loss).describe()  # which log base the loss column uses
    details.update({"flavour": job.flavour, "optimizer": job.experiment.optimizer,
                    "carry": "last row's inputs (28 of 29 updates)" if spec.carry_inputs else "last update"})

    def diagnostics() -> Diagnostics:
        diag = epoch_diagnostics(job, chunks, start_epoch, result)
        if then is not None:
            result.diagnostics = diag  # what `then` reads and adds to
            then(result)
        return diag

    result = Result(experiment=job.experiment, steps=Lazy(lambda: step_table(job, chunks, start_epoch, keep_steps)),
                    epochs=Lazy(lambda: epoch_table(job, chunks, start_epoch)), params=dict(state.params),
                    state=state, diagnostics=Lazy(diagnostics), details=details, param_names=list(job.param_names),
                    input_names=list(spec.model.inputs), state_names=list(spec.update.state), spec=spec,
                    ids=job.ids)
    if spec.model.classifier:  # the final parameters' confusion table over every data row
        result.classes = [str(k) for k in range(spec.model.classes)]
        result.confusion = labels.confusion(spec.model, result.params, job.X, job.Y)
    return result


def step_table(job: Job, chunks: list[Chunk], start_epoch: int, keep_steps: bool) -> Columns:
    """The steps table: the loop's recorded lines, with epochs counted across Runs."""
    cols = job.spec.step_columns()
    if keep_steps and chunks:
        # One chunk (any run short of CHUNK_STEPS) is used as the loop wrote it: a million
        # steps are ~130 MB, and copying them again cost more than the training.
        lines = chunks[0].lines if len(chunks) == 1 else np.concatenate([c.lines for c in chunks])
        # the loop numbers epochs within a call; make them count across Runs, 1-based
        start, e0 = 0, start_epoch + 1
        for c in chunks:
            lines[start:start + len(c.lines), 0] += e0
            start, e0 = start + len(c.lines), e0 + len(c.epochs)
    else:
        lines = np.empty((0, len(cols)))
    columns = {c: lines[:, i] for i, c in enumerate(cols)}
    for c in ("epoch", "step", "row"):  # counters are whole numbers
        columns[c] = columns[c].astype(np.int64)
    return Columns(columns)  # column views of `lines`, not one more copy


def _epoch_sums(job: Job, chunks: list[Chunk]) -> tuple[dict[str, int], np.ndarray]:
    ecols = {c: i for i, c in enumerate(job.spec.epoch_columns())}
    return ecols, np.concatenate([c.epochs for c in chunks]) if chunks else np.zeros((0, len(ecols)))


def epoch_table(job: Job, chunks: list[Chunk], start_epoch: int) -> Columns:
    """The epochs table from the loop's per-epoch sums (one numpy pass)."""
    params = job.spec.params
    ecols, acc = _epoch_sums(job, chunks)
    n = len(acc)
    if job.spec.tables:  # no per-parameter columns; the RMSE over all ratings at each epoch's end
        lines = np.maximum(acc[:, ecols["lines"]], 1)
        return Columns({"epoch": np.arange(start_epoch + 1, start_epoch + 1 + n, dtype=np.int64),
                        "loss": acc[:, ecols["loss_sum"]] / lines,
                        "rmse": np.sqrt(acc[:, ecols["rmse_sum"]] / job.X.shape[0]),
                        "lr": np.concatenate([np.full(len(c.epochs), c.lr) for c in chunks]) if chunks else np.zeros(0),
                        "sqrt(sum err^2)": np.sqrt(acc[:, ecols["err2_sum"]])})
    table: dict[str, object] = {"epoch": np.arange(start_epoch + 1, start_epoch + 1 + n, dtype=np.int64),
                                "loss": acc[:, ecols["loss_sum"]] / np.maximum(acc[:, ecols["lines"]], 1)}
    if "correct_sum" in ecols:  # classifiers: the share of rows predicted right as they were met
        table["accuracy"] = acc[:, ecols["correct_sum"]] / np.maximum(acc[:, ecols["lines"]], 1)
    for q in params:
        table[q] = acc[:, ecols[f"param {q}"]]
    table["lr"] = np.concatenate([np.full(len(c.epochs), c.lr) for c in chunks]) if chunks else np.zeros(0)
    table["sqrt(sum err^2)"] = np.sqrt(acc[:, ecols["err2_sum"]])
    dead_rows = [""] * n
    if job.experiment.model in ("two_relu", "mlp"):
        dead = {q: acc[:, ecols[f"nonzero {q}"]] == 0 for q in params}
        if any(mask.any() for mask in dead.values()):
            dead_rows = [", ".join(q for q in params if dead[q][k]) for k in range(n)]
    table["dead"] = dead_rows
    if job.spec.has_estimates:
        for q in params:
            table[f"gap {q}"] = acc[:, ecols[f"gap {q}"]]
    return Columns(table)  # fresh arrays (acc is a concatenation): the DataFrame may keep them


def epoch_diagnostics(job: Job, chunks: list[Chunk], start_epoch: int, result: Result) -> Diagnostics:
    """What the per-epoch sums say: dead parameters, gradient gaps, where the run diverged."""
    params = job.spec.params
    ecols, acc = _epoch_sums(job, chunks)
    diag = Diagnostics()
    if job.experiment.model in ("two_relu", "mlp"):
        for q in params:
            mask = acc[:, ecols[f"nonzero {q}"]] == 0
            if mask.any():
                diag.dead_epochs[q] = start_epoch + 1 + int(np.argmax(mask))
    if job.spec.has_estimates:
        for q in params:
            gaps = acc[:, ecols[f"gap {q}"]]
            diag.grad_gap[q] = float(gaps.max()) if len(acc) else 0.0
    line_base, epoch = 0, start_epoch
    for chunk in chunks:
        epoch += len(chunk.epochs)
        if chunk.diverged and diag.divergence is None:
            line, param = chunk.diverged
            diag.divergence = divergence(job, line_base + line, param, epoch, result)
        line_base += len(chunk.lines)
    return diag


def divergence(job: Job, line: int, param: int, epoch: int, result: Result) -> Divergence:
    n = job.X.shape[0]
    q = job.param_names[param] if param >= 0 else None
    recorded = 0 <= line < result.rows("steps")
    step = int(result.column("steps", "step")[line]) if recorded else 0
    row = int(result.column("steps", "row")[line]) if recorded else (line % n) + 1
    bound = job.experiment.divergence_bound
    if q is None:
        reason = "the loss became infinite or not a number"
    else:
        reason = f"{q} left ±{bound:g}"
    if job.spec.tables:  # name the rating: its user and item as the sheet shows them
        user, item = (int(v) for v in job.X[row - 1])
        reason += f" (the rating of user {job.ids.users[user]} for item {job.ids.items[item]})"
    lr_bound = stable_lr_bound(job)
    return Divergence(epoch=epoch, step=step, row=row, param=q, reason=reason, lr_bound=lr_bound)


def stable_lr_bound(job: Job) -> float | None:
    """For plain per-row SGD on the squared error of `linear`: lr < 1/max over rows of (|x|² + 1).

    One row's loss (a·x + b − y)² has curvature 2·(|x|² + 1) along (a, b), so a step on that
    row shrinks the error only while lr·2·(|x|² + 1) < 2. Holding b fixed gives the workbook's
    rule of thumb lr < 1/x² (docs/optimizers.md); the +1 is b's share, and it matters at small x.
    """
    e = job.experiment
    if e.model != "linear" or e.loss != "squared" or e.optimizer != "sgd" or job.spec.batch_size != 1:
        return None
    with np.errstate(over="ignore"):  # x near 1e308: x² is inf, and the bound 0 says nothing
        bound = float(1.0 / ((job.X ** 2).sum(axis=1).max() + 1.0))
    return bound if bound > 0 else None


def row_cost(job: Job) -> float:
    """One row step's cost in scalar-model row steps: a table model whose update visits every
    entry pays for the whole table once a batch (an entry update costs about a quarter of a
    scalar model's row step, measured)."""
    spec = job.spec
    if not spec.tables or spec.sparse_update:
        return 1.0
    return 1.0 + len(job.param_names) / (4.0 * spec.batch_size)


def diagnose(job: Job, result: Result, start: State | None, search: bool) -> None:
    """The explanation a learner reads: the explosion story, a learning rate that trains, dead
    units, gradient gaps, the line a model collapsed to (definitions in engine/explain.py)."""
    from . import explain

    diag, e = result.diagnostics, job.experiment
    finite = not diag.divergence and all(map(math.isfinite, result.params.values()))
    story: list[str] = []
    if diag.restarted:
        diag.notes.append(diag.restarted[0].upper() + diag.restarted[1:] + ".")
    div = diag.divergence
    if div is not None:
        story.append(f"Diverged at epoch {div.epoch}, step {div.step} (data row {div.row}): {div.reason}.")
        if result.rows("steps") and not job.spec.tables:  # the onset story reads scalar parameters
            hit = np.flatnonzero(result.column("steps", "step") == div.step)
            if len(hit):
                diag.onset = explain.find_onset(result, int(hit[-1]), job.X, job.Y)
            if diag.onset is not None:
                story.append(explain.onset_sentence(result, diag.onset))
            if not job.spec.model.classifier:  # its "why" is the squared loss's parabola
                story.append(explain.how_sentence(result, diag.onset, job.X))
    losses = result.column("epochs", "loss")  # arrays: a sweep's Results build no table here
    if div is None:
        rose = explain.rising(losses)
        if rose is not None:
            epochs = result.column("epochs", "epoch")
            k, peak = rose
            diag.rose = (int(epochs[k]), int(epochs[peak]))
            path = f"{losses[k]:,.4g} at epoch {epochs[k]} → {losses[peak]:,.4g} at epoch {epochs[peak]}"
            if peak < len(losses) - 1:
                path += f" → {losses[-1]:,.4g} at epoch {epochs[-1]}"
            shape = "rose" if losses[-1] >= losses[peak] * (1 - explain.RISE) else "rose and fell back"
            story.append(f"The loss {shape} without diverging ({path}): lr {e.lr:g} is too large for "
                         f"{e.flavour} {e.optimizer} on this data.")
    if search and (div is not None or diag.rose is not None):
        check = explain.search_safe_lr(result, job.X, job.Y, start, functools.partial(sweep, ids=job.ids),
                                       row_cost=row_cost(job))
        diag.safe_lr, diag.safe_lr_check = check.lr, check
        story.append(check.sentence(e.lr))
    if div is not None and div.lr_bound is not None:
        story.append(f"For plain per-row SGD on this model the analytic bound is lr < "
                     f"{div.lr_bound:.6g} = 1/(max x² + 1).")
    diag.story = story
    diag.notes += story
    if diag.grad_gap:
        upto = diag.onset.line if diag.onset is not None else None
        diag.grad_gaps = explain.gradient_gaps(result, upto)
        diag.grad_gap = {q: g.gap for q, g in diag.grad_gaps.items()}
        diag.grad_gap_theory = {q: g.expected for q, g in diag.grad_gaps.items() if g.expected is not None}
        if diag.grad_gaps:
            diag.notes.append(explain.gaps_sentence(diag.grad_gaps))
    if explain.relu_units(job.spec.model):
        diag.dead = explain.dead_units(result, job.X)
        diag.notes += [d.sentence() for d in diag.dead.values()]
        if finite and explain.always_active(result, job.X):
            line = explain.as_line(job.spec.model, result.params)
            if line is not None:
                diag.collapsed_line = line
                diag.notes.append(f"Every ReLU was on for every data row throughout, so {e.model} acted as "
                                  f"the line y = {line[0]:.6g}*x + {line[1]:.6g}, as two_linear would: "
                                  "the ReLU added nothing here.")
    elif e.model == "two_linear" and finite:
        a, b, c, d = (result.params[q] for q in "abcd")
        diag.collapsed_line = (a * c, c * b + d)
        diag.notes.append(f"Without an activation, c*(a*x+b)+d is the line "
                          f"y = {a * c:.6g}*x + {c * b + d:.6g}: two layers add no power.")
    if job.spec.model.classifier:  # saturated logits, classes never predicted, log of 0
        from . import explain_classify

        diag.notes += explain_classify.notes(result, job.X, job.Y)


# ---------------------------------------------------------------------------------------------
# Sweeps

def structure(job: Job) -> tuple:
    """What decides the compiled loop's code: its Spec (everything the loop is generated from,
    `Spec.key`) and the data's shape. Experiments that agree on it share one call; a setting that
    changes the code changes the Spec, so no hand-kept list can miss it."""
    return job.spec.key, job.X.shape


def sweep(experiments: Sequence[Experiment], x, y, *, keep_steps: bool = False,
          states: Sequence[State | None] | None = None, find_safe_lr: bool = False,
          ids: Ids | None = None) -> list[Result]:
    """Train many experiments on the same data together, each as `train` alone would.

    Experiments that share a structure (model, optimizer options, batch size) run in one
    compiled call with their numbers side by side; workbook macros and table models (`ids`)
    run per experiment.
    """
    states = list(states) if states is not None else [None] * len(experiments)
    X, Y = as_data(x, y)  # checked once for all of them
    models: dict[tuple, Model] = {}  # experiments with the same model share its (immutable) definition
    jobs = [job_for(e, X, Y, models, ids) for e in experiments]
    results: list[Result | None] = [None] * len(jobs)
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        if job.spec.update.epoch_macro or job.experiment.shuffle or job.spec.tables:
            results[i] = train(job.experiment, x, y, states[i], keep_steps=keep_steps,
                               find_safe_lr=find_safe_lr, ids=job.ids)
            continue
        key = (structure(job), job.experiment.epochs)  # same compiled loop, same length
        groups.setdefault(key, []).append(i)
    for (_, n_epochs), idx in groups.items():
        spec = jobs[idx[0]].spec
        starts, given, origins, restarts = [], [], [], []
        for i in idx:
            job, st, restarted = jobs[i], states[i], None
            if st is not None:
                check_state(job, st)
                if st.diverged:
                    st, restarted = None, RESTARTED
            given.append(st)
            st, origin = starting_state(job, st)
            starts.append(st)
            origins.append(origin)
            restarts.append(restarted)
        packed = [pack(jobs[i], st) for i, st in zip(idx, starts)]
        P, S, H, T = (np.ascontiguousarray(np.concatenate([p[k] for p in packed])) for k in range(4))
        job0 = jobs[idx[0]]
        R, EPO, DIV = run_kernel(spec, job0.X, job0.Y, job0.order(0, n_epochs), P, S, H, T, n_epochs, keep_steps)
        for row, (i, st) in enumerate(zip(idx, starts)):
            job = jobs[i]
            done = int(DIV[row, 3])
            diverged = (int(DIV[row, 1]), int(DIV[row, 2])) if DIV[row, 0] else None
            new_state = unpack(job, st, P[row], S[row], T[row], done)
            chunk = Chunk(R[row, : DIV[row, 4]] if keep_steps else R[row], EPO[row, :done],
                          float(H[row, spec.hyper.index("lr")]), diverged)
            # the explanation is worked out when result.diagnostics is first read
            then = functools.partial(_explain, job, restarts[row], given[row], find_safe_lr)
            result = results[i] = build_result(job, new_state, [chunk], keep_steps, then)
            result.starts = {st.epoch + 1: start_values(job, st)}
            result.start_origin = origins[row]
    return results  # type: ignore[return-value]


def _explain(job: Job, restarted: str | None, given: State | None, search: bool, result: Result) -> None:
    result.diagnostics.restarted = restarted
    diagnose(job, result, given, search)
