"""Optimizers: one parameter's update, written once per flavour as expressions.

Like fastai's optimizer (a short list of small steps), an update here is a list of cells
computed in order for each parameter. Cells read:

- ``g``: the gradient this step uses (the batch mean of the rows' gradients), ``p``: the
  parameter before the step, ``t``: this step's 1-based count (a float, as torch's ``step``);
- ``prev_<s>``: the state ``<s>`` as it was before this step (the row above, in sheet terms),
  and ``<s>`` once this step has computed it;
- hyperparameters by their setting names (``lr``, ``beta1``, ...), plus flavour bookkeeping
  that a macro changes between epochs (graddesc's ``eve_d``).

Each flavour spells the arithmetic in the order its original evaluates it, because float
arithmetic is not associative: torch's ``exp_avg.lerp_(grad, 1 - beta1)``, ``addcmul_``,
``addcdiv_`` and ``bias_correction2 ** 0.5``; fastai's ``debias``; the workbook's
``(g*lr)/SQRT(v)`` and its ``1-beta`` computed by subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..settings import Experiment
from .expr import Expr, const, fma, maximum, sqrt, sym, where

g, p, t = sym("g"), sym("p"), sym("t")


def prev(state: str) -> Expr:
    return sym(f"prev_{state}")


def h(name: str) -> Expr:  # a hyperparameter
    return sym(name)


@dataclass
class Update:
    """How one parameter steps: ordered cells, which of them are state, and where it starts."""

    cells: list[tuple[str, Expr]]  # in order; the last is "new"
    state: list[str]  # cell names carried to the next step (output columns <s>_<param>)
    hyper: list[str]  # hyperparameters read
    init: dict[str, float]  # state values after Reset
    details: dict[str, Any] = field(default_factory=dict)
    carry: str = "update"  # "update": the next epoch starts from the last update; "inputs": graddesc
    epoch_macro: str | None = None  # graddesc macros that run between epochs


def _lerp(start: Expr, end: Expr, weight: Expr) -> Expr:
    """torch.lerp as ATen computes it: two formulas switched at |weight| < 0.5, each fused."""
    return where(weight < 0.5, fma(weight, end - start, start), fma(-(end - start), 1.0 - weight, end))


def _add_(self: Expr, other: Expr, alpha: Expr) -> Expr:
    """torch's `self.add_(other, alpha=alpha)`: fused."""
    return fma(alpha, other, self)


def _addcmul_(self: Expr, t1: Expr, t2: Expr, value: Expr) -> Expr:
    """torch's `self.addcmul_(t1, t2, value=value)`: (value*t1)*t2 + self, fused."""
    return fma(value * t1, t2, self)


def _addcdiv_(self: Expr, t1: Expr, t2: Expr, value: Expr) -> Expr:
    """torch's `self.addcdiv_(t1, t2, value=value)`: self + (value*t1)/t2 (a division: not fused)."""
    return self + (value * t1) / t2


# ---------------------------------------------------------------------------------------------
# graddesc: the fast.ai workbook's tabs


def _graddesc(exp: Experiment) -> Update:
    o = exp.optimizer
    lr = h("lr")
    details = {"variant": f"graddesc {o}", "eps_placement": "none", "bias_correction": False,
               "weight_decay_mode": "none"}
    if o == "sgd":
        return Update([("new", p - lr * g)], [], ["lr"], {}, details | {"state_init": "none"}, "inputs")
    if o == "momentum":
        beta = h("momentum")
        m = prev("m") * beta + (1.0 - beta) * g
        return Update([("m", m), ("new", p - sym("m") * lr)], ["m"], ["lr", "momentum"], {"m": 0.0},
                      details | {"state_init": "carried (Reset: one pass from zero)"}, "inputs")
    if o == "rmsprop":
        beta = h("alpha")
        v = prev("v") * beta + (1.0 - beta) * (g * g)
        new = p - (g * lr) / sqrt(prev("v"))  # the workbook divides by the previous row's average
        return Update([("v", v), ("new", new)], ["v"], ["lr", "alpha"], {"v": 10000.0},
                      details | {"state_init": "carried (Reset: 10000, two warm-up passes)",
                                 "uses": "previous row's average"}, "inputs")
    if o in ("adam", "adam_ann", "eve"):
        b1, b2 = h("beta1"), h("beta2")
        m = prev("m") * b1 + (1.0 - b1) * g
        v = prev("v") * b2 + (1.0 - b2) * (g * g)
        step = (sym("m") * lr) / sqrt(sym("v"))
        new = p - (step / h("eve_d") if o == "eve" else step)
        hyper = ["lr", "beta1", "beta2"] + (["eve_d"] if o == "eve" else [])
        macro = {"adam": None, "adam_ann": "adam_ann", "eve": "eve"}[o]
        return Update([("m", m), ("v", v), ("new", new)], ["m", "v"], hyper, {"m": 0.0, "v": 10000.0},
                      details | {"state_init": "carried (Reset: m 0, v 10000, warm-up passes)"},
                      "inputs", macro)
    if o in ("adagrad", "adagrad_ann"):
        # A per-epoch normaliser n = sqrt(sum g^2)/rows, pasted by the macro; constant within an
        # epoch. The workbook's rate cell is lr/n (F2 = $D$2/F1) and each row is p - g*rate.
        new = p - g * (lr / prev("n"))
        init = 10000.0 if o == "adagrad" else 1e6
        reset = ("normaliser 10000, one pass, its normaliser pasted (Reset)" if o == "adagrad"
                 else "normaliser 1e6 (Reset)")
        return Update([("n", prev("n")), ("new", new)], ["n"], ["lr"], {"n": init},
                      details | {"state_init": reset,
                                 "normaliser": "sqrt(sum of g^2)/rows of the previous epoch"},
                      "update" if o == "adagrad" else "inputs", o)
    raise ValueError(o)


