"""An expression and its first two derivatives along a direction, over numpy arrays.

The diagnostics ask how a row's loss changes when the parameters move along a step Δ:
L(θ + s·Δ) ≈ L + s·L' + s²·L''/2, with L' = gᵀΔ (the slope along the step) and L'' = ΔᵀHΔ
(the curvature along it). Both come from the one model definition by truncated Taylor
arithmetic (each value carries its first and second derivative in s), evaluated for many steps
at once: exact where the loss is smooth, and at a ReLU's kink the derivative of the branch the
row is on, as autograd takes it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .expr import Expr, evaluate_array

Jet = tuple[np.ndarray, np.ndarray, np.ndarray]  # value, d/ds, d²/ds²


def constant(v) -> Jet:
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros_like(v)
    return v, z, z


def value(e: Expr, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """`e` alone, over arrays: the same operations as the loop (each IEEE operation rounds the
    same in numpy as in C), for the many evaluations of a landscape."""
    with np.errstate(all="ignore"):
        return evaluate_array(e, env)


def jet(e: Expr, env: Mapping[str, Jet]) -> Jet:
    """`e` evaluated to second order; `env` maps every symbol it reads to a Jet."""
    with np.errstate(all="ignore"):
        return _jet(e, env)


def _jet(e: Expr, env) -> Jet:
    op, args = e.op, e.args
    if op == "const":
        return constant(args[0])
    if op == "sym":
        return env[args[0]]
    if op == "if":
        cond = _jet(args[0], env)[0].astype(bool)
        t, f = _jet(args[1], env), _jet(args[2], env)
        return tuple(np.where(cond, a, b) for a, b in zip(t, f))  # type: ignore[return-value]
    vals = [_jet(a, env) for a in args]
    if op in ("<", ">", "=="):
        a, b = vals[0][0], vals[1][0]
        return constant(a < b if op == "<" else (a > b if op == ">" else a == b))
    (u, du, ddu) = vals[0]
    if op == "neg":
        return -u, -du, -ddu
    if op == "sign":
        return constant(np.sign(u))
    if op == "abs":
        s = np.where(u < 0, -1.0, 1.0)
        return np.abs(u), s * du, s * ddu
    if op == "exp":
        r = np.exp(u)
        return r, r * du, r * (ddu + du * du)
    if op in ("log", "log1p", "log10"):
        w = u + 1.0 if op == "log1p" else u
        k = 1.0 / np.log(10.0) if op == "log10" else 1.0
        d = du / w
        return {"log": np.log, "log1p": np.log1p, "log10": np.log10}[op](u), k * d, k * (ddu / w - d * d)
    if op == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-u))
        s1 = r * (1.0 - r)
        return r, s1 * du, s1 * ddu + s1 * (1.0 - 2.0 * r) * du * du
    if op == "sqrt":
        r = np.sqrt(u)
        d = du / (2 * r)
        return r, d, (ddu - 2 * d * d) / (2 * r)
    (v, dv, ddv) = vals[1]
    if op == "+":
        return u + v, du + dv, ddu + ddv
    if op == "-":
        return u - v, du - dv, ddu - ddv
    if op == "*":
        return u * v, du * v + u * dv, ddu * v + 2 * du * dv + u * ddv
    if op == "/":
        q = u / v
        dq = (du - q * dv) / v
        return q, dq, (ddu - 2 * dq * dv - q * ddv) / v
    if op == "max":  # the branch `a if a >= b else b` takes, as the loop does
        pick = u >= v
        return np.where(pick, u, v), np.where(pick, du, dv), np.where(pick, ddu, ddv)
    if op == "pow":  # only constant exponents occur (bias corrections, **0.5)
        p = v
        return u ** p, p * u ** (p - 1) * du, p * (p - 1) * u ** (p - 2) * du * du + p * u ** (p - 1) * ddu
    if op == "amax":  # the derivative of the term picked, as autograd takes it
        best = vals[0]
        for other in vals[1:]:
            pick = other[0] > best[0]
            best = tuple(np.where(pick, o, b) for o, b in zip(other, best))
        return best  # type: ignore[return-value]
    if op == "sum":
        return tuple(sum(parts[1:], parts[0]) for parts in zip(*vals))  # type: ignore[return-value]
    if op == "fma":
        (w, dw, ddw) = vals[2]
        return u * v + w, du * v + u * dv + dw, ddu * v + 2 * du * dv + u * ddv + ddw
    raise ValueError(f"unknown op {op}")
