"""Models: a forward pass and its analytic gradients, each written once as expressions.

A model is a list of row cells, the way a learner lays out a sheet: intermediates (``u``,
``h``), then ``pred``, ``err``, ``loss``, then the gradient of the row's loss with respect to
every parameter. Gradients are written by hand in the order autograd (and the fast.ai workbook)
multiplies them out, so the numbers match PyTorch and the workbook operation for operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .expr import Expr, absolute, maximum, sign, subs, sym, total, where

# A row's loss and the derivative of the loss with respect to `pred`.
LOSSES = {
    "squared": (lambda err: err * err, lambda err: 2.0 * err),
    "absolute": (lambda err: absolute(err), lambda err: sign(err)),
}


@dataclass(frozen=True)
class Model:
    name: str
    inputs: list[str]  # "x" or "x1".."xk"
    params: list[str]
    intermediates: list[tuple[str, Expr]]  # computed per row, not output columns
    pred: Expr
    grads: dict[str, Expr]  # d(row loss)/d(param), over inputs, params, intermediates, err
    backward: tuple[tuple[str, Expr], ...] = ()  # shared gradient pieces (mlp's du{h})

    def row_cells(self, loss: str) -> list[tuple[str, Expr]]:
        """Everything a row computes, in order: intermediates, pred, err, loss, dloss, de/d<p>."""
        loss_fn, dloss_fn = LOSSES[loss]
        err = sym("pred") - sym("y")
        cells = list(self.intermediates)
        cells += [("pred", self.pred), ("err", err), ("loss", loss_fn(sym("err"))),
                  ("dloss", dloss_fn(sym("err")))]
        cells += list(self.backward)
        cells += [(f"de/d{p}", g) for p, g in self.grads.items()]
        return cells

    def loss_with(self, loss: str, shifted: dict[str, Expr]) -> Expr:
        """The row loss as one expression, with some parameters replaced (numeric gradients)."""
        env: dict[str, Expr] = dict(shifted)
        for name, e in self.intermediates:
            env[name] = subs(e, env)
        pred = subs(self.pred, env)
        return LOSSES[loss][0](pred - sym("y"))


def input_names(n_inputs: int) -> list[str]:
    return ["x"] if n_inputs == 1 else [f"x{i}" for i in range(1, n_inputs + 1)]


def _linear(n_inputs: int) -> Model:
    xs = input_names(n_inputs)
    slopes = ["a"] if n_inputs == 1 else [f"a{i}" for i in range(1, n_inputs + 1)]
    pred = total([sym(a) * sym(x) for a, x in zip(slopes, xs)] + [sym("b")])
    dp = sym("dloss")
    grads = {a: sym(x) * dp for a, x in zip(slopes, xs)}  # the workbook's de/da = x * de/db
    grads["b"] = dp
    return Model("linear", xs, slopes + ["b"], [], pred, grads)


def _two_layer(n_inputs: int, relu: bool) -> Model:
    if n_inputs != 1:
        raise ValueError("two_linear and two_relu take one input column x; use mlp for several")
    a, b, c, d, x = (sym(n) for n in "abcdx")
    dp = sym("dloss")
    inter = [("u", a * x + b)]
    if relu:
        inter.append(("h", maximum(sym("u"), 0.0)))
        dh = where(sym("u") > 0.0, dp * c, 0.0)  # torch's relu backward: no gradient at u == 0
    else:
        inter.append(("h", sym("u")))
        dh = dp * c
    pred = c * sym("h") + d
    grads = {"a": dh * x, "b": dh, "c": dp * sym("h"), "d": dp}
    return Model("two_relu" if relu else "two_linear", ["x"], list("abcd"), inter, pred, grads)


def _mlp(n_inputs: int, hidden: int) -> Model:
    """k inputs, `hidden` ReLU units, a linear output. Parameters, grouped by kind as in
    two_relu: a{h}_{i} (input i -> unit h), b{h} (unit h's bias), c{h} (unit h -> output), d."""
    xs = input_names(n_inputs)
    units = range(1, hidden + 1)
    dp = sym("dloss")
    forward: list[tuple[str, Expr]] = []
    backward: list[tuple[str, Expr]] = []
    grads: dict[str, Expr] = {}
    for h in units:
        ws = [f"a{h}_{i}" for i in range(1, n_inputs + 1)]
        forward.append((f"u{h}", total([sym(w) * sym(x) for w, x in zip(ws, xs)] + [sym(f"b{h}")])))
        forward.append((f"h{h}", maximum(sym(f"u{h}"), 0.0)))
        backward.append((f"du{h}", where(sym(f"u{h}") > 0.0, dp * sym(f"c{h}"), 0.0)))
        grads.update({w: sym(f"du{h}") * sym(x) for w, x in zip(ws, xs)})
        grads[f"b{h}"] = sym(f"du{h}")
        grads[f"c{h}"] = dp * sym(f"h{h}")
    grads["d"] = dp
    params = ([f"a{h}_{i}" for h in units for i in range(1, n_inputs + 1)]
              + [f"b{h}" for h in units] + [f"c{h}" for h in units] + ["d"])
    pred = total([sym(f"c{h}") * sym(f"h{h}") for h in units] + [sym("d")])
    return Model("mlp", xs, params, forward, pred, {q: grads[q] for q in params}, tuple(backward))


def build_model(name: str, n_inputs: int, hidden: int = 2) -> Model:
    from .. import budgets

    if n_inputs > budgets.MAX_INPUTS:
        raise ValueError(f"{n_inputs:,} input columns; the limit is {budgets.MAX_INPUTS}")
    if name == "linear":
        return _linear(n_inputs)
    if name in ("two_linear", "two_relu"):
        return _two_layer(n_inputs, relu=name == "two_relu")
    if name == "mlp":
        return _mlp(n_inputs, hidden)
    raise ValueError(f"unknown model {name!r}")


def param_names(model: str, n_inputs: int = 1, hidden: int = 2) -> list[str]:
    return build_model(model, n_inputs, hidden).params


def default_init(model: str, params: list[str], seed: int) -> dict[str, float]:
    """Starting values where `init` gives none.

    linear, two_linear and two_relu start every parameter at 1.0 (the workbook's Reset);
    mlp draws a{h}_{i} and c{h} uniformly from [-1, 1) with `seed` (all-equal weights would
    keep every hidden unit identical forever) and starts the biases b{h} and d at 0.
    """
    if model != "mlp":
        return {p: 1.0 for p in params}
    import numpy as np

    rng = np.random.default_rng(seed)
    draws = rng.uniform(-1.0, 1.0, size=len(params))
    return {p: (0.0 if p.startswith("b") or p == "d" else float(v)) for p, v in zip(params, draws)}

