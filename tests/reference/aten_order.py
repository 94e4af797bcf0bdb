"""The order in which torch (ATen, CPU, float64) does its arithmetic, written out in plain Python.

These are the facts behind tests/engine/MISMATCHES.md, kept as code so the engine can be written
against them and tests/engine/test_torch_arithmetic.py can check they still hold for the torch
installed:

- `fma(a, b, c)`: a*b + c rounded once. ATen's `add(alpha)`, `lerp`, `addcmul` compute this way on
  FMA-capable CPUs (its AVX2/AVX512 kernels); `addcdiv` computes `self + (value*t1)/t2`.
- `aten_sum(values)`: `torch.sum` of a contiguous float64 vector on the CPU (SumKernel.cpp:
  vectorized_inner_sum -> row_sum -> multi_row_sum with 4-double vectors and 4 ILP accumulators,
  the cascade from 16 vector groups on, the scalar tail added first). Autograd reduces a
  broadcast 0-d parameter's gradient over a batch with it.
- `batch_row_scale(n)`: `MeanBackward` seeds each row's gradient with `1.0/n` before `PowBackward`
  multiplies by `2*err`.

Try it:  python tests/reference/aten_order.py     (compares with the installed torch)
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

LANES = 4  # doubles in ATen's Vectorized<double> as the sum kernel is dispatched (also on AVX512)
ILP = 4  # accumulators in row_sum
LEVELS = 4  # cascade levels in multi_row_sum


def fma(a: float, b: float, c: float) -> float:
    """a*b + c with a single rounding (exact rational arithmetic, then one conversion)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def lerp(start: float, end: float, weight: float) -> float:
    """torch.lerp as the fused ATen kernel computes it."""
    if weight < 0.5:
        return fma(weight, end - start, start)
    return fma(-(end - start), 1.0 - weight, end)


def addcdiv(self: float, t1: float, t2: float, value: float) -> float:
    """Tensor.addcdiv(t1, t2, value=value): (value * t1) / t2, then added."""
    return self + (value * t1) / t2


def batch_row_scale(n: int) -> float:
    """The factor every row's loss gradient gets from `.mean()` over n rows."""
    return 1.0 / n


def _add(x: list[float], y: list[float]) -> list[float]:
    return [a + b for a, b in zip(x, y)]


def _multi_row_sum(groups: list[list[list[float]]]) -> list[list[float]]:
    """multi_row_sum: ILP accumulators of vectors, with ATen's cascade for long inputs."""
    size = len(groups)
    level_power = max(4, (max(size - 1, 0)).bit_length() // LEVELS)
    level_step, level_mask = 1 << level_power, (1 << level_power) - 1
    zero = [0.0] * LANES
    acc = [[list(zero) for _ in range(ILP)] for _ in range(LEVELS)]
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            acc[0] = [_add(acc[0][k], groups[i][k]) for k in range(ILP)]
            i += 1
        for j in range(1, LEVELS):
            acc[j] = [_add(acc[j][k], acc[j - 1][k]) for k in range(ILP)]
            acc[j - 1] = [list(zero) for _ in range(ILP)]
            if i & (level_mask << (j * level_power)):
                break
    for i in range(i, size):
        acc[0] = [_add(acc[0][k], groups[i][k]) for k in range(ILP)]
    for j in range(1, LEVELS):
        acc[0] = [_add(acc[0][k], acc[j][k]) for k in range(ILP)]
    return acc[0]


def aten_sum(values: Sequence[float]) -> float:
    """torch.sum of a contiguous float64 CPU vector, operation for operation."""
    values = [float(v) for v in values]
    n_vectors = len(values) // LANES
    vectors = [values[j * LANES:(j + 1) * LANES] for j in range(n_vectors)]
    n_groups = n_vectors // ILP
    partial = _multi_row_sum([vectors[g * ILP:(g + 1) * ILP] for g in range(n_groups)])
    for j in range(n_groups * ILP, n_vectors):
        partial[0] = _add(partial[0], vectors[j])
    for k in range(1, ILP):
        partial[0] = _add(partial[0], partial[k])
    total = 0.0
    for v in values[n_vectors * LANES:]:
        total += v
    for lane in partial[0]:
        total += lane
    return total


if __name__ == "__main__":
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    sizes = list(range(1, 130)) + [255, 256, 257, 300, 1000, 4099]
    bad = [n for n in sizes
           if (w := rng.normal(size=n) * np.exp(rng.normal(size=n) * 3)).size
           and aten_sum(w) != torch.as_tensor(w).sum().item()]
    print("aten_sum differs from torch.sum for sizes:", bad or "none")
