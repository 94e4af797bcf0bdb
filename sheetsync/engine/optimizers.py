"""Optimizers: one parameter's update, written once per flavour as expressions.

Like fastai's optimizer (a short list of small steps), an update here is a list of cells
computed in order for each parameter. Cells read:

- ``g``: the gradient this step uses (the batch mean of the rows' gradients), ``p``: the
  parameter before the step, ``t``: this step's 1-based count (a float, as torch's ``step``);
- ``prev_<s>``: the state ``<s>`` as it was before this step (the row above, in sheet terms),
  and ``<s>`` once this step has computed it;
- hyperparameters by their setting names (``lr``, ``beta1``, ...), plus values that are no
  setting: flavour bookkeeping that a macro changes between epochs (graddesc's ``eve_d``) and
  torch's constants (`CONSTANTS`).

What an update carries (its state) and reads (its hyperparameters) is derived from its cells, so
a new variant is its cells and nothing listed beside them.

Each flavour spells the arithmetic in the order its original evaluates it, because float
arithmetic is not associative: torch's ``exp_avg.lerp_(grad, 1 - beta1)``, ``addcmul_``,
``addcdiv_`` and ``bias_correction2 ** 0.5``; fastai's ``debias``; the workbook's
``(g*lr)/SQRT(v)`` and its ``1-beta`` computed by subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..settings import SETTINGS, Experiment
from .expr import Expr, const, fma, maximum, sqrt, sym, where

g, p, t = sym("g"), sym("p"), sym("t")


def prev(state: str) -> Expr:
    return sym(f"prev_{state}")


def h(name: str) -> Expr:  # a hyperparameter
    return sym(name)


# Values an update reads that no setting holds and no macro sets: name -> (value, what it is).
CONSTANTS = {"half": (0.5, "1/2 (a square root taken as torch does, by pow)")}

_STEP = ("g", "p", "t")  # what every step hands an update (see the module docstring)


def _reads(e: Expr) -> list[str]:
    """The names `e` reads, in the order its original spells them: a fused `self.add_(other,
    alpha)` is fma(alpha, other, self) but reads `self` first (this order is the order of the
    loop's hyperparameter columns)."""
    if e.op == "sym":
        return [e.name]
    args = (e.args[2], e.args[0], e.args[1]) if e.op == "fma" else e.args
    return [n for a in args if isinstance(a, Expr) for n in _reads(a)]


@dataclass
class Update:
    """How one parameter steps: ordered cells, where its state starts, and what the workbook's
    macros do to it between epochs. `state` and `hyper` are derived from the cells."""

    cells: list[tuple[str, Expr]]  # in order; the last is "new"
    init: dict[str, float] = field(default_factory=dict)  # state values after Reset (absent: 0.0)
    details: dict[str, Any] = field(default_factory=dict)
    carry: str = "update"  # "update": the next epoch starts from the last update; "inputs": graddesc
    epoch_macro: str | None = None  # graddesc macros that run between epochs
    # values a macro sets between epochs (an annealed lr, eve's d) -> where the map says they come from
    macro_sets: dict[str, str] = field(default_factory=dict)
    # state a macro pastes into each epoch's first line (adagrad's normalisers)
    macro_pastes: tuple[str, ...] = ()
    state: list[str] = field(init=False)  # cells whose previous value a cell reads (columns <s>_<param>)
    hyper: list[str] = field(init=False)  # lr, the settings read, then the values no setting holds

    def __post_init__(self):
        reads = [n for _, e in self.cells for n in _reads(e)]
        names = [n for n, _ in self.cells]
        self.state = [n for n in names if f"prev_{n}" in reads]
        stray = sorted(n[5:] for n in set(reads) if n.startswith("prev_") and n[5:] not in names)
        outside = [n for n in dict.fromkeys(reads)
                   if n not in _STEP and n not in names and not n.startswith("prev_")]
        unknown = sorted(n for n in outside if n not in SETTINGS and n not in self.macro_sets
                         and n not in CONSTANTS)
        if stray or unknown or set(self.init) - set(self.state) or set(self.macro_pastes) - set(self.state):
            raise ValueError(f"update cells read unknown names: {stray + unknown}, "
                             f"or init/pastes name no state: {sorted(self.init)}, {self.macro_pastes}")
        settings = [n for n in outside if n in SETTINGS]
        self.hyper = (sorted(settings, key=lambda n: n != "lr")  # stable: lr first, the rest as read
                      + [n for n in outside if n not in SETTINGS])
        self.init = {s: float(self.init.get(s, 0.0)) for s in self.state}


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

ANNEALED_LR = "lr (set by the annealing macro)"


def _graddesc(exp: Experiment) -> Update:
    o = exp.optimizer
    lr = h("lr")
    details = {"variant": f"graddesc {o}", "eps_placement": "none", "bias_correction": False,
               "weight_decay_mode": "none"}
    if o == "sgd":
        return Update([("new", p - lr * g)], {}, details | {"state_init": "none"}, "inputs")
    if o == "momentum":
        beta = h("momentum")
        m = prev("m") * beta + (1.0 - beta) * g
        return Update([("m", m), ("new", p - sym("m") * lr)], {"m": 0.0},
                      details | {"state_init": "carried (Reset: one pass from zero)"}, "inputs")
    if o == "rmsprop":
        beta = h("alpha")
        v = prev("v") * beta + (1.0 - beta) * (g * g)
        new = p - (g * lr) / sqrt(prev("v"))  # the workbook divides by the previous row's average
        return Update([("v", v), ("new", new)], {"v": 10000.0},
                      details | {"state_init": "carried (Reset: 10000, two warm-up passes)",
                                 "uses": "previous row's average"}, "inputs")
    if o in ("adam", "adam_ann", "eve"):
        b1, b2 = h("beta1"), h("beta2")
        m = prev("m") * b1 + (1.0 - b1) * g
        v = prev("v") * b2 + (1.0 - b2) * (g * g)
        step = (sym("m") * lr) / sqrt(sym("v"))
        new = p - (step / h("eve_d") if o == "eve" else step)
        macro = {"adam": None, "adam_ann": "adam_ann", "eve": "eve"}[o]
        sets = {"adam": {}, "adam_ann": {"lr": ANNEALED_LR}, "eve": {"eve_d": "eve's d (set by its macro)"}}[o]
        return Update([("m", m), ("v", v), ("new", new)], {"m": 0.0, "v": 10000.0},
                      details | {"state_init": "carried (Reset: m 0, v 10000, warm-up passes)"},
                      "inputs", macro, sets)
    if o in ("adagrad", "adagrad_ann"):
        # A per-epoch normaliser n = sqrt(sum g^2)/rows, pasted by the macro; constant within an
        # epoch. The workbook's rate cell is lr/n (F2 = $D$2/F1) and each row is p - g*rate.
        new = p - g * (lr / prev("n"))
        init = 10000.0 if o == "adagrad" else 1e6
        reset = ("normaliser 10000, one pass, its normaliser pasted (Reset)" if o == "adagrad"
                 else "normaliser 1e6 (Reset)")
        return Update([("n", prev("n")), ("new", new)], {"n": init},
                      details | {"state_init": reset,
                                 "normaliser": "sqrt(sum of g^2)/rows of the previous epoch"},
                      "update" if o == "adagrad" else "inputs", o,
                      {"lr": ANNEALED_LR} if o == "adagrad_ann" else {}, macro_pastes=("n",))
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
    details: dict[str, Any] = {"variant": f"torch.optim {o}", "weight_decay_mode": "l2" if l2 else "none"}

    if o in ("sgd", "momentum", "nesterov"):
        mom = exp.momentum
        if mom == 0:
            return Update(cells + [("new", _add_(p, G, -lr))], {},
                          details | {"variant": "torch.optim SGD", "state_init": "none"})
        buf = where(t.eq(1.0), G, _add_(prev("buf") * h("momentum"), G, 1.0 - h("dampening")))
        cells.append(("buf", buf))
        direction = _add_(G, sym("buf"), h("momentum")) if exp.nesterov else sym("buf")
        cells.append(("new", _add_(p, direction, -lr)))
        return Update(cells, {"buf": 0.0},
                      details | {"variant": "torch.optim SGD" + (" (nesterov)" if exp.nesterov else " (momentum)"),
                                 "state_init": "first gradient (b1 = g1, no dampening)"})
    if o == "adagrad":
        clr = lr / (1.0 + (t - 1.0) * h("lr_decay"))
        cells += [("sum", _addcmul_(prev("sum"), G, G, 1.0)),
                  ("new", _addcdiv_(p, G, sqrt(sym("sum")) + h("eps"), -clr))]
        return Update(cells, {"sum": exp.initial_accumulator_value},
                      details | {"eps_placement": "outside sqrt", "state_init": "initial_accumulator_value"})
    if o == "rmsprop":
        alpha = h("alpha")
        cells.append(("v", _addcmul_(prev("v") * alpha, G, G, 1.0 - alpha)))
        if exp.centered:
            cells.append(("gavg", _lerp(prev("gavg"), G, 1.0 - alpha)))
            avg = sqrt(_addcmul_(sym("v"), sym("gavg"), sym("gavg"), -1.0)) + h("eps")
        else:
            avg = sqrt(sym("v")) + h("eps")
        cells.append(("avg", avg))
        if exp.momentum > 0:
            cells += [("buf", _addcdiv_(prev("buf") * h("momentum"), G, sym("avg"), 1.0)),
                      ("new", _add_(p, sym("buf"), -lr))]
        else:
            cells.append(("new", _addcdiv_(p, G, sym("avg"), -lr)))
        return Update(cells, {},
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
        # torch: `bias_correction2 ** 0.5` is a pow() call; a literal 0.5 would let the compiler
        # turn it into sqrt(), which rounds differently now and then. `half` arrives at run time.
        bc1, bc2_sqrt = 1.0 - b1 ** t, (1.0 - b2 ** t) ** h("half")
        second = sym("v")
        if exp.amsgrad:
            cells.append(("vmax", maximum(prev("vmax"), sym("v"))))
            second = sym("vmax")
        cells.append(("denom", sqrt(second) / bc2_sqrt + h("eps")))
        cells.append(("new", _addcdiv_(P, sym("m"), sym("denom"), -(lr / bc1))))
        return Update(cells, {},
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
    decoupled = exp.decouple_wd
    if exp.weight_decay != 0:
        if decoupled:  # weight_decay: p.data.mul_(1 - lr*wd)
            cells.append(("pd", p * (1.0 - lr * wd)))
            P = sym("pd")
        else:  # l2_reg: p.grad.data.add_(p.data, alpha=wd)
            cells.append(("gw", _add_(g, p, wd)))
            G = sym("gw")
    details: dict[str, Any] = {"variant": f"fastai {o}", "state_init": "zero",
                               "weight_decay_mode": ("decoupled" if decoupled else "l2") if exp.weight_decay else "none"}
    mom = exp.momentum
    if o in ("sgd", "momentum"):
        if mom != 0:  # average_grad, undamped: grad_avg.mul_(mom).add_(grad, alpha=1)
            cells.append(("avg", _add_(prev("avg") * h("momentum"), G, 1.0)))
            cells.append(("new", _add_(P, sym("avg"), -lr)))  # momentum_step
        else:
            cells.append(("new", _add_(P, G, -lr)))  # sgd_step
        return Update(cells, {}, details)
    if o == "rmsprop":
        if mom != 0:
            cells.append(("avg", _add_(prev("avg") * h("momentum"), G, 1.0)))
        sqr_mom = h("alpha")  # average_sqr_grad: sqr_avg.mul_(sqr_mom).addcmul_(g, g, value=1-sqr_mom)
        cells.append(("v", _addcmul_(prev("v") * sqr_mom, G, G, 1.0 - sqr_mom)))
        top = sym("avg") if mom != 0 else G
        # fastai's RMSProp() takes `eps` but never hands it to its Optimizer, so rms_prop_step
        # always uses its own default, 1e-8 (fastai 2.8.12). Exactly fastai means the same.
        cells.append(("new", _addcdiv_(P, top, sqrt(sym("v")) + const(1e-8), -lr)))
        return Update(cells, {},
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
        return Update(cells, {},
                      details | {"eps_placement": "after bias correction", "bias_correction": True})
    raise ValueError(o)


def build_update(exp: Experiment) -> Update:
    return {"graddesc": _graddesc, "pytorch": _pytorch, "fastai": _fastai}[exp.flavour](exp)

