"""The pytorch flavour equals torch.optim to 1e-12 relative after every step.

For every optimizer family with every model (linear with 1 and 2 inputs, two_linear,
two_relu, mlp with 3 hidden units) at every batch size (1, 4 and the full data set), and every
option combination with every model and with every batch size (a cover of the full product,
`covering_cases`; SHEETSYNC_FULL_MATRIX=1 runs all of it), sheetsync's `new <p>` columns are
compared with the parameters of a plain torch.optim loop (tests/reference/torch_runs.py) over
at least 300 steps. Hyperparameters are drawn at random
from a generator seeded by the case's name, so every run tests the same numbers and a failure
can be replayed; a draw whose torch run leaves a sane range is retried at a smaller lr.
A batch size of 7 (not a power of two, with a shorter last batch) is checked for five optimizers,
absolute loss for three; two more groups check that an experiment naming
only its optimizer gets torch's defaults, and that a second Run with a new lr continues exactly
like a torch loop whose `param_groups[0]["lr"]` is changed in between. The tolerance (and why
atol is what it is) is explained in tests/engine/exactness.py; failures found so far, and their
causes, are in tests/engine/MISMATCHES.md.

Run:  python -m pytest tests/engine/test_pytorch_exact.py -q
      python -m pytest tests/engine/test_pytorch_exact.py -q -k "adam and mlp"
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from exactness import (RTOL, assert_trajectory_close, greedy_cover, sheetsync_trajectory, torch_family,
                       zero_crossing_atol)
from torch_runs import param_names, torch_trajectory

from sheetsync import Experiment
from sheetsync.engine import train


MIN_STEPS = 300
N_ROWS = 26  # batch 4 -> 6 full batches and one of 2 rows each epoch
BATCH_SIZES = {"bs1": 1, "bs4": 4, "full": "all", "bs7": 7}  # bs7: 3 batches of 7 and one of 5
MATRIX_BATCHES = ("bs1", "bs4", "full")


# ---------------------------------------------------------------------------------------------
# Problems: seeded data and the shape of each model.


@dataclass(frozen=True)
class Problem:
    name: str
    model: str
    n_inputs: int
    hidden: int = 2

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        x = rng.uniform(-2.0, 2.0, size=(N_ROWS, self.n_inputs))
        y = 1.5 * x.sum(axis=1) - 0.5 * np.abs(x[:, 0]) + 0.7 + rng.normal(0, 0.3, N_ROWS)
        return (x[:, 0] if self.n_inputs == 1 else x), y

    def names(self) -> list[str]:
        return param_names(self.model, self.n_inputs, self.hidden)

    def init(self, rng: np.random.Generator) -> dict[str, float]:
        """Random starting values; biases start positive so ReLU units begin alive."""
        return {n: float(rng.uniform(0.2, 1.0) if n[0] == "b" else rng.normal(0, 0.8)) for n in self.names()}

    def settings(self) -> dict:
        return {"model": self.model, "hidden": self.hidden} if self.model == "mlp" else {"model": self.model}


PROBLEMS = [
    Problem("linear", "linear", 1),
    Problem("linear2", "linear", 2),
    Problem("two_linear", "two_linear", 1),
    Problem("two_relu", "two_relu", 1),
    Problem("mlp3", "mlp", 2, hidden=3),
]


# ---------------------------------------------------------------------------------------------
# Optimizer configurations: each draws its hyperparameters (sheetsync setting names).


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sgd(momentum=False, dampening=False, nesterov=False, weight_decay=False, name="sgd"):
    def draw(rng):
        hp = {"optimizer": name, "lr": log_uniform(rng, 1e-3, 2e-2)}
        if momentum:
            hp["momentum"] = float(rng.uniform(0.5, 0.9))
        if dampening:
            hp["dampening"] = float(rng.uniform(0.05, 0.9))
        if nesterov:
            hp["nesterov"] = True
        if weight_decay:
            hp["weight_decay"] = log_uniform(rng, 1e-3, 0.1)
        return hp
    return draw


def _adagrad(lr_decay=False, accumulator=False, extras=False):
    def draw(rng):
        hp = {"optimizer": "adagrad", "lr": log_uniform(rng, 1e-2, 0.2)}
        if lr_decay:
            hp["lr_decay"] = log_uniform(rng, 1e-3, 0.1)
        if accumulator:
            hp["initial_accumulator_value"] = float(rng.uniform(0.01, 1.0))
        if extras:
            hp["weight_decay"] = log_uniform(rng, 1e-3, 0.1)
            hp["eps"] = log_uniform(rng, 1e-10, 1e-6)
        return hp
    return draw


def _rmsprop(centered=False, momentum=False, extras=False):
    def draw(rng):
        hp = {"optimizer": "rmsprop", "lr": log_uniform(rng, 1e-4, 3e-3), "alpha": float(rng.uniform(0.8, 0.999))}
        if centered:
            hp["centered"] = True
        if momentum:
            hp["momentum"] = float(rng.uniform(0.3, 0.9))
        if extras:
            hp["weight_decay"] = log_uniform(rng, 1e-3, 0.1)
            hp["eps"] = log_uniform(rng, 1e-10, 1e-6)
        return hp
    return draw


def _adam(name="adam", amsgrad=False, weight_decay=False):
    def draw(rng):
        hp = {"optimizer": name, "lr": log_uniform(rng, 1e-3, 3e-2), "beta1": float(rng.uniform(0.5, 0.95)),
              "beta2": float(rng.uniform(0.9, 0.9999)), "eps": log_uniform(rng, 1e-10, 1e-6)}
        if amsgrad:
            hp["amsgrad"] = True
        if weight_decay:
            hp["weight_decay"] = log_uniform(rng, 1e-3, 0.1)
        return hp
    return draw


CONFIGS: dict[str, Callable[[np.random.Generator], dict]] = {
    "sgd": _sgd(),
    "sgd_weight_decay": _sgd(weight_decay=True),
    "sgd_momentum": _sgd(momentum=True),
    "sgd_momentum_dampening": _sgd(momentum=True, dampening=True),
    "sgd_momentum_dampening_weight_decay": _sgd(momentum=True, dampening=True, weight_decay=True),
    "sgd_nesterov": _sgd(momentum=True, nesterov=True),
    "sgd_nesterov_weight_decay": _sgd(momentum=True, nesterov=True, weight_decay=True),
    "momentum_by_name": _sgd(name="momentum"),
    "nesterov_by_name": _sgd(name="nesterov", weight_decay=True),
    "adagrad": _adagrad(),
    "adagrad_lr_decay": _adagrad(lr_decay=True),
    "adagrad_initial_accumulator": _adagrad(accumulator=True),
    "adagrad_all_options": _adagrad(lr_decay=True, accumulator=True, extras=True),
    "rmsprop": _rmsprop(),
    "rmsprop_centered": _rmsprop(centered=True),
    "rmsprop_momentum": _rmsprop(momentum=True),
    "rmsprop_centered_momentum_weight_decay_eps": _rmsprop(centered=True, momentum=True, extras=True),
    "adam": _adam(),
    "adam_amsgrad": _adam(amsgrad=True),
    "adam_weight_decay": _adam(weight_decay=True),
    "adam_amsgrad_weight_decay": _adam(amsgrad=True, weight_decay=True),
    "adamw": _adam("adamw", weight_decay=True),
    "adamw_amsgrad": _adam("adamw", amsgrad=True, weight_decay=True),
}


# ---------------------------------------------------------------------------------------------
# Cases: one optimizer configuration on one problem at one batch size.


@dataclass(frozen=True)
class Case:
    config: str
    problem: Problem
    batch: str
    loss: str = "squared"

    def __str__(self) -> str:
        suffix = "" if self.loss == "squared" else f"-{self.loss}"
        return f"{self.config}-{self.problem.name}-{self.batch}{suffix}"

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(str(self).encode()))

    def epochs(self) -> int:
        batch_size = BATCH_SIZES[self.batch]
        per_epoch = 1 if batch_size == "all" else math.ceil(N_ROWS / batch_size)
        return math.ceil(MIN_STEPS / per_epoch)


def stable_draw(case: Case) -> tuple[dict, dict[str, float], np.ndarray]:
    """Hyperparameters, start values and torch's trajectory; lr shrinks until torch stays sane."""
    rng = case.rng()
    hp, init = CONFIGS[case.config](rng), case.problem.init(rng)
    x, y = case.problem.data()
    for _ in range(12):
        expected = run_torch(case, hp, init, x, y)
        if np.all(np.isfinite(expected)) and np.max(np.abs(expected)) < 1e3:
            return hp, init, expected
        hp["lr"] /= 4
    raise AssertionError(f"{case}: could not find a stable lr for the torch reference")


