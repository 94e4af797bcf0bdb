"""Why a run went the way it did: the explosion story, the stability margin, a learning rate
that is proven to train, dead ReLU units, the numeric gradient's gap — all derived from the one
model definition and the steps the loop recorded. docs/why.md says what each term means.

Definitions (the tests hold the code to them):

- A step's *margin* is ΔᵀHΔ / (−gᵀΔ): the curvature of the step's own loss along its update Δ
  against the slope along it. Along Δ the loss is L + s·gᵀΔ + s²·ΔᵀHΔ/2 to second order, so
  the full step (s = 1) raises the loss exactly when the margin exceeds 2. For plain SGD
  (Δ = −lr·g) the margin is lr times the curvature along the gradient; momentum, Adam and the
  rest use the same ratio with their own Δ. A step that goes uphill (gᵀΔ ≥ 0) has margin +inf.
- A step *overshoots* when its update raises the loss of the very rows it was computed on.
- A diverged run's explosion *started* at the last step taken from a point where the loss over
  all data rows was no higher than where the Run began: after that update the loss stayed above
  the Run's starting loss until the run left the divergence bound (the step from which it never
  recovered).
- A ReLU unit *died* at the first step after which its pre-activation is ≤ 0 on every data row
  for the rest of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .expr import Expr, const, plain, subs, sym, symbols
from .models import LOSSES, Model
from .taylor import Jet, constant, jet, value

if TYPE_CHECKING:
    from .result import Result

OVERSHOOT = 2.0  # the margin above which a step raises its own loss (see the module docstring)
RISE = 0.05  # an epoch whose loss exceeds the previous epoch's by more than this has "risen"
SEARCH_MIN_EPOCHS = 3  # the safe-lr search trains at least this long, so a falling loss shows
SEARCH_CANDIDATES = 12  # learning rates tried: the 1-3 grid below the lr used, six decades
SEARCH_STEP_BUDGET = 4_000_000  # row steps the search may take in all (fewer epochs, then fewer lrs)


# ---------------------------------------------------------------------------------------------
# The row loss along a direction


def row_loss(model: Model, loss: str, inputs: dict[str, np.ndarray], y: np.ndarray,
             params: dict[str, np.ndarray], direction: dict[str, np.ndarray] | None = None) -> Jet:
    """Each row's loss at `params` (arrays, one entry per row), with its first and second
    derivative along `direction`, by the model's own cells."""
    env: dict[str, Jet] = {n: constant(v) for n, v in inputs.items()}
    env["y"] = constant(y)
    for q in model.params:
        d = direction[q] if direction is not None else np.zeros_like(params[q])
        env[q] = (np.asarray(params[q], dtype=np.float64), np.asarray(d, dtype=np.float64),
                  np.zeros_like(params[q], dtype=np.float64))
    for name, e in model.row_cells(loss):
        env[name] = jet(e, env)
        if name == "loss":
            return env[name]
    raise AssertionError("a model's row cells always include the loss")


def row_loss_value(model: Model, loss: str, inputs: dict[str, np.ndarray], y: np.ndarray,
                   params: dict[str, np.ndarray]) -> np.ndarray:
    """Each row's loss alone (no derivatives), by the model's own cells."""
    env: dict[str, np.ndarray] = dict(inputs)
    env["y"] = y
    env.update(params)
    for name, e in model.row_cells(loss):
        env[name] = value(e, env)
        if name == "loss":
            return env[name]
    raise AssertionError("a model's row cells always include the loss")


