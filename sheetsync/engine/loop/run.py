"""Running the compiled loop for one experiment: prepare a Job, pack its state into the loop's
arrays, run epochs, unpack. `train`, `sweep` and the graddesc macros all run epochs through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ...errors import SettingError
from ...settings import Experiment
from ..labels import classes_of, label_problems
from ..models import default_init
from ..result import State
from .backend import run_kernel
from .spec import Spec, build_spec

if TYPE_CHECKING:
    from ..embeddings import Ids

# A kernel call covers at most this many row steps, so long runs report progress.
CHUNK_STEPS = 2_000_000


@dataclass
class Job:
    """One experiment, prepared: its compiled structure and its numbers."""

    experiment: Experiment
    spec: Spec
    X: np.ndarray
    Y: np.ndarray
    ids: Ids | None = None  # table models: the users and items the tables' rows belong to

    @property
    def flavour(self) -> str:
        return self.experiment.flavour

    @cached_property
    def param_names(self) -> list[str]:
        """Every parameter, in P's order: the spec's, or every table entry of a table model."""
        if not self.spec.tables:
            return self.spec.params
        from .. import embeddings  # table models only: not imported by a run without one (~1 ms)

        e = self.experiment
        return embeddings.param_names(self.ids, e.factors, e.bias)

    def hyper_row(self, state: State) -> np.ndarray:
        values = dict(self.experiment.values)
        if self.spec.tables:
            values.update(n_user=len(self.ids.users), n_item=len(self.ids.items))
        values["lr"] = current_lr(self.experiment, state)
        values["eve_d"] = state.extra.get("eve_d", 1.0)
        values["half"] = 0.5
        return np.array([float(values[name]) for name in self.spec.hyper])

    def order(self, first_epoch: int, n_epochs: int) -> np.ndarray:
        n = self.X.shape[0]
        if not self.experiment.shuffle:
            return np.arange(n, dtype=np.int64)[None, :]
        # Epoch k's order depends only on (seed, k): Runs in pieces shuffle as one long Run.
        seed = self.experiment.seed
        return np.stack([np.random.default_rng([seed, k]).permutation(n)
                         for k in range(first_epoch, first_epoch + n_epochs)]).astype(np.int64)


def current_lr(exp: Experiment, state: State) -> float:
    """The lr a Run uses: an annealing macro's lr, unless the user changed the setting since."""
    if "lr" in state.extra and state.extra.get("lr_setting") == exp.lr:
        return float(state.extra["lr"])
    return exp.lr


def prepare(experiment: Experiment, x, y, ids: Ids | None = None) -> Job:
    X, Y = as_data(x, y)
    return job_for(experiment, X, Y, ids=ids)


def job_for(experiment: Experiment, X: np.ndarray, Y: np.ndarray, models: dict | None = None,
            ids: Ids | None = None) -> Job:
    """The Job for data already checked by `as_data` (a sweep checks it once for all experiments;
    `models` shares model definitions between them). Table models take `ids` (default: users
    and items named by their 0-based indices, as many as X's largest index needs)."""
    if not isinstance(experiment, Experiment):
        raise SettingError("experiment", f"expected an Experiment, found {type(experiment).__name__}")
    spec = build_spec(experiment, X.shape[0], X.shape[1], models, classes=classes_of(experiment, Y))
    bad = label_problems(experiment, Y, spec.model.classes, limit=1)
    if bad:
        raise SettingError("y", f"data row {bad[0][0] + 1}: {bad[0][1]}")
    if spec.tables:
        from .. import embeddings  # table models only: not imported by a run without one (~1 ms)

        ids = embeddings.check_indices(X, ids)
        names = embeddings.param_names(ids, experiment.factors, experiment.bias)
        unknown = sorted(set(experiment.init) - set(names))
        if unknown:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise SettingError(f"init {unknown[0]}", f"{experiment.model} has no parameter {unknown[0]!r}; "
                               f"its parameters are {shown} (u<user>_<factor>, m<item>_<factor>, "
                               f"bu<user>, bm<item>, named from the ids)")
    return Job(experiment, spec, X, Y, ids)


