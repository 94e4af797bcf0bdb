"""Fused multiply-add, as torch's CPU kernels compute it.

torch's optimizer kernels are compiled with FMA enabled, and the compiler fuses their
``self + alpha * other`` (``add_``), ``self + value * t1 * t2`` (``addcmul_``) and ``lerp_``
into one rounding: ``fma(a, b, c) = a*b + c`` rounded once. Measured on 0-d float64 tensors:
every ``add_(alpha)``, ``addcmul_`` and ``lerp_`` result equals the fused value, and about 20% of
them differ from the unfused one in the last bit. Matching torch to the bit needs the same.
"""

from fractions import Fraction

# The compiled versions: C99 fma() in the C backend (`loop.c_printer`), llvm.fma in the numba
# backend (`numba_support.fma`). Both are the correctly rounded fused operation, so they agree.


def fma_exact(a: float, b: float, c: float) -> float:
    """The same in plain Python (exact rational arithmetic, then one rounding): for tests and
    traces, where speed does not matter."""
    try:
        return float(Fraction(a) * Fraction(b) + Fraction(c))
    except (OverflowError, ValueError):  # inf or nan among the inputs
        return a * b + c
