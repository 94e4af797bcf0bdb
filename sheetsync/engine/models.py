"""Models: a forward pass and its analytic gradients, each written once as expressions.

A model is a list of row cells, the way a learner lays out a sheet: intermediates (``u``,
``h``), then ``pred``, ``err``, ``loss``, then the gradient of the row's loss with respect to
every parameter. Gradients are written by hand in the order autograd (and the fast.ai workbook)
multiplies them out, so the numbers match PyTorch and the workbook operation for operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .expr import Expr, const, maximum, sigmoid, subs, sym, total, where
from .losses import LOSSES, Loss, Share, as_loss, regression_cells, sigmoid_cells, softmax_cells

HEADS = ("linear", "sigmoid", "softmax")


@dataclass(frozen=True)
class Table:
    """A parameter table a row reads one row of (an embedding): the row's parameters `slots` are
    columns of the table's row that the input `index` names (0-based). Its number of rows is the
    data's business (a run-time size), never the model's, so one compiled loop serves any size."""

    name: str  # user_factors, item_factors, user_bias, item_bias (engine/embeddings.Tables' fields)
    index: str  # the input column holding the row index
    slots: tuple[str, ...]  # the row's parameters, one per table column


@dataclass(frozen=True)
class Model:
    """A model's per-row cells: its inputs, parameters, intermediates, prediction and gradients."""

    name: str
    inputs: list[str]  # "x" or "x1".."xk"
    params: list[str]
    intermediates: list[tuple[str, Expr]]  # computed per row, not output columns
    pred: Expr  # linear head: the prediction; classifier heads: unused (the head's cells say)
    grads: dict[str, Expr]  # d(row loss)/d(param), over inputs, params, intermediates, the head's dloss
    backward: tuple[tuple[str, Expr], ...] = ()  # shared gradient pieces (mlp's du{h})
    head: str = "linear"  # linear | sigmoid (one logit z) | softmax (logits z1..zK)
    classes: int = 1  # K for softmax, 2 for sigmoid
    recorded: tuple[str, ...] = ()  # cells shown in the steps table between the params and pred
    # Table models (dot_product): `params` are slots of table rows, not parameters of their own;
    # every table entry is a parameter (engine/embeddings.param_names names them).
    tables: tuple[Table, ...] = ()

    @property
    def classifier(self) -> bool:
        return self.head != "linear"

    def head_cells(self, loss: "Loss | str", share: Share | None) -> list[tuple[str, Expr]]:
        """The head's cells after the intermediates: pred, err, loss, (correct,) the loss's
        derivative(s) the grads read (dloss, or dloss1..dlossK)."""
        loss = as_loss(loss)
        if self.head == "sigmoid":
            return sigmoid_cells(loss, share)
        if self.head == "softmax":
            return softmax_cells(loss, self.classes, share)
        return [("pred", self.pred)] + regression_cells(loss, share)

    def row_cells(self, loss: "Loss | str", share: Share | None = None) -> list[tuple[str, Expr]]:
        """Everything a row computes, in order: intermediates, the head (pred, err, loss, dloss),
        the backward pieces, de/d<p>. With `share`, the row's gradient is its share of a batch
        mean, applied where torch applies it (see `losses`)."""
        cells = list(self.intermediates) + self.head_cells(loss, share)
        cells += list(self.backward)
        cells += [(f"de/d{p}", g) for p, g in self.grads.items()]
        return cells

    def loss_with(self, loss: "Loss | str", shifted: dict[str, Expr]) -> Expr:
        """The row loss as one expression, with some parameters replaced (numeric gradients)."""
        env: dict[str, Expr] = dict(shifted)
        for name, e in self.intermediates:
            env[name] = subs(e, env)
        if self.head == "linear":
            pred = subs(self.pred, env)
            return LOSSES[as_loss(loss).name][0](pred - sym("y"))
        for name, e in self.head_cells(loss, None):
            env[name] = subs(e, env)
            if name == "loss":
                return env[name]
        raise AssertionError("a head's cells always include the loss")


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


def _logistic(n_inputs: int) -> Model:
    """p = σ(z), z = a·x + b (a1·x1 + … + b): linear's parameters under a sigmoid head."""
    lin = _linear(n_inputs)
    return Model("logistic", lin.inputs, lin.params, [("z", lin.pred)], sym("z"), lin.grads,
                 head="sigmoid", classes=2, recorded=("z", "p"))


