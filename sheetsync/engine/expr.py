"""A tiny expression language: the one definition every number, formula and precedent comes from.

Models and optimizers are written as small expressions over named cells (``a*x + b``), the way
a spreadsheet row is written. From one expression sheetsync derives:

- Python source that numba compiles into the training loop (`to_python`), and the same
  loop's C source (`to_c`, for the C backend: see `native`),
- a reference evaluation in plain Python floats, used by tests and traces (`evaluate`),
- the cells it reads, for the precedents map (`symbols`),
- spreadsheet formula text (`to_formula`), for formula mode.

Rendering keeps the operation order exactly as written (every binary node is parenthesised),
because IEEE arithmetic is not associative and the workbook's numbers depend on its order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

Number = float | int


@dataclass(frozen=True, eq=False)
class Expr:
    op: str  # "const" "sym" "+" "-" "*" "/" "neg" "sqrt" "abs" "sign" "max" "pow" "if" "<" ">" "==" "fma" "sum"
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


# -- rendering -------------------------------------------------------------------------------

_BINARY = {"+": "+", "-": "-", "*": "*", "/": "/", "<": "<", ">": ">", "==": "=="}


def _float_literal(v: float) -> str:
    r = repr(float(v))
    return r if r not in ("inf", "-inf", "nan") else f"float('{r}')"


def to_python(e: Expr, name: Callable[[str], str]) -> str:
    """Python (and numba) source for `e`; `name` maps a symbol to a variable name."""
    op, args = e.op, e.args
    if op == "const":
        return _float_literal(args[0])
    if op == "sym":
        return name(args[0])
    if op in _BINARY:
        return f"({to_python(args[0], name)} {_BINARY[op]} {to_python(args[1], name)})"
    if op == "sum":
        return "(" + " + ".join(to_python(a, name) for a in args) + ")"
    if op == "neg":
        return f"(-{to_python(args[0], name)})"
    if op == "pow":
        return f"({to_python(args[0], name)} ** {to_python(args[1], name)})"
    if op == "sqrt":
        return f"math.sqrt({to_python(args[0], name)})"
    if op == "abs":
        return f"abs({to_python(args[0], name)})"
    if op == "sign":
        x = to_python(args[0], name)
        return f"(1.0 if {x} > 0.0 else (-1.0 if {x} < 0.0 else 0.0))"
    if op == "max":
        a, b = to_python(args[0], name), to_python(args[1], name)
        return f"({a} if {a} >= {b} else {b})"
    if op == "if":
        c, t, f = (to_python(a, name) for a in args)
        return f"({t} if {c} else {f})"
    if op == "fma":
        a, b, c = (to_python(x, name) for x in args)
        return f"fma({a}, {b}, {c})"
    raise ValueError(f"unknown op {op}")


def _c_literal(v: float) -> str:
    # hex floats are exact: no decimal-to-binary rounding left to the C compiler
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = float(v).hex()
    return f"({text})" if text.startswith("-") else text


def to_c(e: Expr, name: Callable[[str], str]) -> str:
    """C source for `e`, operation for operation as `to_python` renders it (the C backend must
    agree with numba bit for bit: same operations, same order, same NaN choices)."""
    op, args = e.op, e.args
    if op == "const":
        return _c_literal(args[0])
    if op == "sym":
        return name(args[0])
    if op in _BINARY:
        return f"({to_c(args[0], name)} {_BINARY[op]} {to_c(args[1], name)})"
    if op == "sum":  # C's + is left-associative and never reordered (no -ffast-math)
        return "(" + " + ".join(to_c(a, name) for a in args) + ")"
    if op == "neg":
        return f"(-{to_c(args[0], name)})"
    if op == "pow":  # numba's `**` on floats is llvm.pow, a call to the same libm pow()
        return f"pow({to_c(args[0], name)}, {to_c(args[1], name)})"
    if op == "sqrt":
        return f"sqrt({to_c(args[0], name)})"
    if op == "abs":
        return f"fabs({to_c(args[0], name)})"
    if op == "sign":
        x = to_c(args[0], name)
        return f"(({x} > 0.0) ? 1.0 : (({x} < 0.0) ? -1.0 : 0.0))"
    if op == "max":  # not fmax(): NaN and -0.0 must pick the operand `a if a >= b else b` picks
        a, b = to_c(args[0], name), to_c(args[1], name)
        return f"(({a} >= {b}) ? {a} : {b})"
    if op == "if":
        c, t, f = (to_c(a, name) for a in args)
        return f"({c} ? {t} : {f})"
    if op == "fma":  # C99 fma(): one rounding, like numba's llvm.fma
        a, b, c = (to_c(x, name) for x in args)
        return f"fma({a}, {b}, {c})"
    raise ValueError(f"unknown op {op}")


def evaluate(e: Expr, env: Mapping[str, float]) -> float:
    """Plain-Python evaluation, operation for operation as `to_python` renders it."""
    op, args = e.op, e.args
    if op == "const":
        return args[0]
    if op == "sym":
        return env[args[0]]
    if op == "if":
        return evaluate(args[1], env) if evaluate(args[0], env) else evaluate(args[2], env)
    vals = [evaluate(a, env) for a in args]
    if op == "sum":
        result = vals[0]
        for v in vals[1:]:
            result = result + v
        return result
    if op == "+": return vals[0] + vals[1]
    if op == "-": return vals[0] - vals[1]
    if op == "*": return vals[0] * vals[1]
    if op == "/":
        try:
            return vals[0] / vals[1]
        except ZeroDivisionError:
            return math.copysign(math.inf, vals[0]) if vals[0] else math.nan
    if op == "<": return vals[0] < vals[1]
    if op == ">": return vals[0] > vals[1]
    if op == "==": return vals[0] == vals[1]
    if op == "neg": return -vals[0]
    if op == "pow": return vals[0] ** vals[1]
    if op == "sqrt": return math.sqrt(vals[0]) if vals[0] >= 0 else math.nan
    if op == "abs": return abs(vals[0])
    if op == "sign": return 1.0 if vals[0] > 0 else (-1.0 if vals[0] < 0 else 0.0)
    if op == "max": return vals[0] if vals[0] >= vals[1] else vals[1]
    if op == "fma":
        from .fused import fma_exact

        return fma_exact(*vals)
    raise ValueError(f"unknown op {op}")


def to_formula(e: Expr, ref: Callable[[str], str]) -> str:
    """Spreadsheet formula text (without '='); `ref` maps a symbol to a cell reference."""
    op, args = e.op, e.args
    if op == "const":
        v = args[0]
        return repr(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)
    if op == "sym":
        return ref(args[0])
    if op in ("+", "-", "*", "/"):
        return f"({to_formula(args[0], ref)}{op}{to_formula(args[1], ref)})"
    if op == "sum":
        return "(" + "+".join(to_formula(a, ref) for a in args) + ")"
    if op in ("<", ">", "=="):
        return f"{to_formula(args[0], ref)}{op[0]}{to_formula(args[1], ref)}"
    if op == "neg":
        return f"(-{to_formula(args[0], ref)})"
    if op == "pow":
        return f"POWER({to_formula(args[0], ref)},{to_formula(args[1], ref)})"
    if op == "sqrt":
        return f"SQRT({to_formula(args[0], ref)})"
    if op == "abs":
        return f"ABS({to_formula(args[0], ref)})"
    if op == "sign":
        return f"SIGN({to_formula(args[0], ref)})"
    if op == "max":
        return f"MAX({to_formula(args[0], ref)},{to_formula(args[1], ref)})"
    if op == "if":
        c, t, f = (to_formula(a, ref) for a in args)
        return f"IF({c},{t},{f})"
    if op == "fma":  # no fused multiply-add in a spreadsheet: one more rounding (<= 1 ulp)
        a, b, c = (to_formula(x, ref) for x in args)
        return f"(({a}*{b})+{c})"
    raise ValueError(f"unknown op {op}")
