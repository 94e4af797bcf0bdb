"""The loop's statement list and its two printers, below the training loop: an indexed load and
store (a row reads and updates only the table row its id column names, as embeddings will),
printed as numba's Python and as C, both run, both touch only the rows named."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from sheetsync.engine.loop import c_printer, cc, numba_printer
from sheetsync.engine.loop.program import For, Let, Load, Num, Op, Program, Store, Var, variables

# for i in range(n): idx = IDS[i]; v = TABLE[idx, 1]; TABLE[idx, 1] = v + X[i, 0]
ARRAYS = {"IDS": (("n",), "i64"), "X": (("n", 2), "f64"), "TABLE": (("n_items", 3), "f64")}
BODY = (For("i", Var("n"), (
    Let("idx", Load("IDS", (Var("i"),)), "i64"),
    Let("v", Load("TABLE", (Var("idx"), Num(1)))),
    Store("TABLE", (Var("idx"), Num(1)), Op("+", Var("v"), Load("X", (Var("i"), Num(0))))),
)),)
PROGRAM = Program(("indexed",), ARRAYS, BODY)


def test_indexed_load_and_store_print_in_both_forms():
    py: list[str] = []
    numba_printer.statements(PROGRAM.body, 0, py)
    c: list[str] = []
    c_printer.Printer(PROGRAM).statements(PROGRAM.body, 0, c)
    assert py == ["for i in range(n):", "    idx = IDS[i]", "    v = TABLE[idx, 1]",
                  "    TABLE[idx, 1] = (v + X[i, 0])"]
    assert c == ["for (int64_t i = 0; i < n; i++) {", "    idx = IDS[i];", "    v = TABLE[(idx * 3 + 1)];",
                 "    TABLE[(idx * 3 + 1)] = (v + X[(i * 2 + 0)]);", "}"]


@pytest.mark.skipif(cc.compiler() is None, reason="no C compiler")
def test_indexed_updates_touch_only_the_rows_named(tmp_path):
    ids = np.array([2, 0, 2, 4], dtype=np.int64)
    x = np.array([[1.5, 9.0], [-2.0, 9.0], [0.25, 9.0], [3.0, 9.0]])
    table = np.arange(18, dtype=np.float64).reshape(6, 3)

    py: list[str] = []
    numba_printer.statements(PROGRAM.body, 1, py)
    scope: dict = {}
    exec("def run(n, IDS, X, TABLE):\n" + "\n".join(py) + "\n", scope)  # the numba form, as plain Python
    by_python = table.copy()
    scope["run"](len(ids), ids, x, by_python)

    c: list[str] = []
    c_printer.Printer(PROGRAM).statements(PROGRAM.body, 1, c)
    decl = [f"    {c_printer.TYPES[t]} {v} = 0;" for v, t in variables(PROGRAM.body).items()]
    source = "\n".join(["#include <stdint.h>", "void run(int64_t n, const int64_t *IDS, const double *X, double *TABLE) {",
                        *decl, *c, "}"]) + "\n"
    cc.build(source, tmp_path / "indexed.so", cc.compiler())
    fn = ctypes.CDLL(str(tmp_path / "indexed.so")).run
    fn.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 3
    by_c = table.copy()
    fn(len(ids), ids.ctypes.data, x.ctypes.data, by_c.ctypes.data)

    expected = table.copy()
    expected[2, 1] += 1.5 + 0.25
    expected[0, 1] += -2.0
    expected[4, 1] += 3.0
    assert by_python.tobytes() == expected.tobytes() == by_c.tobytes()
    untouched = [1, 3, 5]
    assert (by_c[untouched] == table[untouched]).all()
