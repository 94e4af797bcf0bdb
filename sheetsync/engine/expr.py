"""A tiny expression language: the one definition every number, formula and precedent comes from.

Models and optimizers are written as small expressions over named cells (``a*x + b``), the way
a spreadsheet row is written. From one expression sheetsync derives:

- Python source that numba compiles into the training loop (`to_python`), and the same
  loop's C source (`to_c`, for the C backend: see `native`),
- a reference evaluation in plain Python floats, used by tests and traces (`evaluate`),
- the cells it reads, for the precedents map (`symbols`),
- spreadsheet formula text (`to_formula`), for formula mode,
- plain text as a learner writes it (`plain`), for the diagnosis sentences.

Every operation is one row of `OPS` with all of its forms side by side, so adding an operation is
adding a row (and a builder function below); the printers only walk the tree.

Rendering keeps the operation order exactly as written (every binary node is parenthesised),
because IEEE arithmetic is not associative and the workbook's numbers depend on its order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

Number = float | int


@dataclass(frozen=True, eq=False)
class Expr:
    """An expression over named cells: a symbol, a constant or an operation of OPS on its args."""

    op: str  # "sym", or a key of OPS
    args: tuple = ()

    # -- building ------------------------------------------------------------------------------
    def __add__(self, other): return Expr("+", (self, lift(other)))
    def __radd__(self, other): return Expr("+", (lift(other), self))
    def __sub__(self, other): return Expr("-", (self, lift(other)))
    def __rsub__(self, other): return Expr("-", (lift(other), self))
    def __mul__(self, other): return Expr("*", (self, lift(other)))
    def __rmul__(self, other): return Expr("*", (lift(other), self))
    def __truediv__(self, other): return Expr("/", (self, lift(other)))
    def __rtruediv__(self, other): return Expr("/", (lift(other), self))
    def __pow__(self, other): return Expr("pow", (self, lift(other)))
    def __neg__(self): return Expr("neg", (self,))
    def __lt__(self, other): return Expr("<", (self, lift(other)))
    def __gt__(self, other): return Expr(">", (self, lift(other)))
    def eq(self, other): return Expr("==", (self, lift(other)))

    @property
    def name(self) -> str:
        assert self.op == "sym"
        return self.args[0]

    def __repr__(self) -> str:
        return to_python(self, lambda n: n)


def sym(name: str) -> Expr:
    return Expr("sym", (name,))


def const(value: Number) -> Expr:
    return Expr("const", (float(value),))


def lift(value) -> Expr:
    return value if isinstance(value, Expr) else const(value)


def sqrt(e) -> Expr: return Expr("sqrt", (lift(e),))
def absolute(e) -> Expr: return Expr("abs", (lift(e),))
def sign(e) -> Expr: return Expr("sign", (lift(e),))
def maximum(a, b) -> Expr: return Expr("max", (lift(a), lift(b)))
def where(cond: Expr, then, otherwise) -> Expr: return Expr("if", (cond, lift(then), lift(otherwise)))
def fma(a, b, c) -> Expr:
    """a*b + c rounded once (see `fused`); spreadsheets have no such function and write a*b+c."""
    return Expr("fma", (lift(a), lift(b), lift(c)))
def exp(e) -> Expr: return Expr("exp", (lift(e),))
def log(e) -> Expr:
    """Natural logarithm (spreadsheet `LN`)."""
    return Expr("log", (lift(e),))
def log10(e) -> Expr:
    """Base-10 logarithm (spreadsheet `LOG`, base 10 in Excel, LibreOffice and Google Sheets)."""
    return Expr("log10", (lift(e),))
def log1p(e) -> Expr:
    """log(1 + e), exact for tiny e in the loop (C's and numba's log1p). Spreadsheets have no
    log1p: the formula is LN(1+e), which rounds 1+e first, so it is *not* bitwise log1p: its error
    is ~1e-16 absolute, not relative (for |e| below ~1e-16 it is 0 where log1p is e)."""
    return Expr("log1p", (lift(e),))
def sigmoid(e) -> Expr:
    """The logistic function as torch computes it for float64 on CPU: 1/(1+exp(-x)) (bit for bit
    with torch's scalar path; torch's vectorised path uses SLEEF's exp, within 1 ulp). Stable:
    exp(-x) overflowing to inf gives 0, never NaN. The formula switches to exp(x)/(1+exp(x))
    for x < 0, because a spreadsheet's EXP errors where C's overflows to inf."""
    return Expr("sigmoid", (lift(e),))
def amax(terms) -> Expr:
    """The largest of several terms, one node (a nested `maximum` repeats its operands):
    Python's and numba's max(a, b, ...) order: each next term replaces the running one if greater."""
    terms = [lift(t) for t in terms]
    return terms[0] if len(terms) == 1 else Expr("amax", tuple(terms))


def logsumexp(terms, shift: Expr | None = None) -> Expr:
    """log(exp(t1) + ... + exp(tn)) as torch.logsumexp computes it: m = the largest term, set to
    0 when it is infinite; log(sum of exp(t - m), added left to right) + m. `shift` is m when the
    caller keeps the largest term in a cell of its own (it is read 2n + 4 times here).

    The test for infinite is m - m == 0 (false for ±inf and NaN) rather than torch's |m| == inf:
    a spreadsheet has no infinity to compare with. Only a NaN m differs (kept by torch, 0 here),
    and then a term is NaN, so the result is NaN either way."""
    terms = [lift(t) for t in terms]
    m = amax(terms) if shift is None else lift(shift)
    m = where((m - m).eq(0.0), m, 0.0)
    return log(total([exp(t - m) for t in terms])) + m


def log_sigmoid(e) -> Expr:
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): torch's log_sigmoid, the piece of
    binary_cross_entropy_with_logits ((1-y)*x - log_sigmoid(x)). torch evaluates it vectorised
    with SLEEF, so the loop agrees with it to ~1e-14 relative, not bit for bit."""
    x = lift(e)
    return where(const(0.0) < x, 0.0, x) - log1p(exp(-absolute(x)))


# Up to this many terms a sum is the chain of binary "+" it has always been (the generated loops
# of existing models stay byte for byte the same); longer sums are one flat "sum" node, which
# renders as `(t1 + t2 + ... + tn)`: the same additions in the same order (Python, C and a
# spreadsheet all add left to right), without an expression nested n deep (RecursionError, and
# the parsers' nesting limits).
NESTED_SUM_TERMS = 32


def total(terms) -> Expr:
    """t1 + t2 + ... + tn, added left to right."""
    terms = [lift(t) for t in terms]
    if len(terms) > NESTED_SUM_TERMS:
        return Expr("sum", tuple(terms))
    result = terms[0]
    for t in terms[1:]:
        result = result + t
    return result


def subs(e: Expr, mapping: Mapping[str, Expr]) -> Expr:
    """Replace symbols by expressions (used to inline intermediates and to shift a parameter)."""
    if e.op == "sym":
        return mapping.get(e.name, e)
    if e.op == "const":
        return e
    return Expr(e.op, tuple(subs(a, mapping) for a in e.args))


def symbols(e: Expr) -> list[str]:
    """The names an expression reads, in first-seen order (its direct precedents)."""
    seen: dict[str, None] = {}

    def walk(node: Expr) -> None:
        if node.op == "sym":
            seen.setdefault(node.name)
        else:
            for a in node.args:
                if isinstance(a, Expr):
                    walk(a)

    walk(e)
    return list(seen)


# -- the table of operations ---------------------------------------------------------------


def _float_literal(v: float) -> str:
    r = repr(float(v))
    return r if r not in ("inf", "-inf", "nan") else f"float('{r}')"


def _c_literal(v: float) -> str:
    # hex floats are exact: no decimal-to-binary rounding left to the C compiler
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = float(v).hex()
    return f"({text})" if text.startswith("-") else text


def _formula_literal(v: float) -> str:
    if not math.isfinite(v):
        raise ValueError(f"a spreadsheet formula cannot hold the number {v!r}")
    return repr(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


def _divide(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:  # C: ±inf with the sign of a/b (b may be -0.0), NaN for 0/0 and NaN/0
        if a != a or a == 0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _odd_integer(v: float) -> bool:
    return math.isfinite(v) and v == int(v) and int(v) % 2 == 1


def _pow(a: float, b: float) -> float:
    """C's pow(): Python raises where C returns ±inf, and goes complex where C returns NaN."""
    if a < 0 and math.isfinite(a) and math.isfinite(b) and b != int(b):
        return math.nan
    try:
        r = a ** b
    except (ZeroDivisionError, OverflowError):  # 0 ** negative, or a result beyond the doubles
        return -math.inf if math.copysign(1.0, a) < 0 and _odd_integer(b) else math.inf
    return math.nan if isinstance(r, complex) else r


def _exp(a: float) -> float:
    try:
        return math.exp(a)
    except OverflowError:  # C and numba give inf
        return math.inf


def _logarithm(f: Callable[[float], float], pole: float) -> Callable[[float], float]:
    """C's log/log10/log1p on the reals: -inf at the pole, NaN below it (Python raises)."""
    def value(a: float) -> float:
        if a == pole:
            return -math.inf
        return f(a) if a > pole or a == math.inf else math.nan
    return value


def _fma(a: float, b: float, c: float) -> float:
    """C's fma(): a*b + c exactly (rational arithmetic), rounded once, with IEEE's infinities and
    signed zeros (a Fraction has neither)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return a * b + c  # the product is already inf or NaN, exactly as fma sees it
    if not math.isfinite(c):
        return c
    from fractions import Fraction  # here: fractions and decimal take ~1.5 ms to import, few runs get here

    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        negative = math.copysign(1.0, a) * math.copysign(1.0, b) < 0 and math.copysign(1.0, c) < 0
        return -0.0 if negative and (a == 0 or b == 0) and c == 0 else 0.0
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def _amax_c(*xs: str) -> str:
    # a GNU C statement expression: every operand once, the same comparisons as Python's max()
    steps = "".join(f" _m = ({x} > _m) ? {x} : _m;" for x in xs[1:])
    return f"({{ double _m = {xs[0]};{steps} _m; }})"


def _max_plain(args: tuple, p: "_Plain") -> str | None:
    if args[1].op == "const" and args[1].args[0] == 0.0:
        return f"max({p(args[0])}, 0)"
    return None


def _factors(e: Expr) -> list[Expr]:
    if e.op == "*":
        return _factors(e.args[0]) + _factors(e.args[1])
    return [e]


def _product_plain(args: tuple, p: "_Plain") -> str:
    """c·x·g: constants first, the loss's derivative (named g) last, 1· dropped."""
    fs = [f for a in args for f in _factors(a) if not (f.op == "const" and f.args[0] == 1.0)]
    if not fs:
        return "1"
    consts = [f for f in fs if f.op == "const"]
    rest = [f for f in fs if f.op != "const"]
    rest.sort(key=lambda f: (f.op == "sym" and p.names.get(f.args[0]) == "g", f.op != "sym"))
    parts = [p(f) for f in consts + rest]
    parts = [f"({s})" if " + " in s or " - " in s else s for s in parts]
    return "·".join(parts)


def _fn(name: str) -> Callable[..., str]:
    return lambda *xs: f"{name}({', '.join(xs)})"


def _fx(name: str) -> Callable[..., str]:  # a spreadsheet function
    return lambda *xs: f"{name}({','.join(xs)})"


def _infix(sym_: str) -> Callable[[str, str], str]:
    return lambda a, b: f"({a} {sym_} {b})"


class Op(NamedTuple):  # immutable like a frozen dataclass, ~4x cheaper to define (start-up)
    """One operation in every form. The text forms take their operands already rendered; `value`
    takes floats and computes exactly what the Python and C forms compute (same operations,
    same order, same NaN and infinity choices); `array` is the same over numpy arrays (the
    diagnostics' landscapes); `plain` takes the operand Exprs and a printer, and returns None
    where the Python form reads well enough."""

    python: Callable[..., str]
    c: Callable[..., str]
    formula: Callable[..., str]
    value: Callable[..., float]
    array: Callable[..., Any]
    plain: Callable[[tuple, "_Plain"], str | None] | None = None


def _np(name: str) -> Callable[..., Any]:
    return lambda *xs: getattr(_numpy(), name)(*xs)


def _numpy():
    import numpy

    return numpy


OPS: dict[str, Op] = {
    # leaves: the forms take the number itself
    "const": Op(_float_literal, _c_literal, _formula_literal, float, lambda v: _numpy().float64(v),
                lambda args, p: f"{args[0]:g}"),
    # arithmetic in the order written: every binary node parenthesised
    "+": Op(_infix("+"), _infix("+"), lambda a, b: f"({a}+{b})", lambda a, b: a + b, _np("add"),
            lambda args, p: f"{p(args[0])} + {p(args[1])}"),
    "-": Op(_infix("-"), _infix("-"), lambda a, b: f"({a}-{b})", lambda a, b: a - b, _np("subtract"),
            lambda args, p: f"{p(args[0])} - {p(args[1])}"),
    "*": Op(_infix("*"), _infix("*"), lambda a, b: f"({a}*{b})", lambda a, b: a * b, _np("multiply"),
            _product_plain),
    "/": Op(_infix("/"), _infix("/"), lambda a, b: f"({a}/{b})", _divide, _np("divide")),
    # C's + is left-associative and never reordered (no -ffast-math): the same additions
    "sum": Op(lambda *xs: "(" + " + ".join(xs) + ")", lambda *xs: "(" + " + ".join(xs) + ")",
              lambda *xs: "(" + "+".join(xs) + ")", lambda *xs: _left_sum(xs), lambda *xs: _left_sum(xs)),
    "<": Op(_infix("<"), _infix("<"), lambda a, b: f"{a}<{b}", lambda a, b: a < b, _np("less")),
    ">": Op(_infix(">"), _infix(">"), lambda a, b: f"{a}>{b}", lambda a, b: a > b, _np("greater")),
    "==": Op(_infix("=="), _infix("=="), lambda a, b: f"{a}={b}", lambda a, b: a == b, _np("equal")),
    "neg": Op(lambda a: f"(-{a})", lambda a: f"(-{a})", lambda a: f"(-{a})", lambda a: -a, _np("negative"),
              lambda args, p: f"-{p(args[0])}"),
    # numba's `**` on floats is llvm.pow, a call to the same libm pow()
    "pow": Op(lambda a, b: f"({a} ** {b})", _fn("pow"), _fx("POWER"), _pow, _np("power")),
    "sqrt": Op(_fn("math.sqrt"), _fn("sqrt"), _fx("SQRT"), lambda a: math.sqrt(a) if a >= 0 else math.nan,
               _np("sqrt")),
    "abs": Op(_fn("abs"), _fn("fabs"), _fx("ABS"), abs, _np("abs"), lambda args, p: f"|{p(args[0])}|"),
    "sign": Op(lambda x: f"(1.0 if {x} > 0.0 else (-1.0 if {x} < 0.0 else 0.0))",
               lambda x: f"(({x} > 0.0) ? 1.0 : (({x} < 0.0) ? -1.0 : 0.0))", _fx("SIGN"),
               lambda a: 1.0 if a > 0 else (-1.0 if a < 0 else 0.0), lambda a: _sign_array(a),
               lambda args, p: f"sign({p(args[0])})"),
    # not fmax(): NaN and -0.0 must pick the operand `a if a >= b else b` picks
    "max": Op(lambda a, b: f"({a} if {a} >= {b} else {b})", lambda a, b: f"(({a} >= {b}) ? {a} : {b})",
              _fx("MAX"), lambda a, b: a if a >= b else b,
              lambda a, b: _numpy().where(a >= b, a, b), _max_plain),
    "amax": Op(_fn("max"), _amax_c, _fx("MAX"), max, lambda *xs: _amax_array(xs)),
    "if": Op(lambda c, t, f: f"({t} if {c} else {f})", lambda c, t, f: f"({c} ? {t} : {f})", _fx("IF"),
             lambda c, t, f: t if c else f, lambda c, t, f: _numpy().where(c, t, f),
             lambda args, p: p(args[1])),  # a learner reads the active branch
    # C99 fma(): one rounding, like numba's llvm.fma; a spreadsheet has none: one more rounding
    "fma": Op(_fn("fma"), _fn("fma"), lambda a, b, c: f"(({a}*{b})+{c})", _fma, lambda a, b, c: a * b + c),
    # numba lowers math.exp/log/... to the same libm calls C makes
    "exp": Op(_fn("math.exp"), _fn("exp"), _fx("EXP"), _exp, _np("exp"), lambda args, p: f"exp({p(args[0])})"),
    "log": Op(_fn("math.log"), _fn("log"), _fx("LN"), _logarithm(math.log, 0.0), _np("log"),
              lambda args, p: f"ln({p(args[0])})"),
    "log10": Op(_fn("math.log10"), _fn("log10"), _fx("LOG"), _logarithm(math.log10, 0.0), _np("log10"),
                lambda args, p: f"log10({p(args[0])})"),
    "log1p": Op(_fn("math.log1p"), _fn("log1p"), lambda a: f"LN((1+{a}))", _logarithm(math.log1p, -1.0),
                _np("log1p"), lambda args, p: f"ln(1 + {p(args[0])})"),
    "sigmoid": Op(lambda a: f"(1.0 / (1.0 + math.exp((-{a}))))", lambda a: f"(1.0 / (1.0 + exp((-{a}))))",
                  lambda a: f"IF({a}>=0,(1/(1+EXP((-{a})))),(EXP({a})/(1+EXP({a}))))",
                  lambda a: 1.0 / (1.0 + _exp(-a)), lambda a: 1.0 / (1.0 + _numpy().exp(-a)),
                  lambda args, p: f"sigmoid({p(args[0])})"),
}


def _left_sum(xs):
    result = xs[0]
    for v in xs[1:]:
        result = result + v
    return result


def _sign_array(a):  # np.sign(nan) is nan; the loop's sign is 0.0
    np = _numpy()
    return np.where(a > 0, 1.0, np.where(a < 0, -1.0, 0.0))


def _amax_array(xs):
    np = _numpy()
    result = xs[0]
    for x in xs[1:]:
        result = np.where(x > result, x, result)
    return result


# -- the printers: one walk, a column of the table ------------------------------------------


def _render(e: Expr, form: str, name: Callable[[str], str]) -> str:
    if e.op == "sym":
        return name(e.args[0])
    fn = getattr(OPS[_known(e.op)], form)
    if e.op == "const":
        return fn(e.args[0])
    return fn(*(_render(a, form, name) for a in e.args))


def _known(op: str) -> str:
    if op not in OPS:
        raise ValueError(f"unknown op {op}")
    return op


def to_python(e: Expr, name: Callable[[str], str]) -> str:
    """Python (and numba) source for `e`; `name` maps a symbol to a variable name."""
    return _render(e, "python", name)


def to_c(e: Expr, name: Callable[[str], str]) -> str:
    """C source for `e`, operation for operation as `to_python` renders it (the C backend must
    agree with numba bit for bit: same operations, same order, same NaN choices)."""
    return _render(e, "c", name)


def to_formula(e: Expr, ref: Callable[[str], str]) -> str:
    """Spreadsheet formula text (without '='); `ref` maps a symbol to a cell reference."""
    return _render(e, "formula", ref)


def evaluate(e: Expr, env: Mapping[str, float]) -> float:
    """Plain-Python evaluation, operation for operation as `to_python` renders it."""
    op, args = e.op, e.args
    if op == "sym":
        return env[args[0]]
    if op == "const":
        return args[0]
    if op == "if":  # only the branch taken is evaluated, as in the loop
        return evaluate(args[1], env) if evaluate(args[0], env) else evaluate(args[2], env)
    return OPS[_known(op)].value(*(evaluate(a, env) for a in args))


def evaluate_array(e: Expr, env: Mapping[str, Any]) -> Any:
    """`e` over numpy arrays: the same operations (each IEEE operation rounds the same in numpy
    as in C; `fma` is the one exception, rounded twice)."""
    if e.op == "sym":
        return env[e.args[0]]
    if e.op == "const":
        return OPS["const"].array(e.args[0])
    return OPS[_known(e.op)].array(*(evaluate_array(a, env) for a in e.args))


class _Plain:
    def __init__(self, names: Mapping[str, str]):
        self.names = names

    def __call__(self, e: Expr) -> str:
        if e.op == "sym":
            return self.names.get(e.args[0], e.args[0])
        form = OPS[_known(e.op)].plain
        text = form(e.args, self) if form is not None else None
        return repr(e) if text is None else text


def plain(e: Expr, names: Mapping[str, str] | None = None) -> str:
    """`e` as a learner writes it: products as c·x·g, 1·x as x, `where` as its active branch."""
    return _Plain(names or {})(e)
