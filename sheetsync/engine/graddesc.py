"""The fast.ai workbook's macros: Reset per tab, and what its tabs do between epochs.

Within an epoch every tab is the compiled per-row loop (see `optimizers._graddesc`). Between
epochs the workbook runs VBA: `onestep` copies the last row's *inputs* back into C1/C2 and the
last row's state into the state row (the loop does that, `carry_inputs`), and some tabs do
more. Reset re-initialises a tab and, for several tabs, runs warm-up passes whose last-row state
is pasted as the carried state, without moving the parameters. See reference/graddesc.md.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .train import Chunk, Job
from .result import State

MAX_HALVINGS = 60  # adagrad_ann's `while` loop, bounded so a pathological sheet cannot hang


def _pass(job: "Job", state: State) -> tuple[State, "Chunk"]:
    """One full pass over the data with nothing recorded (a recalculation of the sheet)."""
    from .train import run_epochs

    return run_epochs(job, state, 1, record=False)


def _paste(state: State, after: State, stems: list[str]) -> State:
    """Paste the last row's state `stems` as the carried state; parameters stay where they were."""
    opt = {s: dict(after.opt[s] if s in stems else state.opt[s]) for s in state.opt}
    return replace(state, opt=opt)


def reset(job: "Job") -> State:
    from .train import reset_state

    o = job.experiment.optimizer
    state = reset_state(job)
    state.extra["lr_setting"] = job.experiment.lr
    if o == "momentum":  # one full pass from zero momentum, its last momentum pasted
        state = _paste(state, _pass(job, state)[0], ["m"])
    elif o == "rmsprop":  # from 10000, two warm-up passes
        for _ in range(2):
            state = _paste(state, _pass(job, state)[0], ["v"])
    elif o in ("adam", "eve"):  # twice: paste v (recalculate), paste m (recalculate)
        for _ in range(2):
            state = _paste(state, _pass(job, state)[0], ["v"])
            state = _paste(state, _pass(job, state)[0], ["m"])
        if o == "eve":
            _, chunk = _pass(job, state)
            f = _rmse(chunk)
            state.extra.update({"eve_d": 1.0, "eve_f1": f, "eve_f2": f / 2})
    elif o == "adam_ann":  # two warm-up passes pasting both moments; best g2 after the first
        for k in range(2):
            state = _paste(state, _pass(job, state)[0], ["m", "v"])
            if k == 0:
                state.extra["best_g2"] = _g2(state)
        state.extra["lr"] = job.experiment.lr
    elif o == "adagrad_ann":
        state.extra.update({"remembered": 100.0, "lr": job.experiment.lr})
    # a Reset is not an epoch: the step count and epoch stay at zero
    return replace(state, t=0, epoch=0)


def _rmse(chunk: "Chunk") -> float:
    return math.sqrt(chunk.epochs[-1][1])


def _g2(state: State) -> float:
    """sqrt(v_b) + sqrt(v_a): the workbook adds b's column first."""
    v = state.opt["v"]
    names = sorted(v, key=lambda q: (q != "b", q))
    total = 0.0
    for q in names:
        total = total + math.sqrt(v[q]) if total else math.sqrt(v[q])
    return total


def _normalisers(job: "Job", chunk: "Chunk") -> dict[str, float]:
    """sqrt(sum of g^2)/rows per parameter, from the epoch just run."""
    from .kernel import Spec

    spec: Spec = job.spec
    cols = spec.epoch_columns()
    acc = chunk.epochs[-1]
    rows = float(job.X.shape[0])
    return {q: math.sqrt(acc[cols.index(f"gsq {q}")]) / rows for q in spec.params}


def run_macro_epoch(job: "Job", state: State, record: bool) -> tuple[State, "Chunk"]:
    """One press of `onestep` on a tab whose macro does more than copy the last row."""
    from .train import run_epochs

    o = job.experiment.optimizer
    start = macro_start(job, state)
    state, chunk = run_epochs(job, start, 1, record)
    if chunk.diverged:
        return state, chunk

    if o == "adam_ann":
        g2 = _g2(state)
        if g2 > 2 * start.extra["best_g2"]:
            lr = start.extra["lr"] / 4
            start = replace(start, extra={**start.extra, "lr": lr})
            state, chunk = run_epochs(job, start, 1, record)  # the sheet recalculates the epoch
            g2 = _g2(state)
        state.extra["best_g2"] = min(start.extra["best_g2"], g2)
    elif o == "eve":
        f = _rmse(chunk)
        f2, f1 = state.extra["eve_f1"], f
        r = abs(f1 - f2) / min(f1, f2)
        d = 0.9 * state.extra["eve_d"] + (1 - 0.9) * r
        state.extra.update({"eve_f1": f1, "eve_f2": f2, "eve_d": d})
    elif o in ("adagrad", "adagrad_ann"):
        N = _normalisers(job, chunk)
        if o == "adagrad_ann":
            for _ in range(MAX_HALVINGS):
                value = _anneal_value(start, N)
                if not value > 2 * start.extra["remembered"]:
                    break
                start = replace(start, extra={**start.extra, "lr": start.extra["lr"] / 2})
                state, chunk = run_epochs(job, start, 1, record)
                N = _normalisers(job, chunk)
            state.extra["remembered"] = _anneal_value(start, N)
        state = replace(state, opt={"n": N})
    if "lr" in start.extra:
        state.extra["lr"] = start.extra["lr"]
        state.extra["lr_setting"] = job.experiment.lr
    return state, chunk


def macro_start(job: "Job", state: State) -> State:
    """The state an epoch starts from: a learning rate the user typed since the last Run takes
    effect, and annealing resumes from it."""
    if "lr" in state.extra and state.extra.get("lr_setting") != job.experiment.lr:
        return replace(state, extra={**state.extra, "lr": job.experiment.lr, "lr_setting": job.experiment.lr})
    return state


def _anneal_value(start: State, N: dict[str, float]) -> float:
    """lr*(N_b/n_b + N_a/n_a): this epoch's normalisers over the carried ones, b first."""
    n = start.opt["n"]
    names = sorted(N, key=lambda q: (q != "b", q))
    ratio = N[names[0]] / n[names[0]]
    for q in names[1:]:
        ratio = ratio + N[q] / n[q]
    return start.extra["lr"] * ratio
