"""What shapes a compiled training loop: the Spec, its variable names, its columns.

A Spec holds everything the loop's code depends on (model, update, loss, gradient kind,
batch size, carry rule); the numbers that do not change the code (lr, betas, ...) travel in the
loop's H array, one row per experiment. `Spec.key` is the Spec as a hashable value: two
experiments with equal keys run the same compiled loop (a sweep groups them; the loader memoises
kernels by it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from ...errors import SettingError
from ...settings import Experiment
from ..expr import Expr, absolute, const, sym, symbols
from ..losses import Share
from ..losses import of as loss_of
from ..models import Model, build_model
from ..optimizers import Update, build_update


def ident(prefix: str, name: str) -> str:
    """A variable name for a cell name ("de/da" -> "r_de_2f_da"), the same in Python and C."""
    return prefix + re.sub(r"[^0-9a-zA-Z_]", lambda m: f"_{ord(m.group()):x}_", name)


class Accumulator(NamedTuple):  # immutable like a frozen dataclass, ~4x cheaper to define (start-up)
    """One per-epoch column the loop adds up as it goes (the epochs table and the macros read them).

    kind: "sum" adds `of` for every row; "nonzero" adds 1.0 for every row whose `of` is not 0;
    "max" keeps the largest `of` (a NaN never replaces it); "last" is `of` when the epoch ends;
    "pass" (table models) adds `of` over every data row, in data order, computed afresh with the
    parameters as they are when the epoch ends.
    `of` reads the row's cells, inputs and parameters by name; None keeps the column at 0.
    """

    column: str
    kind: str
    of: Expr | None


@dataclass(frozen=True)
class Spec:
    """Everything that shapes the compiled loop (numbers that don't are passed in `H`)."""

    model: Model
    update: Update
    loss: str
    gradient: str  # analytic | numeric | both
    grad_method: str  # forward | central
    batch_size: int  # 0 = whole data set
    carry_inputs: bool  # graddesc: an epoch hands on the last row's inputs, not its update

    @property
    def params(self) -> list[str]:
        return self.model.params

    @property
    def hyper(self) -> list[str]:
        return self.update.hyper + ["grad_step", "divergence_bound"] + self.table_sizes

    @property
    def tables(self):
        return self.model.tables

    @property
    def table_sizes(self) -> list[str]:
        """Table models: the run-time table sizes the loop reads from H, one per index input
        (``n_user``: rows of the user-indexed tables), so no size is part of the key."""
        return list(dict.fromkeys(f"n_{t.index}" for t in self.model.tables))

    @property
    def state_cols(self) -> list[str]:
        return [f"{s}_{q}" for s in self.update.state for q in self.params]

    def table_entries(self, sizes: dict) -> int:
        """A table model's number of parameters for run-time sizes {"n_user": U, ...}."""
        return sum(int(sizes[f"n_{t.index}"]) * len(t.slots) for t in self.tables)

    @cached_property
    def sparse_update(self) -> bool:
        """The update keeps no state and leaves a parameter with gradient 0 where it is (plain
        SGD without weight decay): a table model then updates only the entries a batch touched,
        which is what a full pass would do, n_p times faster. Checked by evaluating the update."""
        from ..expr import evaluate

        if self.update.state or [n for n, _ in self.update.cells] != ["new"]:
            return False
        new = self.update.cells[0][1]
        for p, lr in ((0.3, 0.1), (-1.7e3, 2.5), (1e-300, 1e300)):
            env = {"g": 0.0, "p": p, "t": 3.0, "lr": lr, **{h: 0.37 for h in self.update.hyper if h != "lr"}}
            if evaluate(new, env) != p:
                return False
        return True

    @property
    def has_estimates(self) -> bool:
        return self.gradient in ("numeric", "both")

    def gradient_source(self, q: str) -> str:
        """The row cell whose value drives the update of parameter `q`."""
        return f"de/d{q} est" if self.gradient == "numeric" else f"de/d{q}"

    def step_columns(self) -> list[str]:
        """The recorded columns of a step line, in order. The loop records exactly these: "epoch",
        "step", "row", the optimizer's state columns and "new <param>" are the loop's own; every
        other name is a row cell, input or parameter (see `program`)."""
        cols = ["epoch", "step", "row", *self.model.inputs, "y", *self.params, *self.model.recorded,
                "pred", "err", "loss"]
        cols += [f"de/d{q}" for q in self.params]
        if self.has_estimates:
            cols += [f"de/d{q} est" for q in self.params]
        return cols + self.state_cols + [f"new {q}" for q in self.params]

    @cached_property
    def accumulators(self) -> tuple[Accumulator, ...]:
        """The per-epoch columns, in order (a model that needs another one adds it here)."""
        q = self.params
        est = self.has_estimates
        if self.tables:  # no per-parameter columns (a table has thousands); the RMSE over all
            # ratings at the epoch's end, with the parameters as they are then (an extra pass)
            return (Accumulator("loss_sum", "sum", sym("loss")),
                    Accumulator("err2_sum", "sum", sym("err") * sym("err")),
                    Accumulator("lines", "sum", const(1.0)),
                    Accumulator("rmse_sum", "pass", sym("err") * sym("err")))
        return (Accumulator("loss_sum", "sum", sym("loss")),
                Accumulator("err2_sum", "sum", sym("err") * sym("err")),
                Accumulator("lines", "sum", const(1.0)),
                *(Accumulator(f"param {x}", "last", sym(x)) for x in q),
                *(Accumulator(f"gsq {x}", "sum", sym(self.gradient_source(x)) * sym(self.gradient_source(x)))
                  for x in q),
                *(Accumulator(f"nonzero {x}", "nonzero", sym(self.gradient_source(x))) for x in q),
                *(Accumulator(f"gap {x}", "max", absolute(sym(f"de/d{x} est") - sym(f"de/d{x}")) if est else None)
                  for x in q),
                # classifiers: rows predicted right (the epochs table's accuracy)
                *((Accumulator("correct_sum", "sum", sym("correct")),) if self.model.classifier else ()))

    def epoch_columns(self) -> list[str]:
        return [a.column for a in self.accumulators]

    @cached_property
    def key(self) -> tuple:
        """The Spec as a value: everything the generated loop is made from, expressions as text.
        Equal keys, equal loops (tests/engine/test_loop_structure.py holds every setting to it)."""
        m, u = self.model, self.update
        cells = tuple((n, repr(e)) for n, e in m.row_cells(self.loss))
        acc = tuple((a.column, a.kind, repr(a.of)) for a in self.accumulators)
        return (tuple(m.inputs), tuple(m.params), cells, tuple((n, repr(e)) for n, e in u.cells),
                tuple(u.state), tuple(self.hyper), self.loss, self.gradient,
                self.grad_method if self.has_estimates else None, self.batch_size,
                self.carry_inputs, tuple(self.step_columns()), acc)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Spec) and self.key == other.key


