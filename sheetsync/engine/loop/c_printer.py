"""The loop's statement list (`program`) printed as C, for the system C compiler.

The exactness contract: for every Spec the C loop writes the same bits as the numba loop into
P, S, T, R (recorded lines), EPO (epoch accumulators) and DIV, NaN positions included:

- both print the same statement list, and `expr.to_c` renders each cell operation for
  operation as `expr.to_python` does;
- compiled without fast-math and without FP contraction (``-ffp-contract=off``; see
  `cc.FLAGS`), so every ``a*b + c`` is two roundings unless the expression says `fma`, which
  is C99 ``fma()`` (correctly rounded, as numba's ``llvm.fma``); ``**`` is ``pow()`` from the
  same libm that numba's ``llvm.pow`` calls, with run-time exponents (``half``, ``t``) that
  neither compiler can rewrite; division by zero gives IEEE inf/nan, as numba's numpy error
  model does; an int64 operand of a double operation is converted first, as numba converts it;
- torch's batch-sum order is a line-for-line copy of `numba_support.torch_sum` (`TORCH_SUM_C`);
- the CPU does not matter: on x86-64 the loop is built with and without the FMA instruction
  (`CLONES_C`), and fma() is correctly rounded either way.

tests/engine/test_native_kernel.py runs a matrix of structures through both backends and
compares every output array bit for bit.
"""

from __future__ import annotations

import math

from ..expr import to_c
from .program import Alloc, Break, Free, Call, Cell, For, If, Let, Load, Not, Num, Op, Pick, Program, Row, Store, Var, variables

CLONES_C = r"""
/* On x86-64 the loop is compiled twice, for CPUs with an FMA instruction and for the rest, and
   the loader picks one (an ifunc). fma() is then one instruction instead of a call into libm;
   both are the correctly rounded fused operation, and -ffp-contract=off keeps every other a*b+c
   two roundings in both clones. numba compiles for the host CPU, so it gets the instruction. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) && !defined(SHEETSYNC_NO_CLONES)
#if __has_attribute(target_clones)
#define SHEETSYNC_CLONES __attribute__((target_clones("fma", "default")))
#endif
#endif
#ifndef SHEETSYNC_CLONES
#define SHEETSYNC_CLONES
#endif
"""

# torch's CPU sum order: `numba_support.torch_sum`, statement for statement.
TORCH_SUM_C = r"""
static int64_t clog2(int64_t n) {
    int64_t k = 0;
    while (((int64_t)1 << k) < n) k++;
    return k;
}

/* row_sum over buf[offset + stride*i] for i < size (one lane of a vectorized sum) */
static double strided_row_sum(const double *buf, int64_t offset, int64_t stride, int64_t size) {
    int64_t size_ilp = size / 4;
    double acc[4][4] = {{0.0}};
    int64_t level_power = clog2(size_ilp) / 4;
    if (level_power < 4) level_power = 4;
    int64_t level_step = (int64_t)1 << level_power;
    int64_t level_mask = level_step - 1;
    int64_t i = 0;
    while (i + level_step <= size_ilp) {
        for (int64_t s = 0; s < level_step; s++) {
            for (int k = 0; k < 4; k++) acc[0][k] += buf[offset + stride * (i * 4 + k)];
            i++;
        }
        for (int j = 1; j < 4; j++) {
            for (int k = 0; k < 4; k++) {
                acc[j][k] += acc[j - 1][k];
                acc[j - 1][k] = 0.0;
            }
            if (i & (level_mask << (j * level_power))) break;
        }
    }
    while (i < size_ilp) {
        for (int k = 0; k < 4; k++) acc[0][k] += buf[offset + stride * (i * 4 + k)];
        i++;
    }
    for (int j = 1; j < 4; j++)
        for (int k = 0; k < 4; k++) acc[0][k] += acc[j][k];
    double p0 = acc[0][0];
    for (int64_t r = size_ilp * 4; r < size; r++) p0 += buf[offset + stride * r];
    return ((p0 + acc[0][1]) + acc[0][2]) + acc[0][3];
}

/* sum(buf[:n]) in torch's CPU order (see reduction.sum_tree) */
static double torch_sum(const double *buf, int64_t n) {
    if (n >= 4) {
        int64_t n_vec = n / 4;
        double total = 0.0;
        for (int64_t i = n_vec * 4; i < n; i++) total += buf[i];
        for (int64_t lane = 0; lane < 4; lane++) total += strided_row_sum(buf, lane, 4, n_vec);
        return total;
    }
    return strided_row_sum(buf, 0, 1, n);
}
"""