def run_torch(case: Case, hp: dict, init: dict[str, float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    batch_size = BATCH_SIZES[case.batch]
    torch_hp = {k: v for k, v in hp.items() if k != "optimizer"}
    return torch_trajectory(case.problem.model, hp["optimizer"], torch_hp, init, x, y,
                            batch_size=0 if batch_size == "all" else batch_size, epochs=case.epochs(),
                            loss=case.loss, names=case.problem.names())


def run_sheetsync(case: Case, hp: dict, init: dict[str, float], x: np.ndarray, y: np.ndarray):
    experiment = Experiment(str(case), init=init, flavour="pytorch", epochs=case.epochs(),
                            batch_size=BATCH_SIZES[case.batch], loss=case.loss,
                            **case.problem.settings(), **hp)
    return train(experiment, x, y)


def family(config: str) -> str:
    """The torch optimizer a configuration runs (read from what it draws: no list to keep)."""
    return torch_family(CONFIGS[config](np.random.default_rng(0)))


def features(case: Case) -> set:
    """What a case checks: its configuration with its model and with its batch size, and its
    optimizer family with its model and batch size together."""
    return {("config, model", case.config, case.problem.name), ("config, batch", case.config, case.batch),
            ("family, model, batch", family(case.config), case.problem.name, case.batch)}


def covering_cases(product: list[Case]) -> list[Case]:
    """A subset of `product` that meets every feature of it (`exactness.greedy_cover`).

    Why a cover keeps the guarantee: an update's cells read only a parameter's gradient, its
    state and the hyperparameters, never which model or batch size made that gradient. So an
    option (weight decay, dampening, nesterov, lr_decay, the accumulator's start, centered,
    amsgrad, eps) is checked with every model and every batch size, and every optimizer family
    with every model at every batch size; what is left out is only an option's meeting with one
    model and one batch size at once, which runs no code that the pairs do not."""
    return greedy_cover(product, features)


# Every configuration x problem x batch size would be 345 cases; the cover runs 125 of them.
FULL_PRODUCT = [Case(config, problem, batch) for config in CONFIGS for problem in PROBLEMS for batch in MATRIX_BATCHES]
CASES = FULL_PRODUCT if os.environ.get("SHEETSYNC_FULL_MATRIX") else covering_cases(FULL_PRODUCT)
# A batch size that is not a power of two (1/7 is inexact; torch sums 7 rows out of order).
CASES += [Case(config, problem, "bs7") for config in ("sgd_momentum", "adagrad_all_options", "rmsprop_centered", "adam",
                                                      "adamw") for problem in PROBLEMS if problem.name != "linear"]
CASES += [Case(config, problem, "bs1", loss="absolute") for config in ("sgd_momentum", "rmsprop", "adam")
          for problem in PROBLEMS if problem.name in ("linear", "two_relu", "mlp3")]


def test_the_cases_cover_every_pair_and_every_family_model_and_batch():
    every = set().union(*(features(c) for c in FULL_PRODUCT))
    chosen = covering_cases(FULL_PRODUCT)
    assert set().union(*(features(c) for c in chosen)) == every
    assert {family(c) for c in CONFIGS} == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
    assert {c.config for c in chosen} == set(CONFIGS)
    assert len(chosen) < len(FULL_PRODUCT) // 2


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_step_matches_torch_optim(case: Case):
    hp, init, expected = stable_draw(case)
    x, y = case.problem.data()
    result = run_sheetsync(case, hp, init, x, y)
    names = case.problem.names()
    assert sorted(result.param_names) == sorted(names)
    assert len(expected) >= MIN_STEPS
    ours = sheetsync_trajectory(result, names)
    start = [init[n] for n in names]
    try:
        assert_trajectory_close(ours, expected, names, start, label=f"{case} {hp}")
    except AssertionError:
        # Some full-batch runs near a minimum are chaotic: torch's own trajectory moves by more
        # than 1e-12 when its start moves by one ulp, and torch's sqrt (MKL's vdSqrt, not
        # correctly rounded: 1.3% of results are one ulp off IEEE) makes such ulps. Past that
        # horizon no implementation can be held to 1e-12; before it, sheetsync must be.
        horizon = predictability_horizon(case, hp, init, x, y, expected)
        assert horizon is not None and horizon >= MIN_HORIZON, f"{case}: not chaotic, so the gap is real"
        assert_trajectory_close(ours[:horizon], expected[:horizon], names, start, label=f"{case} {hp} (horizon)")
        return
    assert result.params == pytest.approx(dict(zip(names, expected[-1])), rel=1e-12, abs=1e-300)


MIN_HORIZON = 100  # a chaotic case must still agree for this many steps


def predictability_horizon(case: Case, hp: dict, init: dict[str, float], x, y, expected: np.ndarray) -> int | None:
    """The first step at which torch, started one ulp away, leaves 1e-12 of itself (None: never)."""
    nudged = {n: float(np.nextafter(v, np.inf)) for n, v in init.items()}
    other = run_torch(case, hp, nudged, x, y)
    atol = zero_crossing_atol(expected, list(init.values()))
    apart = ~(np.abs(other - expected) <= RTOL * np.abs(expected) + atol)
    return int(np.argmax(apart.any(axis=1))) if apart.any() else None


# ---------------------------------------------------------------------------------------------
# Defaults: an experiment that names only the optimizer behaves like torch.optim's defaults.


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_defaults_are_torch_defaults(optimizer: str):
    problem = PROBLEMS[0]
    x, y = problem.data()
    init = {"a": 0.3, "b": -0.2}
    experiment = Experiment("defaults", init=init, flavour="pytorch", optimizer=optimizer, epochs=12)
    ours = sheetsync_trajectory(train(experiment, x, y), problem.names())
    expected = torch_trajectory("linear", optimizer, {}, init, x, y, epochs=12, names=problem.names())
    assert_trajectory_close(ours, expected, problem.names(), list(init.values()), label=f"{optimizer} defaults")


# ---------------------------------------------------------------------------------------------
# Run / continue: two runs with a changed lr equal one torch loop whose lr is changed in between.

CONTINUE_CONFIGS = ["sgd_momentum_dampening", "sgd_nesterov", "adagrad_all_options",
                    "rmsprop_centered_momentum_weight_decay_eps", "adam_amsgrad_weight_decay", "adamw"]


@pytest.mark.parametrize("config", CONTINUE_CONFIGS)
def test_continuing_with_a_new_lr_matches_torch_param_groups_change(config: str):
    case = Case(config, PROBLEMS[3], "bs4")
    hp, init, _ = stable_draw(case)
    x, y = case.problem.data()
    names = case.problem.names()
    first = train(Experiment("run 1", init=init, flavour="pytorch", epochs=20, batch_size=4,
                             **case.problem.settings(), **hp), x, y)
    second_hp = {**hp, "lr": hp["lr"] / 3}
    second = train(Experiment("run 2", init=init, flavour="pytorch", epochs=20, batch_size=4,
                              **case.problem.settings(), **second_hp), x, y, state=first.state)
    ours = np.vstack([sheetsync_trajectory(first, names), sheetsync_trajectory(second, names)])
    expected = torch_with_lr_change(case, hp, init, x, y, epochs_each=20)
    assert_trajectory_close(ours, expected, names, [init[n] for n in names], label=f"{config} continued")


def torch_with_lr_change(case: Case, hp: dict, init: dict, x: np.ndarray, y: np.ndarray, epochs_each: int):
    """One torch loop, epochs_each epochs at lr, then `param_groups[0]['lr'] = lr / 3` for as many more."""
    from torch_runs import batch_loss, batches, torch, torch_optimizer

    names = case.problem.names()
    params = {n: torch.tensor(init[n], requires_grad=True) for n in names}
    opt = torch_optimizer(hp["optimizer"], [params[n] for n in names], {k: v for k, v in hp.items() if k != "optimizer"})
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    rows = []
    for epoch in range(2 * epochs_each):
        if epoch == epochs_each:
            opt.param_groups[0]["lr"] = hp["lr"] / 3
        for batch in batches(len(y), 4):
            opt.zero_grad()
            batch_loss(case.problem.model, params, xt[batch], yt[batch]).backward()
            opt.step()
            rows.append([params[n].item() for n in names])
    return np.array(rows)