def _softmax(n_inputs: int, classes: int) -> Model:
    """z_k = a{k}·x + b{k} (a{k}_{i}·x_i with several inputs), k = 1..K, under a softmax head.
    Parameters grouped by kind: every a (class by class), then every b."""
    xs = input_names(n_inputs)
    ks = range(1, classes + 1)
    weights = {k: ([f"a{k}"] if n_inputs == 1 else [f"a{k}_{i}" for i in range(1, n_inputs + 1)]) for k in ks}
    inter = [(f"z{k}", total([sym(w) * sym(x) for w, x in zip(weights[k], xs)] + [sym(f"b{k}")])) for k in ks]
    grads: dict[str, Expr] = {}
    for k in ks:
        grads.update({w: sym(x) * sym(f"dloss{k}") for w, x in zip(weights[k], xs)})
    grads.update({f"b{k}": sym(f"dloss{k}") for k in ks})
    params = [w for k in ks for w in weights[k]] + [f"b{k}" for k in ks]
    recorded = tuple(f"z{k}" for k in ks) + tuple(f"p{k}" for k in ks)
    return Model("softmax", xs, params, inter, sym("z1"), grads, head="softmax", classes=classes,
                 recorded=recorded)


def _mlp(n_inputs: int, hidden: int, output: str = "linear", classes: int = 2) -> Model:
    """k inputs, `hidden` ReLU units, then a linear output, a sigmoid or a softmax head.
    Parameters, grouped by kind as in two_relu: a{h}_{i} (input i -> unit h), b{h} (unit h's
    bias), c{h} (unit h -> output) and d; with a softmax head c{k}_{h} and d{k} per class k."""
    xs = input_names(n_inputs)
    units = range(1, hidden + 1)
    outs = range(1, classes + 1) if output == "softmax" else [None]
    c = lambda k, h: f"c{h}" if k is None else f"c{k}_{h}"  # noqa: E731
    d = lambda k: "d" if k is None else f"d{k}"  # noqa: E731
    dout = lambda k: sym("dloss") if k is None else sym(f"dloss{k}")  # noqa: E731
    forward: list[tuple[str, Expr]] = []
    backward: list[tuple[str, Expr]] = []
    grads: dict[str, Expr] = {}
    for h in units:
        ws = [f"a{h}_{i}" for i in range(1, n_inputs + 1)]
        forward.append((f"u{h}", total([sym(w) * sym(x) for w, x in zip(ws, xs)] + [sym(f"b{h}")])))
        forward.append((f"h{h}", maximum(sym(f"u{h}"), 0.0)))
        dh = total([dout(k) * sym(c(k, h)) for k in outs])
        backward.append((f"du{h}", where(sym(f"u{h}") > 0.0, dh, 0.0)))
        grads.update({w: sym(f"du{h}") * sym(x) for w, x in zip(ws, xs)})
        grads[f"b{h}"] = sym(f"du{h}")
        for k in outs:
            grads[c(k, h)] = dout(k) * sym(f"h{h}")
    for k in outs:
        grads[d(k)] = dout(k)
    params = ([f"a{h}_{i}" for h in units for i in range(1, n_inputs + 1)]
              + [f"b{h}" for h in units] + [c(k, h) for k in outs for h in units] + [d(k) for k in outs])
    logits = {k: total([sym(c(k, h)) * sym(f"h{h}") for h in units] + [sym(d(k))]) for k in outs}
    grads = {q: grads[q] for q in params}
    if output == "linear":
        return Model("mlp", xs, params, forward, logits[None], grads, tuple(backward))
    if output == "sigmoid":
        return Model("mlp", xs, params, forward + [("z", logits[None])], sym("z"), grads, tuple(backward),
                     head="sigmoid", classes=2, recorded=("z", "p"))
    recorded = tuple(f"z{k}" for k in outs) + tuple(f"p{k}" for k in outs)
    return Model("mlp", xs, params, forward + [(f"z{k}", logits[k]) for k in outs], sym("z1"), grads,
                 tuple(backward), head="softmax", classes=classes, recorded=recorded)


def sum_in_torch_order(terms: list[Expr]) -> Expr:
    """`t.sum(1)` over a row of len(terms) contiguous doubles, in torch's CPU order (`reduction`;
    for 5 terms: (((t5 + t1) + t2) + t3) + t4). torch also adds its empty accumulators' 0.0 to
    short sums; x + 0.0 is x (only a -0.0 sum would turn +0.0), so those are left out."""
    from .reduction import ZERO, sum_tree

    def walk(tree) -> Expr:
        if isinstance(tree, int):
            return terms[tree]
        if tree == ZERO:
            return const(0.0)
        if tree[2] == ZERO:
            return walk(tree[1])
        return walk(tree[1]) + walk(tree[2])

    return walk(sum_tree(len(terms)))