# ---------------------------------------------------------------------------------------------
# The row's cells and the variable names both printers give them


def _estimate_cells(spec: Spec) -> list[tuple[str, Expr]]:
    """Numeric gradients as the workbook writes them: (loss(p+h) - loss)/h, or central."""
    cells = []
    hstep = sym("grad_step")
    for q in spec.params:
        up = spec.model.loss_with(spec.loss, {q: sym(q) + hstep})
        if spec.grad_method == "forward":
            est = (up - sym("loss")) / hstep
        else:
            down = spec.model.loss_with(spec.loss, {q: sym(q) - hstep})
            est = (up - down) / (2.0 * hstep)
        cells.append((f"de/d{q} est", est))
    return cells


def scaled_row_cells(spec: Spec, weight: Expr) -> list[tuple[str, Expr]]:
    """The row's cells; in a batch of k rows each row's gradient is its share of the mean, applied
    where autograd applies it: the model's loss does that itself (`losses`: (1/k)·(…) for the
    squared loss, (…)/k in bce's backward), given w = 1/k and k (`bk`)."""
    share = None if spec.batch_size == 1 else Share(weight, sym("bk"))
    cells = spec.model.row_cells(spec.loss, share)
    if spec.has_estimates:
        cells = cells + _estimate_cells(spec)
    if spec.batch_size == 1:
        return cells
    return [(name, weight * e if name.endswith(" est") else e) for name, e in cells]


def uses_batch_rows(spec: Spec) -> bool:
    """The row cells read k, the rows in the batch (bce, focal and cross-entropy in base 10)."""
    return spec.batch_size > 1 and any("bk" in symbols(e) for _, e in scaled_row_cells(spec, sym("w")))


