"""Losses and output heads: a row's loss and its derivative, written in autograd's order.

A model ends in one of three heads, and the loss reads the head's outputs:

- ``linear``: ``pred`` itself (regression): ``squared`` or ``absolute`` of ``err = pred - y``.
- ``sigmoid``: one logit ``z``; ``p = σ(z)``, ``pred = p``: ``bce``, ``focal``, or ``squared`` /
  ``absolute`` of ``p - y``.
- ``softmax``: K logits ``z1``…``zK``; ``p_k``, ``pred`` the predicted class 0…K−1:
  ``cross_entropy``.

Every cell is written the way torch computes it (CPU, float64), so a sheetsync run equals a
torch loop over ``nn.Linear`` and the torch loss to rounding:

- σ(z) is torch's ``1/(1 + exp(-z))``;
- ``bce`` is ``binary_cross_entropy_with_logits``: ``(1 - y)·z - logσ(z)``, with
  ``logσ(z) = min(z, 0) - log1p(exp(-|z|))``; its backward is ``((σ(z) - y)·g)/k``;
- ``cross_entropy`` is ``log_softmax`` then ``nll_loss``: ``lsm_k = (z_k - m) - log Σ exp(z_j - m)``
  (m the largest logit), loss ``-lsm_y``; backward ``g_k - exp(lsm_k)·g`` with
  ``g = -(g0/k)`` on the label's logit (``g_k = g`` there, 0 elsewhere);
- ``focal`` is torchvision's ``sigmoid_focal_loss``: ``ce·(1 - p_t)^γ``, times
  ``α_t = α·y + (1 - α)(1 - y)`` when α is set, differentiated node by node.

Mean over the batch as torch's default reduction: `Share` carries the batch's 1/k (``w``) and k
(``bk``); a loss applies it where torch does (``/k`` in bce's backward, ``w·`` in mse's).
``log_base: 10`` is the loss divided by ln 10 (the fast.ai sheets' ``LOG``); its backward starts
from ``g0 = 1/ln 10`` instead of 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ..settings import HEAD_LOSSES
from .expr import Expr, absolute, amax, const, exp, log, log_sigmoid, sigmoid, sign, sqrt, sym, total, where

LN10 = math.log(10.0)
INV_LN10 = 1.0 / LN10  # d(loss/ln 10)/d(loss), the grad torch's DivBackward hands on

# Regression losses of err = pred - y: the row's loss and its derivative with respect to pred.
LOSSES = {
    "squared": (lambda err: err * err, lambda err: 2.0 * err),
    "absolute": (lambda err: absolute(err), lambda err: sign(err)),
}
LOG_LOSSES = ("bce", "cross_entropy", "focal")

@dataclass(frozen=True)
class Loss:
    """A loss with its settings: `log_base` "e" or "10"; `gamma`, `alpha` for focal."""

    name: str = "squared"
    log_base: str = "e"
    gamma: float = 2.0
    alpha: float | None = None

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        """The loss in words, with the base of its log (the sheet says which base a loss column uses)."""
        if self.name not in LOG_LOSSES:
            return {"squared": "squared error (pred - y)²", "absolute": "absolute error |pred - y|"}[self.name]
        what = {"bce": "binary cross-entropy of σ(z) against y ∈ {0, 1}",
                "cross_entropy": "cross-entropy of softmax(z1…zK) against the class y",
                "focal": f"focal loss (γ = {self.gamma:g}"
                         + (f", α = {self.alpha:g})" if self.alpha is not None else ", no α)")}[self.name]
        base = ("base-10 log (LOG, as the fast.ai sheets): the natural-log loss and its gradients / ln 10"
                if self.log_base == "10" else "natural log (LN)")
        return f"{what}, {base}; mean over the batch"

    @property
    def scale(self) -> float:
        """The factor the log losses' backward starts from (1, or 1/ln 10)."""
        return INV_LN10 if self.log_base == "10" and self.name in LOG_LOSSES else 1.0


def as_loss(loss: "Loss | str") -> Loss:
    return loss if isinstance(loss, Loss) else Loss(str(loss))


def of(experiment) -> Loss:
    """The loss an experiment's settings describe."""
    v = experiment.values
    alpha = v.get("focal_alpha")
    return Loss(v["loss"], str(v.get("log_base", "e")), float(v.get("gamma", 2.0)),
                None if alpha is None else float(alpha))


class Share(NamedTuple):  # immutable like a frozen dataclass, ~4x cheaper to define (start-up)
    """A row's share of a batch mean: w = 1/k and k, as loop symbols."""

    w: Expr
    k: Expr


BATCH_SHARE = Share(sym("w"), sym("bk"))


# ---------------------------------------------------------------------------------------------
# The heads


def regression_cells(loss: Loss, share: Share | None) -> list[tuple[str, Expr]]:
    """err, loss, dloss (d loss/d pred) of a linear head: the cells every existing model had."""
    loss_fn, dloss_fn = LOSSES[loss.name]
    d = dloss_fn(sym("err"))
    return [("err", sym("pred") - sym("y")), ("loss", loss_fn(sym("err"))),
            ("dloss", share.w * d if share is not None else d)]


def _over_k(e: Expr, share: Share | None) -> Expr:
    return e / share.k if share is not None else e


def _scaled(e: Expr, loss: Loss) -> Expr:
    return e * loss.scale if loss.scale != 1.0 else e