def as_data(x, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(x, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or Y.ndim != 1 or X.shape[0] != Y.shape[0]:
        raise SettingError("data", f"expected x of shape (rows,) or (rows, inputs) and y of shape (rows,), "
                           f"found {X.shape} and {Y.shape}")
    if X.shape[0] < 1:
        raise SettingError("data", "expected at least one data row")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise SettingError("data", "expected finite numbers in x and y")
    return np.ascontiguousarray(X), np.ascontiguousarray(Y)


def signature(job: Job) -> dict:
    e = job.experiment
    sig = {"model": e.model, "optimizer": e.optimizer, "flavour": e.flavour,
           "params": job.spec.params, "state": job.spec.update.state}
    if job.spec.tables:  # the slots name the parameters; the tables' sizes say how many
        sig["tables"] = [len(job.ids.users), len(job.ids.items)]
    return sig


def reset_state(job: Job) -> State:
    """Parameters from `init` (or the documented defaults) and the optimizer's starting state."""
    e, params = job.experiment, job.param_names
    if job.spec.tables:
        from .. import embeddings  # table models only: not imported by a run without one (~1 ms)

        start = embeddings.initial_params(job.ids, e)
    else:
        start = default_init(e.model, params, e.seed)
    start.update(e.init)
    opt = {s: {q: float(job.spec.update.init[s]) for q in params} for s in job.spec.update.state}
    return State(params=start, opt=opt, t=0, epoch=0, extra={}, signature=signature(job))


# ---------------------------------------------------------------------------------------------
# Running epochs


@dataclass
class Chunk:
    """What one kernel call produced for one experiment."""

    lines: np.ndarray  # recorded step lines (rows x step columns), possibly empty
    epochs: np.ndarray  # epoch accumulators (epochs x k)
    lr: float
    diverged: tuple[int, int] | None  # (line within chunk, param index or -1)


def pack(job: Job, state: State) -> tuple[np.ndarray, ...]:
    params = job.param_names
    P = np.fromiter(map(state.params.__getitem__, params), np.float64, len(params))[None, :]
    S = np.array([np.fromiter(map(state.opt[s].__getitem__, params), np.float64, len(params))
                  for s in job.spec.update.state]).reshape(1, -1)
    H = job.hyper_row(state)[None, :]
    T = np.array([float(state.t)])
    return P, S, H, T


def unpack(job: Job, state: State, P, S, T, epochs_done: int) -> State:
    params, stems = job.param_names, job.spec.update.state
    n = len(params)
    opt = {s: dict(zip(params, S[si * n:(si + 1) * n].tolist())) for si, s in enumerate(stems)}
    return State(params=dict(zip(params, P.tolist())), opt=opt, t=int(T),
                 epoch=state.epoch + epochs_done, extra=dict(state.extra), signature=state.signature)


def run_epochs(job: Job, state: State, n_epochs: int, record: bool,
               out: np.ndarray | None = None) -> tuple[State, Chunk]:
    """Run epochs with the loop alone (no macros between them); `out`: see `run_kernel`."""
    P, S, H, T = pack(job, state)
    R, EPO, DIV = run_kernel(job.spec, job.X, job.Y, job.order(state.epoch, n_epochs), P, S, H, T,
                             n_epochs, record, out)
    done = int(DIV[0, 3])
    new_state = unpack(job, state, P[0], S[0], T[0], done)  # `done` counts a diverged epoch's part
    lines = R[0, : DIV[0, 4]] if record else R[0]
    diverged = (int(DIV[0, 1]), int(DIV[0, 2])) if DIV[0, 0] else None
    epochs = EPO[0, :done]
    return new_state, Chunk(lines, epochs, float(H[0, job.spec.hyper.index("lr")]), diverged)
