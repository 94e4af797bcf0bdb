"""The loop's statement list (`program`) printed as Python source for numba.

Compiled with ``cache=True`` and numpy's error model (1/0 is inf, not an exception); numba
compiles for the host CPU without fast-math, so every operation is the IEEE one `program` names.
"""

from __future__ import annotations

import math

from ..expr import to_python
from .program import Alloc, Break, Free, Call, Cell, For, If, Let, Load, Not, Num, Op, Pick, Program, Row, Store, Var

HEADER = """import math
import numpy as np
from numba import njit
from sheetsync.engine.numba_support import fma, torch_sum

@njit(cache=True, error_model='numpy', nogil=True)
def kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV):
    E = P.shape[0]
    n = X.shape[0]
    order_rows = ORDER.shape[0]
"""
CALLS = {"abs": "abs", "isfinite": "math.isfinite", "torch_sum": "torch_sum", "index": "int"}


def expr(x) -> str:
    if isinstance(x, Var):
        return x.name
    if isinstance(x, Num):
        v = x.value
        if isinstance(v, float) and math.isnan(v):
            return "np.nan"
        return repr(v)
    if isinstance(x, Op):
        return f"({expr(x.a)} {x.op} {expr(x.b)})"
    if isinstance(x, Not):
        return f"(not {expr(x.a)})"
    if isinstance(x, Pick):
        return f"({expr(x.a)} if {expr(x.cond)} else {expr(x.b)})"
    if isinstance(x, Call):
        return f"{CALLS[x.fn]}({', '.join(expr(a) for a in x.args)})"
    if isinstance(x, Load):
        return f"{x.array}[{', '.join(expr(i) for i in x.index)}]"
    if isinstance(x, Row):
        return f"{x.array}[{expr(x.index)}]"
    if isinstance(x, Cell):
        return to_python(x.expr, x.name)
    raise TypeError(f"not a loop expression: {x!r}")


def statements(body, depth: int, out: list[str]) -> None:
    pad = "    " * depth
    for s in body:
        if isinstance(s, Let):
            out.append(f"{pad}{s.var} = {expr(s.value)}")
        elif isinstance(s, Store):
            out.append(f"{pad}{s.array}[{', '.join(expr(i) for i in s.index)}] = {expr(s.value)}")
        elif isinstance(s, If):
            for k, (cond, then) in enumerate(s.branches):
                out.append(f"{pad}{'if' if k == 0 else 'elif'} {expr(cond)}:")
                statements(then or (), depth + 1, out)
            if s.orelse:
                out.append(f"{pad}else:")
                statements(s.orelse, depth + 1, out)
        elif isinstance(s, For):
            out.append(f"{pad}for {s.var} in range({expr(s.stop)}):")
            statements(s.body, depth + 1, out)
        elif isinstance(s, Break):
            out.append(f"{pad}break")
        elif isinstance(s, Alloc):
            make = "np.zeros" if s.zeroed else "np.empty"
            dtype = ", dtype=np.int64" if s.dtype == "i64" else ""
            out.append(f"{pad}{s.array} = {make}(({', '.join(map(str, s.shape))},){dtype})")
        elif isinstance(s, Free):
            pass  # numba frees the array when nothing refers to it
        else:
            raise TypeError(f"not a loop statement: {s!r}")


def source(program: Program) -> str:
    out: list[str] = []
    statements(program.body, 1, out)
    return HEADER + "\n".join(out) + "\n"