def row_name(model: Model, name: str) -> str:
    """The loop variable of a row-level name: a parameter, an input (or y), or a row cell."""
    if name in model.params:
        return ident("p_", name)
    if name in model.inputs or name == "y":
        return ident("in_", name)
    return ident("r_", name)


def row_names(spec: Spec):
    """Variable names of a row's symbols in a generated loop: the batch share w, the settings,
    the parameters, the inputs and the row's cells."""
    hyper = set(spec.hyper)
    return lambda n: n if n in ("w", "bk") else (ident("hy_", n) if n in hyper else row_name(spec.model, n))


def update_names(upd: Update, q: str):
    """Variable names of parameter `q`'s update cells in a generated loop: its gradient, value,
    step count, previous state, each cell, and the settings."""
    local = {"g": ident("g_", q), "p": ident("p_", q), "t": "t"}
    for s in upd.state:
        local[f"prev_{s}"] = ident("prev_", s + "__" + q)
    for name, _ in upd.cells:
        local[name] = ident("o_", name + "__" + q)
    return lambda n: local.get(n) or ident("hy_", n)


# ---------------------------------------------------------------------------------------------
# From an experiment's settings

_built: dict[tuple, Spec] = {}  # by every setting's value and the data's shape (see build_spec)


def build_spec(experiment: Experiment, n_rows: int, n_inputs: int, models: dict | None = None,
               classes: int = 2) -> Spec:
    """The loop's structure for an experiment on data of this shape (no numbers needed).

    Memoised by all of the experiment's settings (not a hand-picked few) and the data's shape, so
    a `train` repeated on the same sheet builds no model, update or key again. `models` caches
    model definitions across the experiments of a sweep."""
    try:
        memo: tuple | None = (tuple(sorted(experiment.values.items())), n_rows, n_inputs, classes)
        spec = _built.get(memo)
    except TypeError:  # an unhashable setting value: build it every time
        memo, spec = None, None
    if spec is None:
        key: tuple = (experiment.model, n_inputs, experiment.hidden, experiment.output, classes)
        if experiment.model == "dot_product":
            key += (experiment.factors, experiment.bias, experiment.y_range)
        try:
            model = models[key] if models is not None and key in models else build_model(*key)
        except ValueError as e:
            raise SettingError("model", str(e)) from None
        if models is not None:
            models[key] = model
        if model.tables:
            check_table_settings(experiment)
        update = build_update(experiment)
        batch = experiment.batch_size if experiment.batch_size else 0
        # a table model's gradients are analytic (graddesc's default, both, is not asked for)
        gradient = "analytic" if model.tables else experiment.gradient
        spec = Spec(model, update, loss_of(experiment), gradient, experiment.grad_method,
                    n_rows if batch == 0 or batch >= n_rows else batch, update.carry == "inputs")
        if memo is not None:
            if len(_built) > 4096:
                _built.clear()
            _built[memo] = spec
    unknown = sorted(set(experiment.init) - set(spec.params))
    if unknown and not spec.tables:  # a table model's parameters depend on the ids (run.job_for)
        raise SettingError(f"init {unknown[0]}", f"{experiment.model} has no parameter {unknown[0]!r}; "
                           f"its parameters are {', '.join(spec.params)}")
    return spec


# graddesc's optimizers whose macros read every parameter between epochs (normalisers, annealing
# tests, eve's feedback): written for the workbook's few scalar parameters, not for tables.
TABLE_MACROS = ("adagrad", "adagrad_ann", "adam_ann", "eve")


def check_table_settings(experiment: Experiment) -> None:
    """What a table model (dot_product) cannot do yet, as clear setting errors."""
    if experiment.flavour == "graddesc" and experiment.optimizer in TABLE_MACROS:
        ok = [o for o in ("sgd", "momentum", "rmsprop", "adam") if o not in TABLE_MACROS]
        raise SettingError("optimizer", f"graddesc {experiment.optimizer} is not supported for "
                           f"{experiment.model} (its macros work on the workbook's two parameters); "
                           f"graddesc supports {', '.join(ok)} here, or use flavour pytorch or fastai")
    if "gradient" in experiment.given and experiment.gradient != "analytic":
        raise SettingError("gradient", f"{experiment.model} trains with analytic gradients only, "
                           f"not {experiment.gradient!r}")