def _in_base(e: Expr, loss: Loss) -> Expr:
    """A natural-log loss in the experiment's base (a torch user writes loss / math.log(10))."""
    return e / LN10 if loss.scale != 1.0 else e


def torch_pow(q: Expr, e: float) -> Expr:
    """q ** e as torch's pow(tensor, scalar) computes it (its special cases are exact forms)."""
    if e == 0.0:
        return const(1.0)
    if e == 1.0:
        return q
    if e == 2.0:
        return q * q
    if e == 3.0:
        return (q * q) * q
    if e == 0.5:
        return sqrt(q)
    if e == -0.5:
        return 1.0 / sqrt(q)
    if e == -1.0:
        return 1.0 / q
    if e == -2.0:
        return 1.0 / (q * q)
    return q ** e


def sigmoid_cells(loss: Loss, share: Share | None) -> list[tuple[str, Expr]]:
    """p, pred, err, loss, correct, dloss (d loss/d z) of a sigmoid head reading the cell z."""
    z, y, p = sym("z"), sym("y"), sym("p")
    cells = [("p", sigmoid(z)), ("pred", p), ("err", p - y)]
    # class 1 when z > 0 (as sklearn's predict); nested IFs, not a comparison of comparisons,
    # so the spreadsheet formula reads the same
    correct = ("correct", where(z > 0.0, where(y > 0.5, 1.0, 0.0), where(y > 0.5, 0.0, 1.0)))
    if loss.name in LOSSES:
        loss_fn, dloss_fn = LOSSES[loss.name]
        d = dloss_fn(sym("err"))
        dp = share.w * d if share is not None else d  # mse/l1 backward: norm·(…)
        return cells + [("loss", loss_fn(sym("err"))), correct, ("dloss", (dp * (1.0 - p)) * p)]
    g0 = const(loss.scale)
    if loss.name == "bce":
        row = (1.0 - y) * z - log_sigmoid(z)
        d = (p - y) * g0 if loss.scale != 1.0 else p - y
        return cells + [("loss", _in_base(row, loss)), correct, ("dloss", _over_k(d, share))]
    if loss.name == "focal":
        gamma = loss.gamma
        ce = (1.0 - y) * z - log_sigmoid(z)
        cells += [("ce", ce), ("p_t", p * y + (1.0 - p) * (1.0 - y)), ("q", 1.0 - sym("p_t")),
                  ("mq", torch_pow(sym("q"), gamma))]
        focal = sym("ce") * sym("mq")
        if loss.alpha is not None:
            a = loss.alpha
            cells.append(("alpha_t", a * y + (1.0 - a) * (1.0 - y)))
            focal = sym("alpha_t") * focal
        cells += [("loss", _in_base(focal, loss)), correct]
        g = _over_k(g0, share) if share is not None else g0  # mean's backward: grad / k
        if loss.alpha is not None:
            g = g * sym("alpha_t")
        # loss = ce·mq: d ce = g·mq, d mq = g·ce; mq = q^γ: d q = d mq·(γ·q^(γ-1)); q = 1 - p_t
        dq = (g * sym("ce")) * (gamma * torch_pow(sym("q"), gamma - 1.0)) if gamma != 0.0 else const(0.0)
        dpt = -dq
        dp = dpt * y + -(dpt * (1.0 - y))  # p_t = p·y + (1 - p)·(1 - y)
        via_p = (dp * (1.0 - p)) * p  # sigmoid's backward
        via_ce = (p - y) * (g * sym("mq"))  # bce_with_logits' backward (no reduction)
        return cells + [("dloss", via_p + via_ce)]
    raise ValueError(f"the sigmoid head takes {', '.join(HEAD_LOSSES['sigmoid'])}, not {loss.name!r}")


def softmax_cells(loss: Loss, k: int, share: Share | None) -> list[tuple[str, Expr]]:
    """m, s, lsm1…K, p1…K, pred, err, loss, correct, dloss1…K of a softmax head over z1…zK."""
    if loss.name != "cross_entropy":
        raise ValueError(f"the softmax head takes cross_entropy, not {loss.name!r}")
    y = sym("y")
    zs = [sym(f"z{j}") for j in range(1, k + 1)]
    cells: list[tuple[str, Expr]] = [("m", amax(zs)), ("s", total([exp(z - sym("m")) for z in zs]))]
    cells += [(f"lsm{j}", (zs[j - 1] - sym("m")) - log(sym("s"))) for j in range(1, k + 1)]
    cells += [(f"p{j}", exp(sym(f"lsm{j}"))) for j in range(1, k + 1)]
    pred: Expr = const(float(k - 1))
    for j in range(k - 1, 0, -1):  # the first largest logit, as torch.argmax
        pred = where(zs[j - 1].eq(sym("m")), float(j - 1), pred)
    picked: Expr = sym(f"lsm{k}")
    for j in range(k - 1, 0, -1):
        picked = where(y.eq(float(j - 1)), sym(f"lsm{j}"), picked)
    cells += [("pred", pred), ("err", where(sym("pred").eq(y), 0.0, 1.0)),
              ("loss", _in_base(-picked, loss)), ("correct", 1.0 - sym("err"))]
    g0 = const(loss.scale)
    g = -(g0 / share.k) if share is not None else -g0  # nll_loss's backward, mean reduction
    for j in range(1, k + 1):
        on_label = where(y.eq(float(j - 1)), g, 0.0)
        cells.append((f"dloss{j}", on_label - sym(f"p{j}") * g))  # log_softmax's backward
    return cells