def _dot_product(factors: int, bias: bool, y_range: tuple[float, float] | None) -> Model:
    """fastai's EmbeddingDotBias (DotProductBias in the book), row by row: the rating row's user
    row u1..uF and item row m1..mF, dot = (u*m).sum(1) in torch's order, res = dot + bu + bm,
    pred = res, or sigmoid(res)*(high - low) + low with y_range (fastai's sigmoid_range).
    Backward as autograd: d res = dloss (through sigmoid_range: ((dloss*(high-low))*(1-s))*s),
    de/du_f = d res * m_f, de/dm_f = d res * u_f, de/dbu = de/dbm = d res."""
    fs = range(1, factors + 1)
    us, ms = [f"u{f}" for f in fs], [f"m{f}" for f in fs]
    inter: list[tuple[str, Expr]] = [("dot", sum_in_torch_order([sym(u) * sym(m) for u, m in zip(us, ms)]))]
    res = sym("dot") + sym("bu") + sym("bm") if bias else sym("dot")
    inter.append(("res", res))
    if y_range is None:
        pred = sym("res")
        dres: Expr = sym("dloss")
    else:
        low, high = (float(v) for v in y_range)
        width = high - low  # a Python float in fastai: (high - low) computed once
        inter.append(("s", sigmoid(sym("res"))))
        pred = sym("s") * width + low
        dres = ((sym("dloss") * width) * (1.0 - sym("s"))) * sym("s")  # mul's, then sigmoid's backward
    grads = {u: sym("dres") * sym(m) for u, m in zip(us, ms)}
    grads.update({m: sym("dres") * sym(u) for u, m in zip(us, ms)})
    tables = [Table("user_factors", "user", tuple(us)), Table("item_factors", "item", tuple(ms))]
    params = us + ms
    if bias:
        grads.update({"bu": sym("dres"), "bm": sym("dres")})
        tables += [Table("user_bias", "user", ("bu",)), Table("item_bias", "item", ("bm",))]
        params += ["bu", "bm"]
    return Model("dot_product", ["user", "item"], params, inter, pred, grads, (("dres", dres),),
                 tables=tuple(tables))


def build_model(name: str, n_inputs: int, hidden: int = 2, output: str = "linear", classes: int = 2,
                factors: int = 5, bias: bool = True, y_range: tuple[float, float] | None = None) -> Model:
    from .. import budgets

    if name == "dot_product":
        if n_inputs != 2:
            raise ValueError(f"dot_product reads two input columns (user, item), found {n_inputs}")
        return _dot_product(factors, bias, y_range)
    if n_inputs > budgets.MAX_INPUTS:
        raise ValueError(f"{n_inputs:,} input columns; the limit is {budgets.MAX_INPUTS}")
    if name == "linear":
        return _linear(n_inputs)
    if name in ("two_linear", "two_relu"):
        return _two_layer(n_inputs, relu=name == "two_relu")
    if name == "logistic":
        return _logistic(n_inputs)
    if name == "softmax":
        return _softmax(n_inputs, classes)
    if name == "mlp":
        return _mlp(n_inputs, hidden, output, classes)
    raise ValueError(f"unknown model {name!r}")


def param_names(model: str, n_inputs: int = 1, hidden: int = 2, output: str = "linear", classes: int = 2) -> list[str]:
    return build_model(model, n_inputs, hidden, output, classes).params


def default_init(model: str, params: list[str], seed: int) -> dict[str, float]:
    """Starting values where `init` gives none.

    linear, two_linear and two_relu start every parameter at 1.0 (the workbook's Reset);
    logistic and softmax start every parameter at 0.0 (torch users zero a linear classifier;
    all-equal softmax weights are fine: the classes' gradients differ by their labels);
    mlp draws a{h}_{i} and c{h} (c{k}_{h}) uniformly from [-1, 1) with `seed` (all-equal weights
    would keep every hidden unit identical forever) and starts the biases b{h} and d at 0.
    """
    if model in ("logistic", "softmax"):
        return {p: 0.0 for p in params}
    if model != "mlp":
        return {p: 1.0 for p in params}
    import numpy as np

    rng = np.random.default_rng(seed)
    draws = rng.uniform(-1.0, 1.0, size=len(params))
    return {p: (0.0 if p.startswith("b") or p.startswith("d") else float(v)) for p, v in zip(params, draws)}