# ---------------------------------------------------------------------------------------------
# pytorch: torch.optim, single-tensor (CPU) code paths


def _pytorch(exp: Experiment) -> Update:
    o = exp.optimizer
    lr, wd = h("lr"), h("weight_decay")
    l2 = exp.weight_decay != 0 and o != "adamw"
    gw = _add_(g, p, wd) if l2 else g  # grad.add(param, alpha=weight_decay)
    cells: list[tuple[str, Expr]] = [("gw", gw)] if l2 else []
    G = sym("gw") if l2 else g
    hyper = ["lr"] + (["weight_decay"] if exp.weight_decay != 0 else [])
    details: dict[str, Any] = {"variant": f"torch.optim {o}", "weight_decay_mode": "l2" if l2 else "none"}

    if o in ("sgd", "momentum", "nesterov"):
        mom = exp.momentum
        if mom == 0:
            return Update(cells + [("new", _add_(p, G, -lr))], [], hyper, {},
                          details | {"variant": "torch.optim SGD", "state_init": "none"})
        buf = where(t.eq(1.0), G, _add_(prev("buf") * h("momentum"), G, 1.0 - h("dampening")))
        cells.append(("buf", buf))
        direction = _add_(G, sym("buf"), h("momentum")) if exp.nesterov else sym("buf")
        cells.append(("new", _add_(p, direction, -lr)))
        return Update(cells, ["buf"], hyper + ["momentum", "dampening"], {"buf": 0.0},
                      details | {"variant": "torch.optim SGD" + (" (nesterov)" if exp.nesterov else " (momentum)"),
                                 "state_init": "first gradient (b1 = g1, no dampening)"})
    if o == "adagrad":
        clr = lr / (1.0 + (t - 1.0) * h("lr_decay"))
        cells += [("sum", _addcmul_(prev("sum"), G, G, 1.0)),
                  ("new", _addcdiv_(p, G, sqrt(sym("sum")) + h("eps"), -clr))]
        return Update(cells, ["sum"], hyper + ["lr_decay", "eps"], {"sum": exp.initial_accumulator_value},
                      details | {"eps_placement": "outside sqrt", "state_init": "initial_accumulator_value"})
    if o == "rmsprop":
        alpha = h("alpha")
        cells.append(("v", _addcmul_(prev("v") * alpha, G, G, 1.0 - alpha)))
        state = ["v"]
        if exp.centered:
            cells.append(("gavg", _lerp(prev("gavg"), G, 1.0 - alpha)))
            avg = sqrt(_addcmul_(sym("v"), sym("gavg"), sym("gavg"), -1.0)) + h("eps")
            state.append("gavg")
        else:
            avg = sqrt(sym("v")) + h("eps")
        cells.append(("avg", avg))
        hyper += ["alpha", "eps"]
        if exp.momentum > 0:
            cells += [("buf", _addcdiv_(prev("buf") * h("momentum"), G, sym("avg"), 1.0)),
                      ("new", _add_(p, sym("buf"), -lr))]
            state.append("buf")
            hyper.append("momentum")
        else:
            cells.append(("new", _addcdiv_(p, G, sym("avg"), -lr)))
        return Update(cells, state, hyper, {s: 0.0 for s in state},
                      details | {"eps_placement": "outside sqrt", "bias_correction": False,
                                 "centered": exp.centered, "state_init": "zero"})
    if o in ("adam", "adamw"):
        b1, b2 = h("beta1"), h("beta2")
        P = p
        if o == "adamw" and exp.weight_decay != 0:
            cells.append(("pd", p * (1.0 - lr * wd)))  # param.mul_(1 - lr * weight_decay)
            P = sym("pd")
        cells.append(("m", _lerp(prev("m"), G, 1.0 - b1)))
        cells.append(("v", _addcmul_(prev("v") * b2, G, G, 1.0 - b2)))
        state = ["m", "v"]
        # torch: `bias_correction2 ** 0.5` is a pow() call; a literal 0.5 would let the compiler
        # turn it into sqrt(), which rounds differently now and then. `half` arrives at run time.
        bc1, bc2_sqrt = 1.0 - b1 ** t, (1.0 - b2 ** t) ** h("half")
        second = sym("v")
        if exp.amsgrad:
            cells.append(("vmax", maximum(prev("vmax"), sym("v"))))
            state.append("vmax")
            second = sym("vmax")
        cells.append(("denom", sqrt(second) / bc2_sqrt + h("eps")))
        cells.append(("new", _addcdiv_(P, sym("m"), sym("denom"), -(lr / bc1))))
        return Update(cells, state, hyper + ["beta1", "beta2", "eps", "half"], {s: 0.0 for s in state},
                      details | {"eps_placement": "after bias correction", "bias_correction": True,
                                 "amsgrad": exp.amsgrad, "state_init": "zero",
                                 "weight_decay_mode": "decoupled" if o == "adamw" else details["weight_decay_mode"]})
    raise ValueError(o)


