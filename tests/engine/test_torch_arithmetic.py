"""Pins how the installed torch does its float64 CPU arithmetic (tests/reference/aten_order.py).

The pytorch flavour's exactness depends on these facts (tests/engine/MISMATCHES.md): if one of
these tests fails, torch (or the CPU it dispatches for) changed, and the engine's operation order
has to follow it. They test torch, not sheetsync, and take a second.

Run:  python -m pytest tests/engine/test_torch_arithmetic.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aten_order import addcdiv, aten_sum, batch_row_scale, fma, lerp
from torch_runs import torch  # (float64 default)

RNG = np.random.default_rng(2026)


def spread(size: int) -> np.ndarray:
    """Numbers of mixed sign and magnitude (1e-3 .. 1e3)."""
    return RNG.normal(size=size) * 10 ** RNG.uniform(-3, 3, size)


def scalar(v: float) -> torch.Tensor:
    return torch.tensor(float(v))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 8, 26, 29, 64, 255, 256, 257, 1000])
def test_torch_sum_is_atens_lane_order(n: int):
    for _ in range(20):
        values = spread(n)
        assert aten_sum(values) == torch.as_tensor(values).sum().item()


@pytest.mark.parametrize("n", [3, 5, 26, 100])
def test_batch_gradient_is_row_scaled_first_then_aten_summed(n: int):
    for _ in range(20):
        x, y = RNG.uniform(-2, 2, n), RNG.normal(size=n)
        a, b = scalar(RNG.normal()).requires_grad_(), scalar(RNG.normal()).requires_grad_()
        ((a * torch.as_tensor(x) + b - torch.as_tensor(y)) ** 2).mean().backward()
        err = (a.item() * x + b.item()) - y
        rows = batch_row_scale(n) * (2.0 * err)
        assert a.grad.item() == aten_sum(rows * x)
        assert b.grad.item() == aten_sum(rows)


def test_add_with_alpha_is_fused():
    for p, g, s in spread(3 * 2000).reshape(-1, 3):
        assert scalar(p).add_(scalar(g), alpha=s).item() == fma(s, g, p)


def test_lerp_is_fused_on_both_branches():
    for m, g in spread(2 * 2000).reshape(-1, 2):
        w = float(RNG.uniform(0, 1))
        assert scalar(m).lerp_(scalar(g), w).item() == lerp(m, g, w)


def test_addcmul_is_fused_after_scaling_the_first_factor():
    for v, g, s in spread(3 * 2000).reshape(-1, 3):
        assert scalar(v).addcmul_(scalar(g), scalar(g), value=s).item() == fma(s * g, g, v)


def test_addcdiv_scales_the_numerator_before_dividing():
    for p, m, d, s in spread(4 * 2000).reshape(-1, 4):
        assert scalar(p).addcdiv_(scalar(m), scalar(abs(d)), value=s).item() == addcdiv(p, m, abs(d), s)


def test_python_power_one_half_is_not_sqrt():
    """torch's `bias_correction2 ** 0.5` is a Python float power (libm pow), not sqrt."""
    x = 1.0 - 2.0 ** -53
    assert x ** 0.5 == 1.0
    assert math.sqrt(x) == 0.9999999999999999
