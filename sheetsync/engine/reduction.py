"""How PyTorch adds up a batch's gradients, so a batch step matches torch.optim bit for bit.

For a parameter shared by every row of a batch, autograd sums the rows' contributions with
``at::sum``, whose CPU kernel (``aten/src/ATen/native/cpu/SumKernel.cpp``: ``cascade_sum``)
does not add left to right: it adds whole SIMD vectors lane by lane, four vectors at a time,
in a cascade of levels, then the leftover rows, then the lanes. Float addition is not
associative, so on a long run near a minimum the order shows. This module spells out that
order once, as a tree of additions over row indices, used by formula mode and checked against
``torch.sum`` by the tests; the compiled loops spell the same order as code (`numba_support.torch_sum`, and its C copy
`loop.c_printer.TORCH_SUM_C`), so this module, which formula mode imports, never imports numba.

The sum kernel works on vectors of 4 doubles on every CPU torch supports (its AVX-512 build
still reduces in 256-bit vectors: measured against torch.sum for every length up to 20,000).
Above 32,768 rows torch splits a sum across threads, which this does not model.
"""

from __future__ import annotations

import functools

ILP = 4  # vectors summed side by side (row_sum's ilp_factor)
LEVELS = 4  # cascade levels (multi_row_sum's num_levels)
LANES = 4  # doubles per vector in torch's sum kernel
THREAD_SPLIT = 32_768  # torch's grain size: larger sums are split across threads

Tree = int | tuple  # a row index, or ("+", left, right), or ("0",) for the zero start


ZERO: Tree = ("0",)


def _add(a: Tree, b: Tree) -> Tree:
    if a == ZERO:
        return b  # 0.0 + x == x: the kernel's zero start changes no value
    return ("+", a, b)


def _ceil_log2(n: int) -> int:
    return 0 if n <= 1 else (n - 1).bit_length()


def _multi_row_sum(load, nrows: int, size: int) -> list[Tree]:
    """multi_row_sum: `size` rows of `nrows` columns, summed column-wise through the levels."""
    level_power = max(4, _ceil_log2(size) // LEVELS)
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc = [[ZERO] * nrows for _ in range(LEVELS)]
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            for k in range(nrows):
                acc[0][k] = _add(acc[0][k], load(i, k))
            i += 1
        for j in range(1, LEVELS):
            for k in range(nrows):
                acc[j][k] = _add(acc[j][k], acc[j - 1][k])
                acc[j - 1][k] = ZERO
            if i & (level_mask << (j * level_power)):
                break
    while i < size:
        for k in range(nrows):
            acc[0][k] = _add(acc[0][k], load(i, k))
        i += 1
    for j in range(1, LEVELS):
        for k in range(nrows):
            acc[0][k] = _add(acc[0][k], acc[j][k])
    return acc[0]


def _row_sum(load, size: int) -> Tree:
    size_ilp = size // ILP
    partial = _multi_row_sum(lambda i, k: load(i * ILP + k), ILP, size_ilp)
    for i in range(size_ilp * ILP, size):
        partial[0] = _add(partial[0], load(i))
    for k in range(1, ILP):
        partial[0] = _add(partial[0], partial[k])
    return partial[0]


@functools.lru_cache(maxsize=256)
def sum_tree(n: int, lanes: int = LANES) -> Tree:
    """The order in which torch's CPU sum adds n contiguous doubles, as an addition tree."""
    if n >= lanes:  # vectorized_inner_sum
        n_vec = n // lanes
        per_lane = [_row_sum(lambda v, lane=lane: v * lanes + lane, n_vec) for lane in range(lanes)]
        total: Tree = ZERO
        for i in range(n_vec * lanes, n):
            total = _add(total, i)
        for lane in range(lanes):
            total = _add(total, per_lane[lane])
        return total
    return _row_sum(lambda i: i, n)  # scalar_inner_sum


def evaluate(tree: Tree, values) -> float:
    if isinstance(tree, int):
        return values[tree]
    if tree == ZERO:
        return 0.0
    return evaluate(tree[1], values) + evaluate(tree[2], values)


def render(tree: Tree, leaf) -> str:
    """The tree as nested source text: `leaf(i)` names row i."""
    if isinstance(tree, int):
        return leaf(tree)
    if tree == ZERO:
        return "0.0"
    return f"({render(tree[1], leaf)} + {render(tree[2], leaf)})"