@dataclass
class StepGeometry:
    """Per line asked for: its batch's margin, and the batch's loss before and after its update."""

    margin: np.ndarray
    before: np.ndarray
    after: np.ndarray

    @property
    def overshoot(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~(self.after <= self.before)  # NaN after a blow-up counts as overshooting


def step_geometry(result: "Result", lines: np.ndarray | None = None) -> StepGeometry:
    """The margin and overshoot of the steps that `lines` (indices into result.steps, default
    all) belong to. Only the batches of those lines are evaluated, so a sampled steps tab pays
    for the rows it writes."""
    steps = result.table("steps")
    model = result.spec.model
    idx = np.arange(len(steps)) if lines is None else np.asarray(lines, dtype=np.int64)
    if model.tables and result.spec.batch_size > 1:
        # a table model's batch updates rows of other users and items than a line's own: the
        # line's slots after the step are not recorded, so there is no step to measure (NaN)
        nan = np.full(len(idx), np.nan)
        return StepGeometry(nan, nan, nan)
    if not len(idx):
        empty = np.zeros(0)
        return StepGeometry(empty, empty, empty)
    step_no = steps["step"]  # ascending: one number per batch
    batches, where = np.unique(step_no[idx], return_inverse=True)
    first = np.searchsorted(step_no, batches, "left")
    last = np.searchsorted(step_no, batches, "right") - 1
    counts = last - first + 1
    gather = np.repeat(first - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(counts.sum())
    end_of = np.repeat(last, counts)  # a batch's update is written on its last line
    inputs = {n: steps[n][gather] for n in model.inputs}
    y = steps["y"][gather]
    before = {q: steps[q][gather] for q in model.params}
    after = {q: steps[f"new {q}"][end_of] for q in model.params}
    delta = {q: after[q] - before[q] for q in model.params}
    loss = result.experiment.loss
    value, slope, curve = row_loss(model, loss, inputs, y, before, delta)
    new_value = row_loss(model, loss, inputs, y, after)[0]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    with np.errstate(all="ignore"):
        b_slope, b_curve, b_before, b_after = (np.add.reduceat(v, starts) / counts
                                               for v in (slope, curve, value, new_value))
        margin = np.where(b_slope < 0, b_curve / -b_slope, np.inf)
        margin = np.where(b_slope == 0, np.where(b_curve > 0, np.inf, 0.0), margin)
    return StepGeometry(margin[where], b_before[where], b_after[where])


# ---------------------------------------------------------------------------------------------
# Plain-words rendering of the model's own expressions


def inlined_gradient(model: Model, q: str, keep: Sequence[str] = ("dloss",)) -> Expr:
    """de/dq with the model's intermediates and shared backward pieces written out."""
    env: dict[str, Expr] = {}
    for name, e in list(model.intermediates) + list(model.backward):
        if name not in keep:
            env[name] = subs(e, env)
    # show a hidden unit's pre-activation, not max(u, 0), where the gradient reads h
    relu = {name: subs(e.args[0], env) for name, e in model.intermediates if e.op == "max"}
    env.update(relu)
    return subs(model.grads[q], env)


def coupled_pairs(model: Model) -> list[tuple[str, str]]:
    """Parameters that multiply each other in the prediction: each one's gradient reads the other."""
    reads = {q: set(symbols(inlined_gradient(model, q))) & set(model.params) for q in model.params}
    pairs = []
    for i, p in enumerate(model.params):
        for q in model.params[i + 1:]:
            if q in reads[p] and p in reads[q]:
                pairs.append((p, q))
    return pairs


def how_sentence(result: "Result", onset: "Onset | None", X: np.ndarray) -> str:
    """Why a step can overshoot on this model, in the model's own terms."""
    model = result.spec.model
    loss = result.experiment.loss
    g = plain(LOSSES[loss][1](sym("err")))
    names = {"dloss": "g"}
    grads = {q: plain(inlined_gradient(model, q), names) for q in model.params}
    x_note = f" (x = {onset.x:g} where it started)" if onset is not None and onset.x is not None else ""
    pairs = coupled_pairs(model)
    if pairs:
        moved = onset.moved if onset is not None else list(model.params)
        pairs.sort(key=lambda pq: -(pq[0] in moved) - (pq[1] in moved))
        p, q = pairs[0]
        grows = [r for r in (p, q) if set(model.inputs) & set(symbols(inlined_gradient(model, r)))]
        with_x = (f", and {' and '.join(f'de/d{r}' for r in grows)} grow{'s' if len(grows) == 1 else ''} with "
                  f"the input too{x_note}: one row with a large input can make a step overshoot, and the next "
                  "step is larger still" if grows else "")
        return (f"Why: {p} and {q} multiply each other, so each one's gradient grows with the other "
                f"(de/d{p} = {grads[p]}, de/d{q} = {grads[q]}, g = {g}){with_x}.")
    # linear in its parameters: one row's squared loss has curvature 2·Σ(dpred/dq)² along g
    ones = {"dloss": const(1.0)}
    dpred = [plain(subs(model.grads[q], ones)) for q in model.params]
    terms = " + ".join(t if t == "1" else f"{t}²" for t in dpred)
    text = (f"Why: on one row the loss of {plain(model.pred)} is a parabola whose curvature along "
            f"the gradient is 2·({terms}); a plain SGD step overshoots that row once "
            f"lr·2·({terms}) > 2")
    if len(model.inputs) == 1 and loss == "squared":
        x = np.abs(X[:, 0])
        big = float(x.max()) if len(x) else 0.0
        with np.errstate(over="ignore"):
            bound = 1.0 / (big * big + 1.0)
        if bound > 0:  # x near 1e308 squares to infinity: no bound worth printing
            text += (f", so on the row with the largest x² (x = {big:g}) once lr > "
                     f"1/({big:g}² + 1) = {bound:.3g}")
    return text + "."


# ---------------------------------------------------------------------------------------------
# The explosion story


@dataclass
class Onset:
    """Where the explosion started (see `run-up` in the module docstring)."""

    line: int  # index into result.steps
    epoch: int
    step: int
    row: int
    x: float | None
    moved: list[str]  # parameters with the largest updates relative to their values
    relative: dict[str, float]  # their relative updates at that step
    loss_before: float  # the step's own loss before and after its update
    loss_after: float
    lowest: float  # the mean loss over all data rows just before this step (at most the Run's start)
    start_loss: float  # … and where the Run began
    rows: int


ONSET_EVALS = 4_000_000  # steps × data rows the onset search evaluates at most (the last steps)


def find_onset(result: "Result", div_line: int, X: np.ndarray, Y: np.ndarray) -> Onset | None:
    """The step after the run's lowest loss over the whole data, before the diverging line."""
    steps = result.table("steps")
    if not (0 <= div_line < len(steps)):
        return None
    model = result.spec.model
    step_no = steps["step"]
    ends = np.flatnonzero(np.r_[step_no[1:div_line + 1] != step_no[:div_line], True])  # batch ends
    window = max(1, min(len(ends), ONSET_EVALS // max(len(Y), 1)))
    truncated = window < len(ends)
    ends = ends[len(ends) - window:]
    # the full-data loss before each of these steps, and after the last of them
    starts = np.r_[np.searchsorted(step_no, step_no[ends], "left")]
    params = {q: np.r_[steps[q][starts], steps[f"new {q}"][ends[-1]]] for q in model.params}
    full = mean_loss(model, result.experiment.loss, X, Y, params)
    start = mean_loss(model, result.experiment.loss, X, Y, {q: steps[q][:1] for q in model.params})[0]
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(full[:-1] <= start)  # NaN (blown up) is never below
    if not len(below) and truncated:
        return None  # it started before the steps looked at: no claim rather than a wrong one
    j = int(below[-1]) if len(below) else 0  # the last time the loss was back where the Run began
    end, first = int(ends[j]), int(starts[j])
    geo = step_geometry(result, np.array([end]))
    rel = _relative_updates(result, end)
    top = max(rel.values()) if rel else 0.0  # the largest updates, and those at least half as large
    moved = [q for q, r in sorted(rel.items(), key=lambda kv: -kv[1]) if top and r >= top / 2][:3]
    inputs = model.inputs
    return Onset(line=first, epoch=int(steps["epoch"][end]), step=int(step_no[end]),
                 row=int(steps["row"][first]),
                 x=float(steps[inputs[0]][first]) if len(inputs) == 1 else None,
                 moved=moved, relative={q: rel[q] for q in moved},
                 loss_before=float(geo.before[0]), loss_after=float(geo.after[0]), lowest=float(full[j]),
                 start_loss=float(start), rows=len(Y))


def _relative_updates(result: "Result", line: int) -> dict[str, float]:
    s = result.table("steps").row(line)
    out = {}
    for q in result.spec.model.params:
        old, new = float(s[q]), float(s[f"new {q}"])
        if math.isfinite(old) and math.isfinite(new):
            out[q] = abs(new - old) / max(abs(old), 1e-12)
    return out


def onset_sentence(result: "Result", onset: Onset) -> str:
    where = f"epoch {onset.epoch}, step {onset.step} (data row {onset.row}"
    where += f", x = {onset.x:g})" if onset.x is not None else ")"
    step_no = result.table("steps")["step"]
    s = result.table("steps").row(int(np.searchsorted(step_no, onset.step, "right")) - 1)  # the batch's update
    changes = ", ".join(f"{q} {float(s[q]):.4g} → {float(s[f'new {q}']):.4g}" for q in onset.moved)
    changes = f" ({changes})" if changes else ""
    own = "its own rows" if result.spec.batch_size > 1 else "its own row"
    verb = "overshot" if onset.loss_after > onset.loss_before else "did not overshoot"
    return (f"It started at {where}: this update{changes} {verb} {own} (loss {onset.loss_before:,.4g} → "
            f"{onset.loss_after:,.4g}), and from then on the loss over all {onset.rows:,} rows never came back "
            f"down to where the Run began ({onset.start_loss:,.4g}).")


# ---------------------------------------------------------------------------------------------
# A learning rate that is proven to train


@dataclass
class SafeLr:
    """The largest learning rate tried that trained (the safe-lr diagnostic)."""

    lr: float | None  # the largest lr tried that trained (None: none did)
    first_loss: float | None = None
    last_loss: float | None = None
    epochs: int = 0
    tried: list[float] = field(default_factory=list)

    def sentence(self, current: float) -> str:
        if self.lr is None:
            lowest = min(self.tried) if self.tried else current
            return (f"No learning rate from {max(self.tried or [current]):g} down to {lowest:g} trained with a "
                    f"falling loss over {self.epochs} epochs from the same start: look at the init values "
                    "or the model.")
        return (f"lr {self.lr:g} trains: loss {self.first_loss:,.4g} → {self.last_loss:,.4g} over "
                f"{self.epochs} epochs from the same start (checked: the largest lr of the 1-3 grid below "
                f"{current:g} that does).")


def candidate_lrs(lr: float, n: int = SEARCH_CANDIDATES) -> list[float]:
    """The 1-3 grid below `lr`, largest first: 1e-4 → 3e-5, 1e-5, 3e-6, …"""
    if not (lr > 0 and math.isfinite(lr)):
        return []
    out: list[float] = []
    k = math.floor(math.log10(lr)) + 1
    while len(out) < n:
        for m in (3.0, 1.0):
            v = float(f"{m}e{k}")
            if v < lr * (1 - 1e-9) and len(out) < n:
                out.append(v)
        k -= 1
    return out


def trains(epoch_losses: np.ndarray) -> bool:
    """Finite, never rising from epoch to epoch, and lower at the end than at the start."""
    losses = np.asarray(epoch_losses, dtype=float)
    if len(losses) < 2 or not np.isfinite(losses).all():
        return False
    return bool((np.diff(losses) <= 1e-9 * np.abs(losses[:-1])).all() and losses[-1] < losses[0])


def search_safe_lr(result: "Result", x, y, start, sweep, row_cost: float = 1.0) -> SafeLr:
    """Run the candidates together (`sweep`) from the Run's own start and keep the largest that
    trains. `start` is the State this Run started from, or None after Reset (each candidate then
    replays the Reset with its own lr, as pressing Reset with that lr would). `sweep` is
    `train.sweep`, passed in so that this module never imports train (which imports it).
    `row_cost`: what one row step costs in scalar-model row steps (a table model whose every step
    updates every table entry costs more), so the budget holds in time, not in rows."""
    exp = result.experiment
    n_rows = len(np.asarray(y)) * row_cost
    lrs = candidate_lrs(exp.lr)
    epochs = max(exp.epochs, SEARCH_MIN_EPOCHS)
    while epochs > 2 and len(lrs) * epochs * n_rows > SEARCH_STEP_BUDGET:
        epochs -= 1
    while lrs and len(lrs) * epochs * n_rows > SEARCH_STEP_BUDGET:
        lrs = lrs[:-1]
    if not lrs:
        return SafeLr(None, epochs=epochs)
    # largest first, in growing groups (1, 2, 4, the rest): the answer is usually one of the first,
    # and each group is one sweep (one compiled call where the flavour allows)
    done = 0
    for size in (1, 2, 4, len(lrs)):
        group = lrs[done:done + size]
        if not group:
            break
        candidates = [exp.replace(name=f"{exp.name} lr {lr:g}", lr=lr, epochs=epochs) for lr in group]
        states = None if start is None else [start] * len(candidates)
        for lr, r in zip(group, sweep(candidates, x, y, states=states)):
            losses = r.column("epochs", "loss")
            if r.diagnostics.divergence is None and trains(losses):
                return SafeLr(lr, float(losses[0]), float(losses[-1]), epochs, lrs[:lrs.index(lr) + 1])
        done += len(group)
    return SafeLr(None, epochs=epochs, tried=lrs)


def rising(epoch_losses: np.ndarray) -> tuple[int, int] | None:
    """(k, peak): the loss rose by more than RISE from epoch index k to k + 1, and peaked at
    index `peak` ≥ k + 1; None when it never rose."""
    losses = np.asarray(epoch_losses, dtype=float)
    if len(losses) < 2 or not np.isfinite(losses).all():
        return None
    with np.errstate(all="ignore"):
        up = losses[1:] > losses[:-1] * (1 + RISE)
    if not up.any():
        return None
    k = int(np.argmax(up))
    return k, k + 1 + int(np.argmax(losses[k + 1:]))


# ---------------------------------------------------------------------------------------------
# ReLU units


@dataclass
class Unit:
    """A ReLU unit of a model: its pre-activation and the parameters it gates."""

    name: str  # the pre-activation's cell, e.g. "u" or "u2"
    pre: Expr  # a·x + b, over inputs and parameters
    inputs_params: list[str]  # parameters inside the pre-activation (a, b)
    frozen: list[str]  # parameters that get no gradient while the unit is off (a, b, c)

    def text(self) -> str:
        return plain(self.pre)


def relu_units(model: Model) -> list[Unit]:
    """Hidden units h = max(u, 0) of the model, found in its own cells."""
    cells = dict(model.intermediates)
    units = []
    for name, e in model.intermediates:
        if e.op == "max" and e.args[0].op == "sym" and e.args[1].op == "const" and e.args[1].args[0] == 0.0:
            u = e.args[0].name
            pre = cells[u]
            inside = [q for q in model.params if q in symbols(pre)]
            out = [q for q in model.params if name in symbols(model.grads[q])]
            units.append(Unit(u, pre, inside, inside + [q for q in out if q not in inside]))
    return units


def _pre_activation(unit: Unit, params: dict[str, np.ndarray], X: np.ndarray,
                    inputs: list[str]) -> np.ndarray:
    """The unit's a·x + b for every (line, data row): shape (lines, rows)."""
    env = {q: constant(np.asarray(v)[:, None]) for q, v in params.items()}
    for i, n in enumerate(inputs):
        env[n] = constant(X[None, :, i])
    return jet(unit.pre, env)[0]


def _extreme_rows(X: np.ndarray) -> np.ndarray:
    """For one input the pre-activation a·x + b is monotone in x, so its extremes over the data
    sit at the smallest and largest x (rounding is monotone too): two rows decide for all."""
    if X.shape[1] != 1:
        return X
    return np.array([[X[:, 0].min()], [X[:, 0].max()]])


@dataclass
class DeadUnit:
    """A ReLU unit that stopped firing for every row, and when."""

    unit: str
    pre: str  # the unit's pre-activation in words, e.g. "a·x + b"
    params: list[str]  # the parameters that stopped moving
    epoch: int | None  # None: dead from the start of this Run
    step: int | None
    row: int | None
    x: float | None
    before: dict[str, float] = field(default_factory=dict)  # the killing update: values before
    after: dict[str, float] = field(default_factory=dict)  # … and after

    def sentence(self) -> str:
        pre = self.pre
        off = f"{pre} ≤ 0 on every data row"
        frozen = ", ".join(self.params)
        if self.step is None:
            return (f"The ReLU unit {pre} was dead from the start of this Run ({off}), so "
                    f"{frozen} never moved.")
        moved = ", ".join(f"{q} {self.before[q]:.4g} → {self.after[q]:.4g}" for q in self.before)
        where = f"epoch {self.epoch}, step {self.step} (data row {self.row}"
        where += f", x = {self.x:g})" if self.x is not None else ")"
        return (f"The ReLU unit {pre} died at {where}: that update ({moved}) put {off}, and it "
                f"never came back, so {frozen} received no gradient from then on.")


def dead_units(result: "Result", X: np.ndarray) -> dict[str, DeadUnit]:
    """Units whose pre-activation is ≤ 0 on every data row at the end, with the step they died."""
    model = result.spec.model
    steps = result.table("steps")
    out: dict[str, DeadUnit] = {}
    rows = _extreme_rows(X)
    for unit in relu_units(model):
        final = {q: np.array([result.params[q]]) for q in model.params}
        if (_pre_activation(unit, final, rows, model.inputs) > 0).any():
            continue
        if not len(steps):
            continue
        if result.sampled:  # the loop found the batch after its last alive update (record.Reductions)
            out.update(_dead_unit_sampled(result, unit, rows))
            continue
        step_no = steps["step"]
        ends = np.flatnonzero(np.r_[step_no[1:] != step_no[:-1], True])
        alive_at = None
        chunk = max(1, 5_000_000 // max(len(rows), 1))
        hi = len(ends)
        while hi > 0 and alive_at is None:  # walk back from the end to the last alive update
            lo = max(0, hi - chunk)
            sel = ends[lo:hi]
            new = {q: steps[f"new {q}"][sel] for q in model.params}
            alive = (_pre_activation(unit, new, rows, model.inputs) > 0).any(axis=1)
            if alive.any():
                alive_at = lo + int(np.flatnonzero(alive)[-1])
            hi = lo
        if alive_at is None:
            first = {q: steps[q][:1] for q in model.params}
            if not (_pre_activation(unit, first, rows, model.inputs) > 0).any():
                out[unit.name] = DeadUnit(unit.name, unit.text(), unit.frozen, None, None, None, None)
                continue
            k = 0  # alive before the first update, dead after it
        else:
            k = alive_at + 1
        line = int(ends[k])
        first_line = int(ends[k - 1]) + 1 if k > 0 else 0
        s = steps.row(line)
        x = float(steps[model.inputs[0]][first_line]) if len(model.inputs) == 1 else None
        out[unit.name] = DeadUnit(unit.name, unit.text(), unit.frozen, int(s["epoch"]), int(s["step"]),
                                  int(steps["row"][first_line]), x,
                                  {q: float(s[q]) for q in unit.inputs_params},
                                  {q: float(s[f"new {q}"]) for q in unit.inputs_params})
    return out


def _dead_unit_sampled(result: "Result", unit: Unit, rows: np.ndarray) -> dict[str, DeadUnit]:
    """`dead_units`' answer for one unit of a run recorded sampled (it is dead at the end)."""
    model = result.spec.model
    steps = result.table("steps")
    death = result.reduced["death"][unit.name]

    def row(line: int) -> dict:
        return steps.row(int(result.position([line])[0]))

    if death is None:  # never alive after an update: was it before the first one?
        first = {q: np.array([row(0)[q]]) for q in model.params}
        if not (_pre_activation(unit, first, rows, model.inputs) > 0).any():
            return {unit.name: DeadUnit(unit.name, unit.text(), unit.frozen, None, None, None, None)}
        death = (result.reduced["first end"], 0)
    line, first_line = death
    s, f = row(line), row(first_line)
    x = float(f[model.inputs[0]]) if len(model.inputs) == 1 else None
    return {unit.name: DeadUnit(unit.name, unit.text(), unit.frozen, int(s["epoch"]), int(s["step"]),
                                int(f["row"]), x, {q: float(s[q]) for q in unit.inputs_params},
                                {q: float(s[f"new {q}"]) for q in unit.inputs_params})}


def always_active(result: "Result", X: np.ndarray) -> bool:
    """Every ReLU unit was on for every data row at every step's parameters and at the end."""
    model = result.spec.model
    units = relu_units(model)
    if not units or X.shape[1] != 1 or not result.rows("steps"):
        return False
    rows = _extreme_rows(X)
    if result.sampled:  # every line's parameters were looked at in the loop (record.Reductions)
        final = {q: np.array([result.params[q]]) for q in model.params}
        return result.reduced["active"] and all(
            bool((_pre_activation(u, final, rows, model.inputs) > 0).all()) for u in units)
    params = {q: np.r_[result.column("steps", q), result.params[q]] for q in model.params}
    return all(bool((_pre_activation(u, params, rows, model.inputs) > 0).all()) for u in units)


def as_line(model: Model, params: dict[str, float]) -> tuple[float, float] | None:
    """The line y = slope·x + intercept a one-input model is while every ReLU is on."""
    if len(model.inputs) != 1:
        return None
    env: dict[str, Expr] = {}
    for name, e in model.intermediates:
        e = subs(e, env)
        env[name] = e.args[0] if e.op == "max" else e  # every unit on: h = u
    pred = subs(model.pred, env)

    def at(x: float) -> float:
        values = {q: constant(np.array(v)) for q, v in params.items()}
        values[model.inputs[0]] = constant(np.array(x))
        return float(jet(pred, values)[0])

    b = at(0.0)
    return at(1.0) - b, b


# ---------------------------------------------------------------------------------------------
# Numeric against analytic gradients


@dataclass
class GradGap:
    """The largest gap between a numeric gradient estimate and the analytic gradient, and why."""

    param: str
    gap: float  # largest |estimate - analytic| over the steps considered
    line: int
    expected: float | None  # the forward difference's bias h·L''/2 at that step (0 for central)
    cause: str
    kind: str  # "bias" (smooth loss: h·L''/2), "kink" (a ReLU's kink crossed) or "rounding"


def gradient_gaps(result: "Result", upto: int | None = None) -> dict[str, GradGap]:
    """The numeric estimate's largest gap per parameter and its cause at that step. Steps from
    the explosion's start on are left out (every difference is huge there)."""
    steps = result.table("steps")
    exp = result.experiment
    model = result.spec.model
    n = len(steps) if upto is None else upto
    out: dict[str, GradGap] = {}
    if not n or f"de/d{model.params[0]} est" not in steps:
        return out
    h = exp.grad_step
    units = relu_units(model)
    for q in model.params:
        if result.sampled:  # its lines were looked at in the loop (record.Reductions; never diverged)
            line = result.reduced["gap"][q]
            if line is None:
                continue
            s = steps.row(int(result.position([line])[0]))
            with np.errstate(invalid="ignore"):
                gap = float(np.abs(s[f"de/d{q} est"] - s[f"de/d{q}"]))
        else:
            est = steps[f"de/d{q} est"][:n]
            ana = steps[f"de/d{q}"][:n]
            with np.errstate(invalid="ignore"):
                gaps = np.abs(est - ana)
            if not np.isfinite(gaps).any():
                continue
            line = int(np.nanargmax(gaps))
            gap = float(gaps[line])
            s = steps.row(line)
        params = {p: np.array([float(s[p])]) for p in model.params}
        inputs = {i: np.array([float(s[i])]) for i in model.inputs}
        direction = {p: np.array([1.0 if p == q else 0.0]) for p in model.params}
        curve = float(row_loss(model, exp.loss, inputs, np.array([float(s["y"])]), params, direction)[2][0])
        expected = h * curve / 2 if exp.grad_method == "forward" else 0.0
        crossed = []
        lo, hi = (0.0, h) if exp.grad_method == "forward" else (-h, h)
        for u in units:
            if q not in u.inputs_params and q not in u.frozen:
                continue
            ends = []
            for shift in (lo, hi):
                shifted = {p: v + (shift if p == q else 0.0) for p, v in params.items()}
                ends.append(float(_pre_activation(u, shifted, np.array([[float(s[i]) for i in model.inputs]]),
                                                  model.inputs)[0, 0]))
            if (ends[0] > 0) != (ends[1] > 0):
                crossed.append(u.text())
        where = f"step {int(s['step'])} (data row {int(s['row'])})"
        kind = "kink" if crossed else ("bias" if exp.grad_method == "forward" else "rounding")
        if crossed:
            cause = (f"at {where} the difference crosses the ReLU's kink ({crossed[0]} changes sign "
                     f"between {q} and {q} + h), where the loss is not smooth")
        elif exp.grad_method == "forward":
            cause = (f"at {where} the forward difference's bias h·L''/2 = {h:g}·{curve:.4g}/2 = "
                     f"{expected:.4g} explains it (a central difference removes that bias)")
        else:
            cause = f"at {where} what remains is rounding and the h²·L'''/6 term of a central difference"
        out[q] = GradGap(q, gap, line, expected, cause, kind)
    return out


def gaps_sentence(gaps: dict[str, GradGap]) -> str:
    """One sentence for all parameters: the largest gaps and what causes them."""
    listed = ", ".join(f"de/d{g.param} {g.gap:.4g}" for g in gaps.values())
    kinds = {g.kind for g in gaps.values()}
    if kinds == {"bias"}:
        why = ("each is the forward difference's bias h·L''/2 at its step (a central difference removes "
               "it; the notes on the 'est' headers of the steps tab show the arithmetic)")
    else:
        why = "; ".join(f"de/d{g.param}: {g.cause}" for g in gaps.values() if g.kind != "bias")
        if "bias" in kinds:
            why += "; the others are the forward difference's bias h·L''/2"
    return f"Numeric against analytic gradients, largest gaps: {listed}; {why}."


# ---------------------------------------------------------------------------------------------
# The loss landscape

LANDSCAPE_POINTS = 15  # grid points per axis (odd: the middle line is drawn too); with the path
# chart beside it, the grid fits a first screen
LANDSCAPE_ROW_EVALS = 4_000_000  # grid cells × data rows above which rows are sampled evenly
LANDSCAPE_PATH = 500  # path points kept at most (evenly sampled beyond this)


@dataclass
class Landscape:
    """The mean row loss over a grid of two parameters, the others held, with the steps' path."""

    p: str  # x axis
    q: str  # y axis
    xs: np.ndarray  # ascending
    ys: np.ndarray  # descending (the top row of the grid is the largest value)
    loss: np.ndarray  # (len(ys), len(xs)) mean row loss
    fixed: dict[str, float]  # the other parameters, held at these values
    path: np.ndarray  # (k, 2) the (p, q) of each step's parameters, then the final ones
    path_steps: np.ndarray  # the step number of each path point (0: the final parameters)
    rows_used: int  # data rows averaged (all of them unless above LANDSCAPE_ROW_EVALS)
    rows_total: int
    cut_at: int | None  # the path stops at this step: beyond it the run exploded


def mean_loss(model: Model, loss: str, X: np.ndarray, Y: np.ndarray, grid: dict[str, np.ndarray]) -> np.ndarray:
    """The mean row loss over the data at each point of `grid` (arrays of one shape), by the
    model's own cells, the same arithmetic the steps tab's loss column holds."""
    shape = np.broadcast(*grid.values()).shape
    points = {k: np.broadcast_to(v, shape).reshape(-1, 1) for k, v in grid.items()}
    n = int(np.prod(shape))
    total = np.zeros(n)
    chunk = max(1, 1_000_000 // max(n, 1))
    for r0 in range(0, len(Y), chunk):
        inputs = {name: X[None, r0:r0 + chunk, i] for i, name in enumerate(model.inputs)}
        total += row_loss_value(model, loss, inputs, Y[None, r0:r0 + chunk], points).sum(axis=1)
    return (total / len(Y)).reshape(shape)



def spaced_ints(last: int, count: int) -> np.ndarray:
    """`count` evenly spaced integers from 0 to `last`, rounded, ascending, each once (what
    np.unique would give; np.unique imports numpy.ma, ~10 ms of a fresh run's start)."""
    values = np.linspace(0, last, count).round().astype(np.int64)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values

def landscape(result: "Result", X: np.ndarray, Y: np.ndarray, points: int = LANDSCAPE_POINTS,
              path_points: int = LANDSCAPE_PATH) -> Landscape | None:
    """The mean loss over a grid of the two parameters that moved most, with the path."""
    model, steps = result.spec.model, result.table("steps")
    if len(model.params) < 2 or not len(steps) or model.tables:  # a table model's lines hold other rows' slots
        return None
    if result.sampled:
        return _landscape_sampled(result, X, Y, points, path_points)
    cut = len(steps)
    onset = result.diagnostics.onset
    if onset is not None:
        cut = min(len(steps), onset.line + 2)
    elif result.diagnostics.divergence is not None:
        cut = max(1, len(steps) - 1)
    path_all = {q: np.r_[steps[q][:cut], [] if cut < len(steps) else [result.params[q]]]
                for q in model.params}
    finite = np.all([np.isfinite(v) for v in path_all.values()], axis=0)
    path_all = {q: v[finite] for q, v in path_all.items()}
    if not len(path_all[model.params[0]]):
        return None
    spread = {q: float(np.ptp(v)) for q, v in path_all.items()}
    p, q = sorted(model.params, key=lambda k: -spread[k])[:2]
    p, q = sorted((p, q), key=model.params.index)
    end = {k: float(v[-1]) for k, v in path_all.items()}

    def axis(values: np.ndarray) -> np.ndarray:
        return _axis(float(values.min()), float(values.max()), points)

    xs, ys = axis(path_all[p]), axis(path_all[q])[::-1]
    loss, rows = _grid_loss(result, X, Y, end, p, q, xs, ys, points)
    step_no = np.r_[steps["step"][:cut], [] if cut < len(steps) else [0]][finite]
    keep = spaced_ints(len(step_no) - 1, min(len(step_no), path_points))
    path = np.c_[path_all[p][keep], path_all[q][keep]]
    return Landscape(p, q, xs, ys, loss, {k: v for k, v in end.items() if k not in (p, q)}, path,
                     step_no[keep].astype(int), len(rows), len(Y),
                     int(steps["step"][cut - 1]) if cut < len(steps) else None)


def _axis(lo: float, hi: float, points: int) -> np.ndarray:
    pad = max((hi - lo) * 0.2, abs(hi) * 0.05, 1e-3)
    return np.linspace(lo - pad, hi + pad, points)


def _grid_loss(result: "Result", X, Y, end: dict[str, float], p: str, q: str, xs, ys, points: int):
    """The mean loss over the grid of (p, q), the others held at `end`, and the rows averaged."""
    model = result.spec.model
    rows = np.arange(len(Y))
    if points * points * len(Y) > LANDSCAPE_ROW_EVALS:
        rows = np.linspace(0, len(Y) - 1, max(1, LANDSCAPE_ROW_EVALS // (points * points))).round().astype(int)
    grid = {k: np.array(v) for k, v in end.items()}
    grid[p], grid[q] = xs[None, :], ys[:, None]
    return mean_loss(model, result.experiment.loss, X[rows], Y[rows], grid), rows


def _landscape_sampled(result: "Result", X, Y, points: int, path_points: int) -> Landscape | None:
    """`landscape` of a run recorded sampled (engine/record.py): it never diverged, so its path
    is every line and then the final parameters, all finite; the axes come from each
    parameter's range over every line (reduced in the loop), the path from the lines it shows."""
    model = result.spec.model
    n = result.total_steps
    end = {k: float(result.params[k]) for k in model.params}
    lo = {k: min(result.param_range[k][0], end[k]) for k in model.params}
    hi = {k: max(result.param_range[k][1], end[k]) for k in model.params}
    spread = {k: hi[k] - lo[k] for k in model.params}
    p, q = sorted(model.params, key=lambda k: -spread[k])[:2]
    p, q = sorted((p, q), key=model.params.index)
    xs, ys = _axis(lo[p], hi[p], points), _axis(lo[q], hi[q], points)[::-1]
    loss, rows = _grid_loss(result, X, Y, end, p, q, xs, ys, points)
    keep = spaced_ints(n, min(n + 1, path_points))
    lines = keep[keep < n]
    result.record_lines(lines)
    at = result.position(lines)
    path = np.c_[np.r_[result.column("steps", p)[at], [end[p]] if len(lines) < len(keep) else []],
                 np.r_[result.column("steps", q)[at], [end[q]] if len(lines) < len(keep) else []]]
    step_no = np.r_[result.column("steps", "step")[at], [0] if len(lines) < len(keep) else []]
    return Landscape(p, q, xs, ys, loss, {k: v for k, v in end.items() if k not in (p, q)}, path,
                     step_no.astype(int), len(rows), len(Y), None)
