"""The numba-only pieces of the numba backend, imported only when that backend runs.

Importing numba costs ~0.15 s and initialising its CPU target ~0.3 s, so nothing on the C
backend's path (`loop.cc`, `loop.backend` until it picks numba) may import this module: only the
generated numba kernels (`loop.numba_printer`) and tests import it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _llvm_fma(typingctx, a, b, c):
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, inline="always")
def fma(a, b, c):
    """a*b + c with a single rounding (the CPU's fused instruction, via LLVM); see `fused`."""
    return _llvm_fma(a, b, c)


# torch's sum order (see `reduction.sum_tree`), as compiled code for the training loop. The C
# backend has a line-for-line copy in `loop.c_printer.TORCH_SUM_C`; the tests hold both to the tree.


@njit(cache=True, error_model="numpy")
def _strided_row_sum(buf, offset, stride, size):
    """row_sum over buf[offset + stride*i] for i < size (one lane of a vectorized sum)."""
    size_ilp = size // 4
    acc = np.zeros((4, 4))
    level_power = max(4, _clog2(size_ilp) // 4)
    level_step = 1 << level_power
    level_mask = level_step - 1
    i = 0
    while i + level_step <= size_ilp:
        for _ in range(level_step):
            for k in range(4):
                acc[0, k] += buf[offset + stride * (i * 4 + k)]
            i += 1
        for j in range(1, 4):
            for k in range(4):
                acc[j, k] += acc[j - 1, k]
                acc[j - 1, k] = 0.0
            if i & (level_mask << (j * level_power)):
                break
    while i < size_ilp:
        for k in range(4):
            acc[0, k] += buf[offset + stride * (i * 4 + k)]
        i += 1
    for j in range(1, 4):
        for k in range(4):
            acc[0, k] += acc[j, k]
    p0 = acc[0, 0]
    for r in range(size_ilp * 4, size):
        p0 += buf[offset + stride * r]
    return ((p0 + acc[0, 1]) + acc[0, 2]) + acc[0, 3]


@njit(cache=True, error_model="numpy")
def _clog2(n):
    k = 0
    while (1 << k) < n:
        k += 1
    return k


@njit(cache=True, error_model="numpy")
def torch_sum(buf, n):
    """sum(buf[:n]) in torch's CPU order (see `reduction.sum_tree`)."""
    if n >= 4:
        n_vec = n // 4
        total = 0.0
        for i in range(n_vec * 4, n):
            total += buf[i]
        for lane in range(4):
            total += _strided_row_sum(buf, lane, 4, n_vec)
        return total
    return _strided_row_sum(buf, 0, 1, n)
