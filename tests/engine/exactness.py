"""Shared helpers for the exactness tests against torch.optim and fastai.optimizer.

- `sheetsync_trajectory(result)`: the `new <p>` columns of `result.steps`, one row per step.
- `assert_trajectory_close(ours, theirs, names)`: 1e-12 relative after every step, with a
  message naming the first step and parameter that differ and by how much.

The tolerance. Both sides run float64; sheetsync claims torch's (or fastai's) operation order,
so the two trajectories should agree to a few ulps, far inside rtol = 1e-12. A pure relative
test breaks down only where a parameter crosses zero: `new = old - step` with |old| ~ |step| ~ S
leaves a tiny result whose absolute error is the error the operands already carried, about
rtol * S, not rtol * |new|. So each parameter's `atol` is rtol times the largest magnitude it
takes in the run (its start value included): the scale of the numbers that were combined. For a
parameter that keeps its size this adds at most 1e-12 of that size, so a real gap
(a wrong eps placement, a missing bias correction, a different first momentum step) — which
shows up at 1e-9 or far larger — still fails.

Run the tests that use these:  python -m pytest tests/engine/test_pytorch_exact.py tests/engine/test_fastai_exact.py -q
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence, TypeVar

import numpy as np

Case = TypeVar("Case")


RTOL = 1e-12


def sheetsync_trajectory(result, names: Sequence[str]) -> np.ndarray:
    """Parameters after every step from `result.steps` (a mini-batch step may span several rows;
    its `new <p>` is read from the step's last row)."""
    steps = result.steps.drop_duplicates(subset=["epoch", "step"], keep="last")
    return steps[[f"new {n}" for n in names]].to_numpy(dtype=np.float64)


def zero_crossing_atol(theirs: np.ndarray, start: Sequence[float]) -> np.ndarray:
    """Per parameter: RTOL x the largest |value| it takes in the run (its start included)."""
    return RTOL * np.max(np.abs(np.vstack([np.asarray(start, dtype=np.float64), theirs])), axis=0)


def first_difference(ours: np.ndarray, theirs: np.ndarray, atol: np.ndarray, names: Sequence[str]) -> str:
    """Where and by how much the two trajectories first part (for failure messages)."""
    bad = ~(np.abs(ours - theirs) <= RTOL * np.abs(theirs) + atol)
    if not bad.any():
        return "no difference"
    step, col = map(int, np.argwhere(bad)[0])
    gap = abs(ours[step, col] - theirs[step, col]) / max(abs(theirs[step, col]), 1e-300)
    with np.errstate(all="ignore"):
        worst = np.nanmax(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300))
    return (f"first difference at step {step + 1} (1-based), parameter {names[col]}: "
            f"sheetsync {float(ours[step, col])!r} vs reference {float(theirs[step, col])!r}, relative gap {gap:.3e}; "
            f"{int(bad.sum())} of {bad.size} values differ, largest relative gap {worst:.3e}")


def assert_trajectory_close(ours: np.ndarray, theirs: np.ndarray, names: Sequence[str],
                            start: Sequence[float], label: str = "") -> None:
    """Same number of steps, and every parameter after every step within tolerance."""
    assert ours.shape == theirs.shape, f"{label}: sheetsync ran {ours.shape[0]} steps, reference {theirs.shape[0]}"
    atol = zero_crossing_atol(theirs, start)
    where = first_difference(ours, theirs, atol, names)
    for col, name in enumerate(names):
        np.testing.assert_allclose(ours[:, col], theirs[:, col], rtol=RTOL, atol=float(atol[col]),
                                   err_msg=f"{label}: parameter {name}; {where}")


# ---------------------------------------------------------------------------------------------
# Covers: a few cases of a product that between them meet everything the product checks.


def greedy_cover(product: Sequence[Case], features: Callable[[Case], set[Hashable]],
                 cost: Callable[[Case], float] = lambda case: 1.0) -> list[Case]:
    """Cases of `product` that between them have every feature any case of it has: each pick
    the one adding the most features not yet met per unit of `cost` (the first such, in order)."""
    wanted = set().union(*(features(c) for c in product))
    chosen, covered = [], set()
    while covered != wanted:
        best = max(product, key=lambda c: len(features(c) - covered) / cost(c))
        chosen.append(best)
        covered |= features(best)
    return chosen


def torch_family(hp: dict) -> str:
    """The torch optimizer a configuration's settings run: its name, with SGD told apart as
    plain, momentum and nesterov."""
    if hp["optimizer"] not in ("sgd", "momentum", "nesterov"):
        return hp["optimizer"]
    if hp.get("nesterov") or hp["optimizer"] == "nesterov":
        return "nesterov"
    return "momentum" if "momentum" in hp or hp["optimizer"] == "momentum" else "sgd"