SIGNATURE = ("int kernel(const double *X, const double *Y, const int64_t *ORDER, double *P, double *S,\n"
             "           const double *H, double *T, int64_t n_epochs, int64_t rec, double *R, double *EPO,\n"
             "           int64_t *DIV, int64_t E, int64_t n, int64_t order_rows, int64_t x_cols, int64_t r_lines) {")
CALLS = {"abs": "fabs", "isfinite": "isfinite", "torch_sum": "torch_sum", "index": "(int64_t)"}
LOGIC = {"and": "&&", "or": "||"}
TYPES = {"f64": "double", "i64": "int64_t", "bool": "int"}


class Printer:
    def __init__(self, program: Program):
        self.arrays = program.arrays

    def dim(self, d) -> str:
        return str(d)

    def flat(self, array: str, index: tuple) -> str:
        """Row-major offset of array[index...]."""
        dims = self.arrays[array][0]
        text = self.expr(index[0])
        for d, i in zip(dims[1:], index[1:]):
            text = f"({text} * {self.dim(d)} + {self.expr(i)})" if text != "0" else self.expr(i)
        return text

    def expr(self, x) -> str:
        if isinstance(x, Var):
            return x.name
        if isinstance(x, Num):
            v = x.value
            if isinstance(v, bool):
                return "1" if v else "0"
            if isinstance(v, float) and math.isnan(v):
                return "NAN"
            return repr(v)
        if isinstance(x, Op):
            return f"({self.expr(x.a)} {LOGIC.get(x.op, x.op)} {self.expr(x.b)})"
        if isinstance(x, Not):
            return f"(!{self.expr(x.a)})"
        if isinstance(x, Pick):
            return f"({self.expr(x.cond)} ? {self.expr(x.a)} : {self.expr(x.b)})"
        if isinstance(x, Call):
            return f"{CALLS[x.fn]}({', '.join(self.expr(a) for a in x.args)})"
        if isinstance(x, Load):
            return f"{x.array}[{self.flat(x.array, x.index)}]"
        if isinstance(x, Row):
            return f"({x.array} + {self.expr(x.index)} * {self.dim(self.arrays[x.array][0][1])})"
        if isinstance(x, Cell):
            return to_c(x.expr, x.name)
        raise TypeError(f"not a loop expression: {x!r}")

    def statements(self, body, depth: int, out: list[str]) -> None:
        pad = "    " * depth
        for s in body:
            if isinstance(s, Let):
                out.append(f"{pad}{s.var} = {self.expr(s.value)};")
            elif isinstance(s, Store):
                out.append(f"{pad}{s.array}[{self.flat(s.array, s.index)}] = {self.expr(s.value)};")
            elif isinstance(s, If):
                for k, (cond, then) in enumerate(s.branches):
                    out.append(f"{pad}{'if' if k == 0 else '} else if'} ({self.expr(cond)}) {{")
                    self.statements(then, depth + 1, out)
                if s.orelse:
                    out.append(f"{pad}}} else {{")
                    self.statements(s.orelse, depth + 1, out)
                out.append(f"{pad}}}")
            elif isinstance(s, For):
                out.append(f"{pad}for (int64_t {s.var} = 0; {s.var} < {self.expr(s.stop)}; {s.var}++) {{")
                self.statements(s.body, depth + 1, out)
                out.append(f"{pad}}}")
            elif isinstance(s, Break):
                out.append(f"{pad}break;")
            elif isinstance(s, Alloc):
                size = " * ".join(map(str, s.shape))
                ctype = TYPES[s.dtype]
                if s.zeroed:
                    out.append(f"{pad}{ctype} *{s.array} = calloc({size}, sizeof({ctype}));")
                else:
                    out.append(f"{pad}{ctype} *{s.array} = malloc(sizeof({ctype}) * {size});")
                out.append(f"{pad}if (!{s.array}) return 1;")
            elif isinstance(s, Free):
                out.append(f"{pad}free({s.array});")
            else:
                raise TypeError(f"not a loop statement: {s!r}")


def source(program: Program) -> str:
    p = Printer(program)
    lines = ["/* sheetsync training loop, printed by sheetsync.engine.loop.c_printer from loop.program */",
             "#include <math.h>", "#include <stdint.h>", "#include <stdlib.h>", CLONES_C, TORCH_SUM_C,
             "SHEETSYNC_CLONES", SIGNATURE]
    declared = variables(program.body)
    for t in TYPES:  # every variable declared once, at the top
        names = [v for v, vt in declared.items() if vt == t]
        for k in range(0, len(names), 8):
            lines.append(f"    {TYPES[t]} " + ", ".join(f"{v} = 0" for v in names[k:k + 8]) + ";")
    p.statements(program.body, 1, lines)
    allocated = [s.array for s in program.body if isinstance(s, Alloc)]
    lines += [f"    free({a});" for a in allocated] + ["    return 0;", "}"]
    return "\n".join(lines) + "\n"
