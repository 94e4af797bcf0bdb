"""Every operation of `engine.expr.OPS` in its four forms, against each other.

The Python form (compiled by numba as the loop is), the C form (compiled with the C backend's
flags) and the evaluator (plain Python floats) must give the same bits on a grid that includes
±0, ±inf, NaN, subnormals, overflow and the poles of the logarithms. The spreadsheet form is
recalculated by LibreOffice and must agree within 1e-12 relative (a spreadsheet has no inf or NaN,
so its grid is finite). torch's sigmoid and logsumexp are checked against torch itself.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from sheetsync.engine.loop import cc as native  # the C compiler helpers
from sheetsync.engine.expr import (OPS, absolute, amax, const, evaluate, evaluate_array, exp, fma, log, log10,
                                   log1p, log_sigmoid, logsumexp, maximum, plain, sigmoid, sign, sqrt, sym,
                                   to_c, to_formula, to_python, total, where)

ROOT = Path(__file__).resolve().parents[2]
a, b, c = sym("a"), sym("b"), sym("c")

# one case (at least) per row of the table, plus the helpers built from them
CASES = {
    "const": a + const(0.1) + const(-0.0) * b,
    "+": a + b, "-": a - b, "*": a * b, "/": a / b,
    "sum": total([a, b, c] * 12),
    "<": a < b, ">": a > b, "==": a.eq(b),
    "neg": -a, "pow": a ** b, "sqrt": sqrt(a), "abs": absolute(a), "sign": sign(a),
    "max": maximum(a, b), "amax": amax([a, b, c]), "if": where(a < b, b, c), "fma": fma(a, b, c),
    "exp": exp(a), "log": log(a), "log10": log10(a), "log1p": log1p(a), "sigmoid": sigmoid(a),
    "logsumexp": logsumexp([a, b, c]), "logsumexp2": logsumexp([a, b]), "log_sigmoid": log_sigmoid(a),
    "const_inf": where(a < const(math.inf), a, const(-math.inf)) + const(math.nan) * const(0.0),
}

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1e-300, -1e-300, 5e-324, 1e-17, -1e-17,
           1e300, -1e300, 709.5, 710.0, -709.5, -745.5, -746.0, 37.0, -37.0, 0.1, -0.9999999999999999,
           math.inf, -math.inf, math.nan]


def grid():
    rng = np.random.default_rng(5)
    spread = rng.normal(size=400) * 10.0 ** rng.uniform(-3, 3, size=400)
    values = np.array(SPECIAL + list(spread))
    triples = list(itertools.product(SPECIAL, repeat=3))
    triples += [tuple(t) for t in rng.choice(values, size=(3000, 3))]
    return [np.array(col) for col in zip(*triples)]


A, B, C = grid()
NAMES = list(CASES)


def test_every_row_of_the_table_has_a_case():
    assert set(OPS) <= set(CASES), "a new op needs a case here"


def _bits(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), np.int64(0x7FF8000000000000), x.view(np.int64))


def _numba_outputs() -> np.ndarray:
    lines = ["import math", "import numpy as np", "from numba import njit",
             "from sheetsync.engine.numba_support import fma",
             "@njit(error_model='numpy')", "def run(A, B, C, OUT):",
             "    for i in range(A.shape[0]):", "        a = A[i]", "        b = B[i]", "        c = C[i]"]
    lines += [f"        OUT[{k}, i] = {to_python(CASES[n], str)}" for k, n in enumerate(NAMES)]
    namespace: dict = {}
    exec(compile("\n".join(lines), "<ops>", "exec"), namespace)
    out = np.zeros((len(NAMES), len(A)))
    namespace["run"](A, B, C, out)
    return out


def _c_outputs(tmp_path) -> np.ndarray:
    argv = native.compiler()
    body = "\n".join(f"        OUT[{k} * n + i] = {to_c(CASES[name], str)};" for k, name in enumerate(NAMES))
    source = (f"#include <math.h>\n#include <stdint.h>\n"
              f"void run(const double *A, const double *B, const double *C, double *OUT, int64_t n) {{\n"
              f"    for (int64_t i = 0; i < n; i++) {{\n        double a = A[i], b = B[i], c = C[i];\n"
              f"{body}\n    }}\n}}\n")
    (tmp_path / "ops.c").write_text(source)
    so = tmp_path / "ops.so"
    subprocess.run([*argv, *native.FLAGS, "-o", str(so), str(tmp_path / "ops.c"), *native.LIBS], check=True)
    lib = ctypes.CDLL(str(so))
    out = np.zeros((len(NAMES), len(A)))
    ptr = ctypes.POINTER(ctypes.c_double)
    lib.run(A.ctypes.data_as(ptr), B.ctypes.data_as(ptr), C.ctypes.data_as(ptr), out.ctypes.data_as(ptr),
            ctypes.c_int64(len(A)))
    return out


def _evaluated() -> np.ndarray:
    out = np.zeros((len(NAMES), len(A)))
    for k, name in enumerate(NAMES):
        for i in range(len(A)):
            out[k, i] = evaluate(CASES[name], {"a": float(A[i]), "b": float(B[i]), "c": float(C[i])})
    return out


@pytest.mark.skipif(native.compiler() is None, reason="no C compiler")
def test_python_c_and_evaluator_agree_bit_for_bit(tmp_path):
    numba_out, c_out, ev = _numba_outputs(), _c_outputs(tmp_path), _evaluated()
    for k, name in enumerate(NAMES):
        for label, other in (("C", c_out[k]), ("evaluator", ev[k])):
            bad = np.nonzero(_bits(numba_out[k]) != _bits(other))[0]
            assert not len(bad), (f"{name}: numba and {label} differ at a={A[bad[0]]!r} b={B[bad[0]]!r} "
                                  f"c={C[bad[0]]!r}: {numba_out[k][bad[0]]!r} vs {other[bad[0]]!r}")


def test_numpy_form_agrees_with_the_evaluator():
    """`evaluate_array` (the diagnostics' landscapes) computes what the loop computes: bit for bit
    for arithmetic; numpy's own (SIMD) pow, exp and logarithms are within a few ulp of libm's;
    fma is left out (numpy has no fused multiply-add)."""
    ev = _evaluated()
    libm = {"pow", "exp", "log", "log10", "log1p", "sigmoid", "logsumexp", "logsumexp2", "log_sigmoid"}
    with np.errstate(all="ignore"):
        for k, name in enumerate(NAMES):
            if name == "fma":
                continue
            got = np.broadcast_to(evaluate_array(CASES[name], {"a": A, "b": B, "c": C}), A.shape)
            if name in libm:
                same = (np.isnan(got) == np.isnan(ev[k])) & ((got == ev[k]) | np.isnan(got)
                                                             | (np.abs(got - ev[k]) <= 2e-15 * np.abs(ev[k])))
                bad = np.nonzero(~same)[0]
            else:
                bad = np.nonzero(_bits(got) != _bits(ev[k]))[0]
            assert not len(bad), f"{name}: numpy {got[bad[0]]!r} vs {ev[k][bad[0]]!r} at a={A[bad[0]]!r}"


def test_new_ops_are_the_functions_they_name():
    env = {"a": 0.5, "b": -2.0, "c": 3.0}
    assert evaluate(exp(a), env) == math.exp(0.5)
    assert evaluate(log(a), env) == math.log(0.5)
    assert evaluate(log10(sym("c")), env) == math.log10(3.0)
    assert evaluate(log1p(a), env) == math.log1p(0.5)
    assert evaluate(log(const(0.0)), env) == -math.inf and math.isnan(evaluate(log(b), env))
    assert evaluate(sigmoid(const(-800.0)), env) == 0.0 and evaluate(sigmoid(const(800.0)), env) == 1.0
    assert evaluate(amax([a, b, c]), env) == 3.0
    assert evaluate(logsumexp([a, b, c]), env) == pytest.approx(math.log(math.exp(0.5) + math.exp(-2) + math.exp(3)),
                                                                rel=1e-15)
    assert evaluate(logsumexp([const(-math.inf), const(-math.inf)]), env) == -math.inf
    assert evaluate(logsumexp([const(math.inf), a]), env) == math.inf
    assert evaluate(logsumexp([const(1000.0), const(1000.0)]), env) == 1000.0 + math.log(2.0)


def test_a_formula_cannot_hold_infinity():
    with pytest.raises(ValueError, match="cannot hold the number inf"):
        to_formula(a + const(math.inf), str)


def test_formula_and_plain_text():
    ref = {"a": "A2", "b": "B2", "c": "C2"}.__getitem__
    assert to_formula(log(a), ref) == "LN(A2)"
    assert to_formula(log10(a), ref) == "LOG(A2)"
    assert to_formula(log1p(a), ref) == "LN((1+A2))"
    assert to_formula(exp(a - b), ref) == "EXP((A2-B2))"
    assert to_formula(amax([a, b, c]), ref) == "MAX(A2,B2,C2)"
    assert to_formula(sigmoid(a), ref) == "IF(A2>=0,(1/(1+EXP((-A2)))),(EXP(A2)/(1+EXP(A2))))"
    assert plain(sigmoid(a) * 2.0) == "2·sigmoid(a)"
    assert plain(log(a) + exp(b)) == "ln(a) + exp(b)"


def test_sigmoid_is_torchs_on_float64():
    torch = pytest.importorskip("torch")
    xs = np.concatenate([np.array(SPECIAL[:-1]), np.random.default_rng(3).normal(size=3000) * 40])
    mine = np.array([evaluate(sigmoid(a), {"a": v}) for v in xs])
    # one element at a time: torch's scalar loop, which calls the same libm exp
    theirs = np.array([torch.sigmoid(torch.tensor([v], dtype=torch.float64)).item() for v in xs])
    assert np.array_equal(_bits(mine), _bits(theirs))
    # whole tensors: torch's vectorised exp (SLEEF, within 1 ulp)
    vec = torch.sigmoid(torch.tensor(xs)).numpy()
    assert np.allclose(mine, vec, rtol=1e-15, atol=0)


def test_logsumexp_is_torchs_on_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for k in (2, 3, 5, 10):
        rows = rng.normal(size=(500, k)) * rng.choice([0.1, 1, 30, 800], size=(500, 1))
        rows[0, :] = -math.inf
        rows[1, 0] = math.inf
        terms = [sym(f"t{i}") for i in range(k)]
        e = logsumexp(terms)
        mine = np.array([evaluate(e, {f"t{i}": float(v) for i, v in enumerate(r)}) for r in rows])
        theirs = torch.logsumexp(torch.tensor(rows), dim=1).numpy()
        assert np.array_equal(np.isinf(mine), np.isinf(theirs)) and (mine[0], mine[1]) == (-math.inf, math.inf)
        fin = np.isfinite(theirs)
        assert np.all(np.abs(mine[fin] - theirs[fin]) <= 1e-14 * np.maximum(np.abs(theirs[fin]), 1.0))


def test_log_sigmoid_is_torchs_to_1e_14():
    torch = pytest.importorskip("torch")
    xs = np.random.default_rng(6).normal(size=4000) * 10.0 ** np.random.default_rng(7).uniform(-2, 2.5, 4000)
    mine = np.array([evaluate(log_sigmoid(a), {"a": v}) for v in xs])
    theirs = torch.nn.functional.logsigmoid(torch.tensor(xs)).numpy()
    assert np.all(np.abs(mine - theirs) <= 1e-14 * np.abs(theirs))


# -- the spreadsheet form, recalculated by LibreOffice ------------------------------------------

FORMULA_INPUTS = [0.5, -0.5, 2.0, -3.0, 37.0, -37.0, 0.1, 1.25, -700.0, 700.0, 3.75, 1e-5, 123.456, -0.001]


def test_libreoffice_recalculates_every_formula_form(tmp_path):
    rng = np.random.default_rng(8)
    rows = [tuple(rng.choice(FORMULA_INPUTS, size=3)) for _ in range(60)]
    rows += [(v, w, 1.5) for v in FORMULA_INPUTS for w in (0.5, 2.0)]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "ops"
    ws.append(["a", "b", "c"] + NAMES)
    for i, (x, y, z) in enumerate(rows):
        r = i + 2
        ref = {"a": f"A{r}", "b": f"B{r}", "c": f"C{r}"}.__getitem__
        ws.append([x, y, z] + ["=" + to_formula(CASES[n], ref) if n != "const_inf" else None for n in NAMES])
    path = tmp_path / "ops.xlsx"
    wb.save(path)
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), "ops"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sheet = json.loads(proc.stdout)["ops"]
    checked = 0
    for i, (x, y, z) in enumerate(rows):
        for k, name in enumerate(NAMES):
            with np.errstate(all="ignore"):
                expected = float(evaluate(CASES[name], {"a": x, "b": y, "c": z}))
            if not math.isfinite(expected) or name == "const_inf" or abs(expected) < 1e-290:
                continue  # a spreadsheet shows an error where C has inf or NaN, or underflows
            assert f"{i + 1},{k + 3}" not in sheet["errors"], f"{name} at {(x, y, z)}: LibreOffice error"
            got = float(sheet["values"][i + 1][k + 3])
            # LN(1+x) rounds 1+x first: its error is ~1e-16 absolute, not relative (see expr.log1p)
            rounding = 2.3e-16 if name in ("log1p", "log_sigmoid") else 0.0
            assert abs(got - expected) <= 1e-12 * abs(expected) + rounding, \
                f"{name} at {(x, y, z)}: {got!r} vs {expected!r}"
            checked += 1
    assert checked > len(rows) * (len(NAMES) - 6)
