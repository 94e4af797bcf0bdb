"""Class labels: how many classes a classifier has, which y values it accepts, and what it predicts.

Binary models (a sigmoid head: ``logistic``, ``mlp`` with ``output: sigmoid``) read y as 0 or 1;
a softmax model reads y as a class index 0…K−1 (text labels are numbered by `parse.inputs` in
order of first appearance). K is the ``classes`` setting, else one more than the largest label.
"""

from __future__ import annotations

import numpy as np

from ..settings import head_of


def head(experiment) -> str:
    return head_of(experiment.model, experiment.output)


def classes_of(experiment, Y: np.ndarray) -> int:
    """K: 2 for a sigmoid head, the `classes` setting or max(y) + 1 for softmax (1 for regression)."""
    h = head(experiment)
    if h == "sigmoid":
        return 2
    if h != "softmax":
        return 1
    if experiment.classes:
        return int(experiment.classes)
    finite = Y[np.isfinite(Y)]
    return max(2, int(finite.max()) + 1) if len(finite) and finite.max() < 1e6 else 2


def label_problems(experiment, Y: np.ndarray, classes: int | None = None, limit: int = 20) -> list[tuple[int, str]]:
    """(0-based row, what is wrong) for each y the experiment's model cannot take as a label."""
    h = head(experiment)
    if h == "linear" or (h == "sigmoid" and experiment.loss in ("squared", "absolute")):
        return []  # a regression target (squared/absolute on p: any number, as torch allows)
    if h == "sigmoid":
        bad = np.flatnonzero(~((Y == 0.0) | (Y == 1.0)))
        what = f"{experiment.model} with loss {experiment.loss} expects y = 0 or 1"
    else:
        k = classes if classes is not None else classes_of(experiment, Y)
        bad = np.flatnonzero(~((Y == np.round(Y)) & (Y >= 0) & (Y < k)))
        what = f"a softmax model with {k} classes expects y = a class 0 to {k - 1} (or a text label)"
    return [(int(i), f"{what}, found {Y[i]:g}") for i in bad[:limit]]


# ---------------------------------------------------------------------------------------------
# Predictions (numpy, over all rows): the classes the final parameters predict


def _value(e, env: dict):
    op, args = e.op, e.args
    if op == "const":
        return args[0]
    if op == "sym":
        return env[args[0]]
    v = [_value(a, env) for a in args]
    if op in ("+", "sum"):
        out = v[0]
        for t in v[1:]:
            out = out + t
        return out
    if op == "-":
        return v[0] - v[1]
    if op == "*":
        return v[0] * v[1]
    if op == "/":
        return v[0] / v[1]
    if op == "neg":
        return -v[0]
    if op == "max":
        return np.where(v[0] >= v[1], v[0], v[1])
    raise ValueError(f"a logit uses {op!r}, which `labels` does not evaluate")


def logits(model, params: dict[str, float], X: np.ndarray) -> np.ndarray:
    """(rows, K) logits z (K = 1 for a sigmoid head), by the model's own intermediates."""
    env: dict = {x: X[:, i] for i, x in enumerate(model.inputs)}
    env.update({q: float(v) for q, v in params.items()})
    with np.errstate(all="ignore"):
        for name, e in model.intermediates:
            env[name] = np.broadcast_to(_value(e, env), (X.shape[0],))
    names = ["z"] if model.head == "sigmoid" else [f"z{k}" for k in range(1, model.classes + 1)]
    return np.stack([env[n] for n in names], axis=1)


def predicted(model, params: dict[str, float], X: np.ndarray) -> np.ndarray:
    """The class each row is predicted: z > 0 for a sigmoid head, the first largest logit for softmax."""
    z = logits(model, params, X)
    return (z[:, 0] > 0).astype(np.int64) if model.head == "sigmoid" else np.argmax(z, axis=1)


def confusion(model, params: dict[str, float], X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """K x K counts: row = true class, column = predicted class."""
    k = model.classes
    out = np.zeros((k, k), dtype=np.int64)
    truth = Y.astype(np.int64)
    ok = (truth >= 0) & (truth < k)
    np.add.at(out, (truth[ok], predicted(model, params, X)[ok]), 1)
    return out
