"""Classifiers in the pytorch flavour equal torch modules + torch losses + torch.optim to 1e-12
relative after every step (tests/engine/exactness.py explains the tolerance).

The reference (tests/reference/torch_classify.py) is what a PyTorch user writes: nn.Linear
(and nn.ReLU) in float64, F.binary_cross_entropy_with_logits / torchvision's focal loss /
F.cross_entropy / F.mse_loss of the sigmoid, mean over the batch, a torch.optim step per batch.
Every optimizer x batch sizes 1, 4 and the full data set with each loss (every loss meets every
optimizer and every batch size: a cover, SHEETSYNC_FULL_MATRIX=1 runs the product), ≥ 300 steps each; base-10
logs, focal's alpha and gamma, and the mlp's classifier heads each get their own cases.
Hyperparameters are drawn from a generator seeded by the case's name (replayable).

Where torch's vectorised kernels use SLEEF's exp/log (batches of 8 rows or more, log_softmax
over the classes) its values can differ from the C library's by an ulp: the tolerance holds that.

Run:  python -m pytest tests/engine/test_classification_exact.py -q
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

from exactness import assert_trajectory_close, greedy_cover, sheetsync_trajectory
from torch_classify import trajectory

from sheetsync import Experiment
from sheetsync.engine import train
from sheetsync.engine.models import build_model

MIN_STEPS = 300
N_ROWS = 26
BATCHES = {"bs1": 1, "bs4": 4, "full": "all"}


@dataclass(frozen=True)
class Problem:
    name: str
    model: str
    n_inputs: int
    classes: int = 2
    hidden: int = 2
    output: str = "linear"

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        x = rng.uniform(-2.0, 2.0, size=(N_ROWS, self.n_inputs))
        score = x @ np.linspace(1.0, -0.5, self.n_inputs) + rng.normal(0, 0.8, N_ROWS)  # overlapping classes
        if self.classes == 2:
            y = (score > 0).astype(float)
        else:
            y = np.digitize(score, np.quantile(score, np.linspace(0, 1, self.classes + 1)[1:-1])).astype(float)
        return (x[:, 0] if self.n_inputs == 1 else x), y

    def settings(self) -> dict:
        s = {"model": self.model}
        if self.model == "mlp":
            s.update(hidden=self.hidden, output=self.output)
        if self.classes > 2:
            s["classes"] = self.classes
        return s

    def names(self) -> list[str]:
        return build_model(self.model, self.n_inputs, self.hidden, self.output, self.classes).params

    def init(self, rng) -> dict[str, float]:
        return {n: float(rng.uniform(0.1, 0.5) if n[0] in "bd" else rng.normal(0, 0.7)) for n in self.names()}


LOGISTIC = Problem("logistic2", "logistic", 2)
SOFTMAX = Problem("softmax3", "softmax", 2, classes=3)


def _lr(rng, optimizer: str) -> float:
    low, high = {"sgd": (0.05, 0.5), "momentum": (0.02, 0.2), "nesterov": (0.02, 0.2), "adagrad": (0.05, 0.5),
                 "rmsprop": (1e-3, 1e-2), "adam": (5e-3, 5e-2), "adamw": (5e-3, 5e-2)}[optimizer]
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw(optimizer: str, rng, batch: str) -> dict:
    hp = {"optimizer": optimizer, "lr": _lr(rng, optimizer)}
    if batch == "full" and optimizer in ("rmsprop", "adam", "adamw"):
        # Full-batch adaptive steps at these lrs settle into a bounce around the optimum that
        # doubles any difference each few steps (chaos): an ulp of torch's SLEEF exp or BLAS sum
        # order would then decide the run. A smaller lr keeps the comparison about the arithmetic.
        hp["lr"] /= 50
    if optimizer in ("momentum", "nesterov"):
        hp["momentum"] = float(rng.uniform(0.5, 0.9))
    if optimizer == "rmsprop":
        hp["alpha"] = float(rng.uniform(0.8, 0.99))
    if optimizer in ("adam", "adamw"):
        hp.update(beta1=float(rng.uniform(0.6, 0.95)), beta2=float(rng.uniform(0.9, 0.999)))
    if optimizer == "adamw":
        hp["weight_decay"] = float(rng.uniform(1e-3, 0.05))
    return hp


@dataclass(frozen=True)
class Case:
    problem: Problem
    loss: str
    optimizer: str
    batch: str
    extra: tuple = ()  # (("log_base", "10"), ("gamma", 0.5), ...)

    def __str__(self) -> str:
        tail = "".join(f"-{k}{v}" for k, v in self.extra)
        return f"{self.problem.name}-{self.loss}-{self.optimizer}-{self.batch}{tail}"


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
LOGISTIC_LOSSES = ("bce", "focal", "squared")


def features(case: Case) -> set:
    """What a logistic case checks: its optimizer at its batch size, its loss with its optimizer,
    its loss at its batch size."""
    return {("optimizer, batch", case.optimizer, case.batch), ("loss, optimizer", case.loss, case.optimizer),
            ("loss, batch", case.loss, case.batch)}


# Every loss x optimizer x batch size of the logistic model would be 63 cases; the cover runs 21.
# Why that keeps the guarantee: a loss changes only the gradient the update reads, and the
# update never sees which loss made it; so every optimizer runs at every batch size, and every
# loss meets every optimizer and every batch size (the softmax and mlp heads below keep theirs).
LOGISTIC_PRODUCT = [Case(LOGISTIC, loss, opt, b) for loss in LOGISTIC_LOSSES for opt in OPTIMIZERS for b in BATCHES]
CASES = ((LOGISTIC_PRODUCT if os.environ.get("SHEETSYNC_FULL_MATRIX") else greedy_cover(LOGISTIC_PRODUCT, features))
         + [Case(SOFTMAX, "cross_entropy", opt, b) for opt in OPTIMIZERS for b in BATCHES]
         + [Case(LOGISTIC, "bce", "adam", b, (("log_base", "10"),)) for b in BATCHES]
         + [Case(SOFTMAX, "cross_entropy", "sgd", b, (("log_base", "10"),)) for b in BATCHES]
         + [Case(LOGISTIC, "focal", "sgd", b, (("gamma", g), ("focal_alpha", a), ("log_base", base)))
            for b in ("bs1", "bs4") for g, a, base in ((0.0, 0.25, "e"), (0.5, 0.75, "10"), (3.0, None, "e"),
                                                        (1.5, 0.4, "e"))]
         + [Case(LOGISTIC, "absolute", opt, "bs4") for opt in ("sgd", "adam")]
         + [Case(Problem("mlp_sigmoid", "mlp", 2, hidden=3, output="sigmoid"), "bce", opt, b)
            for opt in ("sgd", "adam") for b in BATCHES]
         + [Case(Problem("mlp_softmax", "mlp", 2, classes=3, hidden=3, output="softmax"), "cross_entropy", opt, b)
            for opt in ("sgd", "adam") for b in BATCHES]
         + [Case(Problem("logistic1", "logistic", 1), "bce", "sgd", "bs1"),
            Case(Problem("softmax4", "softmax", 3, classes=4), "cross_entropy", "adam", "bs4")])


def run_case(case: Case):
    p = case.problem
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    hp = draw(case.optimizer, rng, case.batch)
    start = p.init(rng)
    x, y = p.data()
    bs = BATCHES[case.batch]
    per_epoch = 1 if bs == "all" else math.ceil(N_ROWS / bs)
    epochs = math.ceil(MIN_STEPS / per_epoch)
    extra = dict(case.extra)
    exp = Experiment(case.loss, flavour="pytorch", loss=case.loss, batch_size=bs, epochs=epochs, init=start,
                     **p.settings(), **hp, **extra)
    names = p.names()
    ours = sheetsync_trajectory(train(exp, x, y), names)
    torch_hp = {k: v for k, v in hp.items() if k != "optimizer"}
    theirs = trajectory(p.model, case.optimizer, torch_hp, start, x, y, loss=case.loss, names=names,
                        batch_size=0 if bs == "all" else bs, epochs=epochs, classes=p.classes, hidden=p.hidden,
                        output=p.output, log_base=extra.get("log_base", "e"), gamma=extra.get("gamma", 2.0),
                        alpha=extra.get("focal_alpha"))
    return ours, theirs, names, start


def test_the_logistic_cases_cover_every_pair_and_every_optimizer_at_every_batch_size():
    chosen = greedy_cover(LOGISTIC_PRODUCT, features)
    assert set().union(*(features(c) for c in chosen)) == set().union(*(features(c) for c in LOGISTIC_PRODUCT))
    assert {(c.optimizer, c.batch) for c in chosen} == {(o, b) for o in OPTIMIZERS for b in BATCHES}
    assert len(chosen) == len(OPTIMIZERS) * len(BATCHES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch(case):
    ours, theirs, names, start = run_case(case)
    assert np.isfinite(theirs).all(), f"{case}: the torch run left finite numbers"
    assert len(theirs) >= MIN_STEPS
    assert_trajectory_close(ours, theirs, names, [start[n] for n in names], label=str(case))