# ---------------------------------------------------------------------------------------------
# fastai: fastai.optimizer's steppers, composed as its SGD / RMSProp / Adam compose them


def _fastai(exp: Experiment) -> Update:
    o = exp.optimizer
    lr, wd = h("lr"), h("weight_decay")
    cells: list[tuple[str, Expr]] = []
    P, G = p, g
    hyper = ["lr"]
    decoupled = exp.decouple_wd
    if exp.weight_decay != 0:
        hyper.append("weight_decay")
        if decoupled:  # weight_decay: p.data.mul_(1 - lr*wd)
            cells.append(("pd", p * (1.0 - lr * wd)))
            P = sym("pd")
        else:  # l2_reg: p.grad.data.add_(p.data, alpha=wd)
            cells.append(("gw", _add_(g, p, wd)))
            G = sym("gw")
    details: dict[str, Any] = {"variant": f"fastai {o}", "state_init": "zero",
                               "weight_decay_mode": ("decoupled" if decoupled else "l2") if exp.weight_decay else "none"}
    state: list[str] = []
    mom = exp.momentum
    if o in ("sgd", "momentum"):
        if mom != 0:  # average_grad, undamped: grad_avg.mul_(mom).add_(grad, alpha=1)
            cells.append(("avg", _add_(prev("avg") * h("momentum"), G, 1.0)))
            state.append("avg")
            hyper.append("momentum")
            cells.append(("new", _add_(P, sym("avg"), -lr)))  # momentum_step
        else:
            cells.append(("new", _add_(P, G, -lr)))  # sgd_step
        return Update(cells, state, hyper, {s: 0.0 for s in state}, details)
    if o == "rmsprop":
        if mom != 0:
            cells.append(("avg", _add_(prev("avg") * h("momentum"), G, 1.0)))
            state.append("avg")
            hyper.append("momentum")
        sqr_mom = h("alpha")  # average_sqr_grad: sqr_avg.mul_(sqr_mom).addcmul_(g, g, value=1-sqr_mom)
        cells.append(("v", _addcmul_(prev("v") * sqr_mom, G, G, 1.0 - sqr_mom)))
        state.append("v")
        top = sym("avg") if mom != 0 else G
        # fastai's RMSProp() takes `eps` but never hands it to its Optimizer, so rms_prop_step
        # always uses its own default, 1e-8 (fastai 2.8.12). Exactly fastai means the same.
        cells.append(("new", _addcdiv_(P, top, sqrt(sym("v")) + const(1e-8), -lr)))
        return Update(cells, state, hyper + ["alpha"], {s: 0.0 for s in state},
                      details | {"eps_placement": "outside sqrt", "bias_correction": False,
                                 "eps": "1e-8 always (fastai's RMSProp ignores its eps argument)"})
    if o == "adam":
        b1, b2 = h("beta1"), h("beta2")
        cells.append(("m", _add_(prev("m") * b1, G, 1.0 - b1)))  # average_grad(dampening=True)
        cells.append(("v", _addcmul_(prev("v") * b2, G, G, 1.0 - b2)))
        # debias(mom, damp, step) = damp * (1 - mom**step) / (1 - mom)
        debias1 = ((1.0 - b1) * (1.0 - b1 ** t)) / (1.0 - b1)
        debias2 = ((1.0 - b2) * (1.0 - b2 ** t)) / (1.0 - b2)
        cells.append(("new", _addcdiv_(P, sym("m"), sqrt(sym("v") / debias2) + h("eps"), -lr / debias1)))
        return Update(cells, ["m", "v"], hyper + ["beta1", "beta2", "eps"], {"m": 0.0, "v": 0.0},
                      details | {"eps_placement": "after bias correction", "bias_correction": True})
    raise ValueError(o)


def build_update(exp: Experiment) -> Update:
    return {"graddesc": _graddesc, "pytorch": _pytorch, "fastai": _fastai}[exp.flavour](exp)

