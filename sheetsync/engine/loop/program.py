"""The training loop, emitted once from a Spec as a small statement list.

Two printers turn the same list into source: `numba_printer` (Python that numba compiles) and
`c_printer` (C for the system compiler). The list is plain data: statements (Let, Store, If,
For, Break, Alloc) over loop-level expressions (Var, Num, Op, Not, Pick, Call, Load, Row) and
`Cell`, a model's or optimizer's `Expr`, which each printer renders with `expr.to_python` or
`expr.to_c`. Every arithmetic operation is written here once, in the order it is computed, so
the two compiled loops do the same IEEE operations in the same order (see `c_printer`).

The kernel's arguments are fixed: kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV),
with the sizes E (experiments), n (rows), order_rows, x_cols and r_lines (recorded lines) read
from the arrays. Per experiment row e: H holds its numbers, P/S/T its parameters, optimizer
state and step count (updated in place), R its recorded step lines (when rec), EPO its epochs'
accumulators, DIV [diverged, line, param, epochs done, lines done]. Table models (dot_product)
are built by `build_tables`, with the same arguments (see the section below).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..expr import Expr, sym, symbols
from .spec import Spec, ident, row_name, row_names, scaled_row_cells, update_names, uses_batch_rows

# -- expressions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Num:
    value: int | float | bool

    def __eq__(self, other) -> bool:  # by type and text: NaN equals NaN, True is not 1
        return isinstance(other, Num) and (type(self.value), repr(self.value)) == (type(other.value), repr(other.value))

    def __hash__(self) -> int:
        return hash((type(self.value), repr(self.value)))


@dataclass(frozen=True)
class Op:
    """A binary operation: + - * / % (ints: Python's and C's agree on non-negative operands),
    comparisons == != < <= > >=, and the logical `and`, `or`."""

    op: str
    a: object
    b: object


@dataclass(frozen=True)
class Not:
    a: object


@dataclass(frozen=True)
class Pick:
    """`a if cond else b`."""

    cond: object
    a: object
    b: object


@dataclass(frozen=True)
class Call:
    """A named function: "abs" and "isfinite" on doubles, "torch_sum" (torch's batch-sum order),
    "index" (a double holding a whole number, as an int64 index: C's cast, numba's int())."""

    fn: str
    args: tuple


@dataclass(frozen=True)
class Load:
    """array[index...]; any index may be an expression (P[idx, f], idx read from an input column)."""

    array: str
    index: tuple


@dataclass(frozen=True)
class Row:
    """Row `index` of a 2-d array, passed whole to a Call (numba: a view; C: a pointer)."""

    array: str
    index: object


@dataclass(frozen=True, eq=False)
class Cell:
    """A model or update expression; `names` maps each of its symbols to a loop variable."""

    expr: Expr
    names: tuple[tuple[str, str], ...]

    def name(self, symbol: str) -> str:
        return dict(self.names)[symbol]

    def __eq__(self, other) -> bool:  # Expr compares by identity; its text is its value
        return isinstance(other, Cell) and (repr(self.expr), self.names) == (repr(other.expr), other.names)

    def __hash__(self) -> int:
        return hash((repr(self.expr), self.names))


def cell(e: Expr, names) -> Cell:
    return Cell(e, tuple((s, names(s)) for s in symbols(e)))


# -- statements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Let:
    """var = value; type "f64", "i64" or "bool" (C declares each variable once)."""

    var: str
    value: object
    type: str = "f64"


@dataclass(frozen=True)
class Store:
    array: str
    index: tuple
    value: object


@dataclass(frozen=True)
class If:
    """if / elif ... / else: `branches` is ((cond, body), ...), `orelse` a body."""

    branches: tuple
    orelse: tuple = ()


@dataclass(frozen=True)
class For:
    """for var in range(stop)."""

    var: str
    stop: object
    body: tuple


@dataclass(frozen=True)
class Break:
    pass


@dataclass(frozen=True)
class Alloc:
    """A scratch array, allocated once per kernel call (the batch's row gradients) or, inside a
    loop, once per pass and released by a `Free` (a table model's dense gradient). Its shape may
    name run-time sizes; `zeroed` starts it at 0; dtype "f64" or "i64"."""

    array: str
    shape: tuple
    zeroed: bool = False
    dtype: str = "f64"


@dataclass(frozen=True)
class Free:
    """Release an array an `Alloc` inside a loop made (C's free; numba collects it itself)."""

    array: str


@dataclass(frozen=True)
class Program:
    spec_key: tuple
    arrays: dict  # array name -> (dims, dtype); dims are size names or ints
    body: tuple

    def __hash__(self) -> int:
        return hash(self.spec_key)


# The kernel's array arguments, their dimensions and element types (the scalars are n_epochs, rec).
def arrays(spec: Spec) -> dict:
    n_params, n_state = len(spec.params), len(spec.update.state) * len(spec.params)
    return {"X": (("n", "x_cols"), "f64"), "Y": (("n",), "f64"), "ORDER": (("order_rows", "n"), "i64"),
            "P": (("E", n_params), "f64"), "S": (("E", n_state), "f64"), "H": (("E", len(spec.hyper)), "f64"),
            "T": (("E",), "f64"), "R": (("E", "r_lines", len(spec.step_columns())), "f64"),
            "EPO": (("E", "n_epochs", len(spec.accumulators)), "f64"), "DIV": (("E", 5), "i64"),
            "GB": ((n_params, max(spec.batch_size, 1)), "f64")}


def V(name: str) -> Var:
    return Var(name)


def _add(var: str, value) -> Let:
    return Let(var, Op("+", Var(var), value))


def _run_counters(spec: Spec) -> list:
    """An experiment's running values before its first row: the batch share w = 1/k and k (bk)
    where the row cells read them, the recorded line, the stop flag, the epochs done."""
    out: list = [Let("w", Num(1.0))] if spec.batch_size > 1 else []
    if uses_batch_rows(spec):
        out.append(Let("bk", Num(1.0)))
    return out + [Let("line", Num(0), "i64"), Let("stopped", Num(False), "bool"), Let("epochs_done", Num(0), "i64")]


def _batch_share(spec: Spec) -> list:
    """At a batch's first row: w = 1/k and k (as a double, the way numba converts an int), k the
    rows in this batch (the last one may be shorter)."""
    batch = spec.batch_size
    if batch <= 1:
        return []
    rows = Pick(Op("<=", Op("+", V("i"), Num(batch)), V("n")), Num(batch), Op("-", V("n"), V("i")))
    first = (Let("w", Op("/", Num(1.0), rows)),) + ((Let("bk", Op("*", Num(1.0), rows)),) if uses_batch_rows(spec) else ())
    return [If(((Op("==", V("nb"), Num(0)), first),))]


def _loss_not_finite() -> If:
    """A step whose batch loss is not finite is bad (-1) unless a parameter already was."""
    return If(((Op("and", Op("==", V("bad"), Num(-2)), Not(Call("isfinite", (V("batch_loss"),)))),
                (Let("bad", Num(-1), "i64"),)),))


def _close_step(step: list, row: list, batch: int) -> None:
    """The end of a step, in both loops: a bad step stops the run (DIV says where and why), the
    step runs when a batch is full (or the data ends), and every row counts a line."""
    e = V("e")
    step.append(If(((Op("!=", V("bad"), Num(-2)),
                     (Store("DIV", (e, Num(0)), Num(1)), Store("DIV", (e, Num(1)), V("line")),
                      Store("DIV", (e, Num(2)), V("bad")), Let("stopped", Num(True), "bool"))),)))
    if batch == 1:
        row += step
    else:
        end = Op("or", Op("==", V("nb"), Num(batch)), Op("==", V("i"), Op("-", V("n"), Num(1))))
        row.append(If(((end, tuple(step)),)))
    row += [_add("line", Num(1)), If(((V("stopped"), (Break(),)),))]


def build(spec: Spec) -> Program:
    """The loop for `spec` (see the module docstring for its arguments)."""
    if spec.tables:
        return build_tables(spec)
    model, upd, params = spec.model, spec.update, spec.params
    rn = row_names(spec)
    batch = spec.batch_size
    cols = spec.step_columns()
    n_params = len(params)
    e = V("e")
    acc_var = {a.column: ident("acc_", a.column) for a in spec.accumulators}
    running = [a for a in spec.accumulators if a.kind != "last"]

    # per experiment: its numbers, parameters, state and step count
    exp: list = [Let(ident("hy_", h), Load("H", (e, Num(k)))) for k, h in enumerate(spec.hyper)]
    exp += [Let(ident("p_", q), Load("P", (e, Num(j)))) for j, q in enumerate(params)]
    exp += [Let(ident("prev_", s + "__" + q), Load("S", (e, Num(si * n_params + j))))
            for si, s in enumerate(upd.state) for j, q in enumerate(params)]
    exp.append(Let("t", Load("T", (e,))))
    exp += _run_counters(spec)

    # per row: read it, compute its cells, add to the epoch's accumulators, record it
    row: list = [Let("r", Load("ORDER", (Op("%", V("ep"), V("order_rows")), V("i"))), "i64")]
    row += [Let(ident("in_", x), Load("X", (V("r"), Num(k)))) for k, x in enumerate(model.inputs)]
    row.append(Let(ident("in_", "y"), Load("Y", (V("r"),))))
    row += _batch_share(spec)
    row += [Let(ident("r_", name), cell(x, rn)) for name, x in scaled_row_cells(spec, sym("w"))]
    row += [Let(ident("u_", q), V(ident("r_", spec.gradient_source(q)))) for q in params]
    for a in running:
        v = acc_var[a.column]
        if a.of is None:
            continue
        if a.kind == "sum":
            row.append(_add(v, cell(a.of, rn)))
        elif a.kind == "nonzero":
            row.append(If(((Op("!=", cell(a.of, rn), Num(0.0)), (_add(v, Num(1.0)),)),)))
        elif a.kind == "max":  # a NaN compares false: it never replaces the maximum
            tmp = ident("tmp_", a.column)
            row += [Let(tmp, cell(a.of, rn)), If(((Op(">", V(tmp), V(v)), (Let(v, V(tmp)),)),))]
        else:
            raise ValueError(f"unknown accumulator kind {a.kind!r}")
    row.append(_add("batch_loss", V(ident("r_", "loss"))))
    if batch > 1:
        row += [Store("GB", (Num(j), V("nb")), V(ident("u_", q))) for j, q in enumerate(params)]
    row.append(_add("nb", Num(1)))
    after = set(spec.state_cols) | {f"new {q}" for q in params}  # recorded once the update is done
    own = {"epoch": V("ep"), "step": Op("+", V("t"), Num(1.0)), "row": Op("+", V("r"), Num(1))}
    rec_row = [Store("R", (e, V("line"), Num(k)),
                     own[c] if c in own else Num(float("nan")) if c in after else V(row_name(model, c)))
               for k, c in enumerate(cols)]
    row.append(If(((V("rec"), tuple(rec_row)),)))

    # the update, at the end of a batch
    step: list = [_add("t", Num(1.0))]
    for j, q in enumerate(params):
        total = V(ident("u_", q)) if batch == 1 else Call("torch_sum", (Row("GB", Num(j)), V("nb")))
        step.append(Let(ident("g_", q), total))
    for q in params:
        name_of = update_names(upd, q)
        step += [Let(name_of(name), cell(x, name_of)) for name, x in upd.cells]
    col = {c: k for k, c in enumerate(cols)}
    rec_upd = [Store("R", (e, V("line"), Num(col[f"{s}_{q}"])), V(ident("o_", s + "__" + q)))
               for s in upd.state for q in params if f"{s}_{q}" in col]
    rec_upd += [Store("R", (e, V("line"), Num(col[f"new {q}"])), V(ident("o_", "new__" + q)))
                for q in params if f"new {q}" in col]
    step.append(If(((V("rec"), tuple(rec_upd)),)))
    step.append(Let("bad", Num(-2), "i64"))
    out_of_bounds = tuple((Not(Op("<=", Call("abs", (V(ident("o_", "new__" + q)),)), V("hy_divergence_bound"))),
                           (Let("bad", Num(j), "i64"),)) for j, q in enumerate(params))
    step.append(If(out_of_bounds))
    step.append(_loss_not_finite())
    step += [Let(ident("prev_", s + "__" + q), V(ident("o_", s + "__" + q))) for s in upd.state for q in params]
    moves = tuple(Let(ident("p_", q), V(ident("o_", "new__" + q))) for q in params)
    if spec.carry_inputs:  # graddesc: the epoch's last update is not carried, its inputs are
        step.append(If(((Not(Op("==", V("i"), Op("-", V("n"), Num(1)))), moves),)))
    else:
        step += moves
    step += [Let("nb", Num(0), "i64"), Let("batch_loss", Num(0.0))]
    _close_step(step, row, batch)

    # per epoch
    epoch: list = [If(((V("stopped"), (Break(),)),))]
    epoch += [Let(acc_var[a.column], Num(0.0)) for a in running]
    epoch += [Let("batch_loss", Num(0.0)), Let("nb", Num(0), "i64"), For("i", V("n"), tuple(row))]
    for k, a in enumerate(spec.accumulators):
        value = cell(a.of, rn) if a.kind == "last" else V(acc_var[a.column])
        epoch.append(Store("EPO", (e, V("ep"), Num(k)), value))
    epoch.append(_add("epochs_done", Num(1)))

    exp.append(For("ep", V("n_epochs"), tuple(epoch)))
    exp += [Store("P", (e, Num(j)), V(ident("p_", q))) for j, q in enumerate(params)]
    exp += [Store("S", (e, Num(si * n_params + j)), V(ident("prev_", s + "__" + q)))
            for si, s in enumerate(upd.state) for j, q in enumerate(params)]
    exp += [Store("T", (e,), V("t")), Store("DIV", (e, Num(3)), V("epochs_done")),
            Store("DIV", (e, Num(4)), V("line"))]
    body: list = []
    if batch > 1:
        body.append(Alloc("GB", (n_params, batch)))
    body.append(For("e", V("E"), tuple(exp)))
    return Program(spec.key, arrays(spec), tuple(body))


# -- table models (dot_product) ---------------------------------------------------------------
#
# P holds every table entry, table after table (model.tables' order), each table row-major:
# rows x slots, its rows a run-time size read from H (``n_user``...). A row loads its slots from
# the rows its index inputs name, and adds its slot gradients into G, a dense gradient table
# (torch's nn.Embedding backward: rows sharing an entry add in row order, starting from 0). At the
# end of a batch the optimizer's cells run as one loop over the table's entries (each entry an
# independent parameter; state S[e, s*n_p + j]), then the entries the batch touched (TOUCH) are
# zeroed. When the update is the identity for g = 0 and keeps no state (plain SGD without decay,
# `Spec.sparse_update`) only the touched entries are visited, each zeroed as it is updated (an
# entry listed twice sees g = 0 the second time and stays): the same numbers, far less work.
# The dense update loop has no branch, so the C compiler vectorises it; the divergence bound is
# then checked by one scan of P (graddesc, which does not store its epoch's last update, checks
# each new value as it is computed).


def table_arrays(spec: Spec) -> dict:
    a = arrays(spec)
    a["P"] = (("E", "n_p"), "f64")
    a["S"] = (("E", "n_s"), "f64")
    a["G"] = (("n_p",), "f64")
    a["TOUCH"] = (("n_touch",), "i64")
    del a["GB"]
    return a


def _slot_lets(spec: Spec, row_var) -> list:
    """The index of each table row the data row `row_var` names, and each slot's entry (j_<slot>)."""
    model = spec.model
    out: list = [Let(ident("in_", x), Load("X", (row_var, Num(k)))) for k, x in enumerate(model.inputs)]
    out.append(Let(ident("in_", "y"), Load("Y", (row_var,))))
    for x in dict.fromkeys(t.index for t in spec.tables):
        out.append(Let(ident("ix_", x), Call("index", (V(ident("in_", x)),)), "i64"))
    for t in spec.tables:
        width = len(t.slots)
        for c, q in enumerate(t.slots):
            at = Op("+", Op("+", V(ident("base_", t.name)), Op("*", V(ident("ix_", t.index)), Num(width))), Num(c))
            out.append(Let(ident("j_", q), at, "i64"))
    out += [Let(ident("p_", q), Load("P", (V("e"), V(ident("j_", q))))) for q in spec.params]
    return out


COMPARISONS = ("<", ">", "==")


def hoisted_update(spec: Spec) -> tuple[list[tuple[str, Expr]], list[tuple[str, Expr]]]:
    """The update's cells with what is the same for every table entry taken out: the largest
    pieces that read only the step count and the settings (Adam's bias corrections, an
    adagrad's decayed lr) become cells computed once per step, before the loop over the
    entries. The same operations in the same order: the numbers do not change, the loop over
    ~15,000 entries no longer calls pow() three times for each. Comparisons stay in the loop
    (their value is a truth, not a double)."""
    upd = spec.update
    fixed = set(upd.hyper) | {"t"}
    pieces: dict[str, tuple[str, Expr]] = {}

    def lift_out(e: Expr) -> Expr:
        if e.op in ("sym", "const"):
            return e
        if e.op not in COMPARISONS and set(symbols(e)) <= fixed:
            key = repr(e)
            if key not in pieces:
                pieces[key] = (f"step{len(pieces) + 1}", e)
            return sym(pieces[key][0])
        return Expr(e.op, tuple(lift_out(a) if isinstance(a, Expr) else a for a in e.args))

    cells = [(name, lift_out(e)) for name, e in upd.cells]
    return list(pieces.values()), cells


def _entry_update(spec: Spec, j, record_slots: bool, cells, per_step, check: bool = True) -> list:
    """The optimizer's cells for table entry `j` (g from G), written back to P and S."""
    upd = spec.update
    entry = update_names(upd, "entry")
    steps = {name: ident("st_", name) for name, _ in per_step}
    n = lambda name: steps.get(name) or entry(name)  # noqa: E731
    body: list = [Let(n("g"), Load("G", (j,))), Let(n("p"), Load("P", (V("e"), j)))]
    body += [Let(n(f"prev_{s}"), Load("S", (V("e"), Op("+", Op("*", Num(k), V("n_p")), j))))
             for k, s in enumerate(upd.state)]
    body += [Let(n(name), cell(x, n)) for name, x in cells]
    body += [Store("S", (V("e"), Op("+", Op("*", Num(k), V("n_p")), j)), V(n(s))) for k, s in enumerate(upd.state)]
    new = V(n("new"))
    store = Store("P", (V("e"), j), new)
    if spec.carry_inputs:  # graddesc: the epoch's last update is not carried, its inputs are
        body.append(If(((Not(Op("==", V("i"), Op("-", V("n"), Num(1)))), (store,)),)))
    else:
        body.append(store)
    if record_slots:  # the row's slots' new values, as computed (carried or not)
        body += [If(((Op("==", j, V(ident("j_", q))), (Let(ident("rnew_", q), new),)),)) for q in spec.params]
    if check:
        body.append(_out_of_bounds(new, j))
    return body


def _out_of_bounds(value, j) -> If:
    """The first entry whose new value left ±divergence_bound (or is NaN) is the one named."""
    return If(((Op("and", Op("==", V("bad"), Num(-2)), Not(Op("<=", Call("abs", (value,)), V("hy_divergence_bound")))),
                (Let("bad", j, "i64"),)),))


def build_tables(spec: Spec) -> Program:
    model, upd, params = spec.model, spec.update, spec.params
    rn = row_names(spec)
    batch = spec.batch_size
    cols = spec.step_columns()
    e = V("e")
    acc_var = {a.column: ident("acc_", a.column) for a in spec.accumulators}
    running = [a for a in spec.accumulators if a.kind == "sum"]
    passes = [a for a in spec.accumulators if a.kind == "pass"]
    sparse = spec.sparse_update

    exp: list = [Let(ident("hy_", h), Load("H", (e, Num(k)))) for k, h in enumerate(spec.hyper)]
    exp += [Let(size, Call("index", (V(ident("hy_", size)),)), "i64") for size in spec.table_sizes]
    offset = Num(0)
    for t in spec.tables:  # each table's first entry in P
        exp.append(Let(ident("base_", t.name), offset, "i64"))
        offset = Op("+", V(ident("base_", t.name)), Op("*", V(f"n_{t.index}"), Num(len(t.slots))))
    exp += [Let("n_p", offset, "i64"), Let("n_s", Op("*", Num(len(upd.state)), V("n_p")), "i64"),
            Let("n_touch", Num(max(batch, 1) * len(params)), "i64"), Let("nt", Num(0), "i64"),
            Alloc("G", ("n_p",), zeroed=True), Alloc("TOUCH", ("n_touch",), dtype="i64"), Let("t", Load("T", (e,)))]
    if spec.carry_inputs:
        exp += [Let(ident("rnew_", q), Num(0.0)) for q in params]
    exp += _run_counters(spec)

    row: list = [Let("r", Load("ORDER", (Op("%", V("ep"), V("order_rows")), V("i"))), "i64")]
    row += _slot_lets(spec, V("r"))
    row += _batch_share(spec)
    row += [Let(ident("r_", name), cell(x, rn)) for name, x in scaled_row_cells(spec, sym("w"))]
    for a in running:
        row.append(_add(acc_var[a.column], cell(a.of, rn)))
    row.append(_add("batch_loss", V(ident("r_", "loss"))))
    for q in params:  # scatter into the dense gradient, remember the entry
        j = V(ident("j_", q))
        row += [Store("G", (j,), Op("+", Load("G", (j,)), V(ident("r_", f"de/d{q}")))),
                Store("TOUCH", (V("nt"),), j), _add("nt", Num(1))]
    row.append(_add("nb", Num(1)))
    after = set(spec.state_cols) | {f"new {q}" for q in params}
    own = {"epoch": V("ep"), "step": Op("+", V("t"), Num(1.0)), "row": Op("+", V("r"), Num(1))}
    rec_row = [Store("R", (e, V("line"), Num(k)),
                     own[c] if c in own else Num(float("nan")) if c in after else V(row_name(model, c)))
               for k, c in enumerate(cols)]
    row.append(If(((V("rec"), tuple(rec_row)),)))

    # the update, at the end of a batch: every entry (or, sparse, the touched ones)
    step: list = [_add("t", Num(1.0)), Let("bad", Num(-2), "i64")]
    record_new = spec.carry_inputs
    per_step, cells = hoisted_update(spec)
    fixed = lambda q: "t" if q == "t" else ident("hy_", q)  # noqa: E731  (a piece reads t and settings only)
    step += [Let(ident("st_", name), cell(x, fixed)) for name, x in per_step]
    if sparse:
        visit = (Let("jt", Load("TOUCH", (V("k"),)), "i64"),
                 *_entry_update(spec, V("jt"), record_new, cells, per_step), Store("G", (V("jt"),), Num(0.0)))
        step.append(For("k", V("nt"), visit))
    elif spec.carry_inputs:  # the new values are not all stored: check each as it is computed
        step.append(For("jj", V("n_p"), tuple(_entry_update(spec, V("jj"), record_new, cells, per_step))))
    else:  # the update loop without a branch (the compilers vectorise it), then one scan of P
        step.append(For("jj", V("n_p"), tuple(_entry_update(spec, V("jj"), record_new, cells, per_step, False))))
        step.append(For("jj", V("n_p"), (_out_of_bounds(Load("P", (e, V("jj"))), V("jj")),)))
    if not sparse:
        step.append(For("k", V("nt"), (Store("G", (Load("TOUCH", (V("k"),)),), Num(0.0)),)))
    col = {c: k for k, c in enumerate(cols)}
    rec_upd = [Store("R", (e, V("line"), Num(col[f"{s}_{q}"])),
                     Load("S", (e, Op("+", Op("*", Num(k), V("n_p")), V(ident("j_", q))))))
               for k, s in enumerate(upd.state) for q in params if f"{s}_{q}" in col]
    rec_upd += [Store("R", (e, V("line"), Num(col[f"new {q}"])),
                      V(ident("rnew_", q)) if record_new else Load("P", (e, V(ident("j_", q)))))
                for q in params]
    step.append(If(((V("rec"), tuple(rec_upd)),)))
    step.append(_loss_not_finite())
    step += [Let("nb", Num(0), "i64"), Let("nt", Num(0), "i64"), Let("batch_loss", Num(0.0))]
    _close_step(step, row, batch)

    # per epoch; then the passes over every data row with the epoch's final parameters
    epoch: list = [If(((V("stopped"), (Break(),)),))]
    epoch += [Let(acc_var[a.column], Num(0.0)) for a in running + passes]
    epoch += [Let("batch_loss", Num(0.0)), Let("nb", Num(0), "i64"), For("i", V("n"), tuple(row))]
    if passes:
        forward: list = []
        for name, x in scaled_row_cells(spec, sym("w")):
            forward.append(Let(ident("r_", name), cell(x, rn)))
            if name == "err":
                break
        forward += [_add(acc_var[a.column], cell(a.of, rn)) for a in passes]
        epoch.append(For("rr", V("n"), tuple(_slot_lets(spec, V("rr")) + forward)))
    for k, a in enumerate(spec.accumulators):
        epoch.append(Store("EPO", (e, V("ep"), Num(k)), V(acc_var[a.column])))
    epoch.append(_add("epochs_done", Num(1)))

    exp.append(For("ep", V("n_epochs"), tuple(epoch)))
    exp += [Store("T", (e,), V("t")), Store("DIV", (e, Num(3)), V("epochs_done")),
            Store("DIV", (e, Num(4)), V("line")), Free("G"), Free("TOUCH")]
    return Program(spec.key, table_arrays(spec), (For("e", V("E"), tuple(exp)),))


def variables(body, found: dict | None = None) -> dict:
    """Every variable a statement list assigns (not loop counters), with its type, first-seen order."""
    found = {} if found is None else found
    for s in body:
        if isinstance(s, Let):
            found.setdefault(s.var, s.type)
        elif isinstance(s, If):
            for _, b in s.branches:
                variables(b, found)
            variables(s.orelse, found)
        elif isinstance(s, For):
            variables(s.body, found)
    return found
