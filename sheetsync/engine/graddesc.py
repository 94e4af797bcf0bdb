"""The fast.ai workbook's macros: Reset per tab, and what its tabs do between epochs.

Within an epoch every tab is the compiled per-row loop (see `optimizers._graddesc`). Between
epochs the workbook runs VBA. The sheet always shows one displayed pass, computed from the
carried cells; `onestep` pastes what that pass ends with into the carried cells and recalculates,
so the next pass becomes the displayed one. Here epoch k is the k-th displayed pass after Reset.
A test a macro makes after `onestep` looks at the pass just made visible: adam_ann's decides the
lr of that pass from the moments carried into it (so here it runs at the end of the previous
epoch), adagrad_ann's recalculates that pass with a halved lr. A pass that produced the carried
state is never redone. See docs/graddesc-flavour.md.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .loop.run import Chunk, Job, reset_state, run_epochs
from .result import State

MAX_HALVINGS = 60  # adagrad_ann's `while` loop, bounded so a pathological sheet cannot hang


def _pass(job: Job, state: State) -> tuple[State, Chunk]:
    """One full pass over the data with nothing recorded (a recalculation of the sheet)."""
    return run_epochs(job, state, 1, record=False)


def _paste(state: State, after: State, stems: list[str]) -> State:
    """Paste the last row's state `stems` as the carried state; parameters stay where they were."""
    opt = {s: dict(after.opt[s] if s in stems else state.opt[s]) for s in state.opt}
    return replace(state, opt=opt)


def reset(job: Job) -> State:
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
    elif o == "adagrad":  # normalisers 10000 (automatic calc), then the pass's own pasted once
        _, chunk = _pass(job, state)
        state = replace(state, opt={"n": _normalisers(job, chunk)})
    elif o == "adagrad_ann":  # J1 := 100; no annealing test until the second displayed pass
        state.extra.update({"remembered": 100.0, "lr": job.experiment.lr})
    # a Reset is not an epoch: the step count and epoch stay at zero
    return replace(state, t=0, epoch=0)


def _rmse(chunk: Chunk) -> float:
    return math.sqrt(chunk.epochs[-1][1])


def _g2(state: State) -> float:
    """sqrt(v_b) + sqrt(v_a): the workbook adds b's column first."""
    v = state.opt["v"]
    names = sorted(v, key=lambda q: (q != "b", q))
    total = 0.0
    for q in names:
        total = total + math.sqrt(v[q]) if total else math.sqrt(v[q])
    return total


def _normalisers(job: Job, chunk: Chunk) -> dict[str, float]:
    """sqrt(sum of g^2)/rows per parameter, from the epoch just run."""
    spec = job.spec
    cols = spec.epoch_columns()
    acc = chunk.epochs[-1]
    rows = float(job.X.shape[0])
    return {q: math.sqrt(acc[cols.index(f"gsq {q}")]) / rows for q in spec.params}


def run_macro_epoch(job: Job, state: State, record: bool) -> tuple[State, Chunk]:
    """One displayed pass of a tab whose macro does more than copy the last row, and what the
    macro does after it (`onestep` plus the tab's test)."""
    o = job.experiment.optimizer
    if o == "adagrad_ann":
        return _adagrad_ann_epoch(job, state, record)
    start = macro_start(job, state)
    state, chunk = run_epochs(job, start, 1, record)
    if chunk.diverged:
        return state, chunk
    if o == "adam_ann":
        # somesteps after onestep: gradrat = avg_grad2/prev_grad2 of the moments just carried
        # in (this epoch's last row); it sets the lr of the next pass and is never redone.
        g2, best = _g2(state), start.extra["best_g2"]
        lr = start.extra["lr"] / 4 if g2 / best > 2 else start.extra["lr"]
        state.extra.update({"lr": lr, "lr_setting": job.experiment.lr, "best_g2": g2 if g2 < best else best})
    elif o == "eve":
        f = _rmse(chunk)
        f2, f1 = state.extra["eve_f1"], f
        r = abs(f1 - f2) / min(f1, f2)
        d = 0.9 * state.extra["eve_d"] + (1 - 0.9) * r
        state.extra.update({"eve_f1": f1, "eve_f2": f2, "eve_d": d})
    elif o == "adagrad":  # onestep: histgrad -> gradtarget
        state = replace(state, opt={"n": _normalisers(job, chunk)})
    return state, chunk


def _adagrad_ann_epoch(job: Job, state: State, record: bool) -> tuple[State, Chunk]:
    """The 2016 annealing tab. After `onestep` the pass it displays is tested: while
    H33 = lr*(N/n summed) > 2*J1, halve lr and recalculate that pass; then J1 := H33. The pass
    right after Reset is not tested. An lr the learner types afterwards (between Runs) simply
    recalculates the displayed pass, without a test, and J1 keeps the value the macro set."""
    exp = job.experiment
    typed = state.extra.get("lr_setting") != exp.lr
    # the pass as the macro left it: the annealed lr, whatever the learner typed since
    start = replace(state, extra={**state.extra, "lr_setting": exp.lr})
    end, chunk = run_epochs(job, start, 1, record and not typed)
    if state.epoch > 0:
        # A pass that crosses the divergence bound stops early here; in the sheet its H33 is
        # huge, so it counts as too big and the lr is halved.
        for _ in range(MAX_HALVINGS):
            if not (chunk.diverged or _anneal_value(start, _normalisers(job, chunk)) > start.extra["remembered"] * 2):
                break
            start = replace(start, extra={**start.extra, "lr": start.extra["lr"] / 2})
            end, chunk = run_epochs(job, start, 1, record and not typed)
        if not chunk.diverged:
            start.extra["remembered"] = _anneal_value(start, _normalisers(job, chunk))
    if typed:
        start = replace(start, extra={**start.extra, "lr": exp.lr})
        end, chunk = run_epochs(job, start, 1, record)
    end.extra.update({k: start.extra[k] for k in ("lr", "lr_setting", "remembered")})
    if not chunk.diverged:  # onestep: histgrad -> gradtarget
        end = replace(end, opt={"n": _normalisers(job, chunk)})
    return end, chunk


def macro_start(job: Job, state: State) -> State:
    """The state an epoch starts from: a learning rate the user typed since the last Run takes
    effect, and annealing resumes from it."""
    if "lr" in state.extra and state.extra.get("lr_setting") != job.experiment.lr:
        return replace(state, extra={**state.extra, "lr": job.experiment.lr, "lr_setting": job.experiment.lr})
    return state


def _anneal_value(start: State, N: dict[str, float]) -> float:
    """H33 = SUMPRODUCT(histgrad, F2:G2): sum of N_q * (lr/n_q), b first, as the sheet adds."""
    n, lr = start.opt["n"], start.extra["lr"]
    names = sorted(N, key=lambda q: (q != "b", q))
    total = N[names[0]] * (lr / n[names[0]])
    for q in names[1:]:
        total = total + N[q] * (lr / n[q])
    return total
