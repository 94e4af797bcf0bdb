"""The training loop as C: the same generated loop as `kernel`'s numba one, compiled by cc.

Why C. `sheetsync run book.xlsx` is a fresh process, and numba's fixed costs (~0.15 s to
import, ~0.3 s to initialise its CPU target, 50-200 ms to load each cached kernel) are most of
a small run, while the loop itself takes milliseconds. A shared library compiled once by the
system C compiler and cached on disk loads with ctypes in well under a millisecond, and the
loop runs about as fast as numba's (both are scalar code, optimised without fast-math).

Why numba stays. Not every machine has a C compiler (a slim container, Windows), and a
compile can fail; then the numba loop runs instead, with the same results. `kernel.backend`
picks C when a compiler is found (env ``CC``, else ``cc``), numba otherwise;
``SHEETSYNC_KERNEL=c`` or ``=numba`` forces one. This module must not import numba, directly
or through `reduction`/`fused`: that would bring back the cost it exists to avoid.

The exactness contract. For every `kernel.Spec` the C loop writes the same bits as the numba
loop into P, S, T, R (recorded lines), EPO (epoch sums) and DIV, NaN positions included:

- both are rendered from the same expressions, in the same order (`expr.to_c` mirrors
  `expr.to_python`; `generate_c_source` mirrors `kernel.generate_source` line for line);
- compiled without fast-math and without FP contraction (``-ffp-contract=off``; see `FLAGS`), so every
  ``a*b + c`` is two roundings unless the expression says `fma`, which is C99 ``fma()``
  (correctly rounded, as numba's ``llvm.fma``); ``**`` is ``pow()`` from the same libm that
  numba's ``llvm.pow`` calls, with run-time exponents (``half``, ``t``) that neither compiler
  can rewrite; division by zero gives IEEE inf/nan, as numba's numpy error model does;
- torch's batch-sum order is a line-for-line copy of `numba_support.torch_sum` (`TORCH_SUM_C`);
- the CPU does not matter: on x86-64 the loop is built with and without the FMA instruction
  (`CLONES_C`), and fma() is correctly rounded either way.

tests/engine/test_native_kernel.py runs a matrix of models x optimizers x options x batch
sizes x gradient kinds (diverging runs included) through both backends and compares every
output array bit for bit; the exactness suites against torch, fastai and the workbook run on
whichever backend is the default.

Cache: one shared library per kernel in `kernel.cache_dir()`, named by the hash of the C
source, the flags and the compiler's identity; written under a temporary name and moved into
place with `os.replace`, so processes compiling the same kernel at once never load half a file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .expr import sym, to_c
from .kernel import Spec, _ident, _row_name, cache_dir, row_names, scaled_row_cells, update_names, uses_batch_rows

# No flag here may change a result: no -ffast-math, no FP contraction. -O3 (not -O2) because it
# matches numba's loop speed on more kernels (its vectorizer never reassociates without
# fast-math); -fno-math-errno because numba's loop sets no errno either: it lets sqrt() be the
# sqrtsd instruction and lets the compiler reuse pow(beta1, t) across parameters as LLVM does.
FLAGS = ("-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fPIC", "-shared")
LIBS = ("-lm",)
# gcc's time grows faster than linearly with the size of the one loop function: an mlp with 20
# hidden units (178 kB of C) takes ~3 s at -O3, 100 units ~150 s (numba: ~75 s and > 300 s).
# Large loops get -O1 and one clone instead, ~6x quicker to compile; results are the same.
LARGE_SOURCE = 100_000  # characters of C
COMPILE_TIMEOUT = 300  # seconds; small loops take ~0.1 s, an mlp with 100 hidden units ~25 s


class CompileError(Exception):
    """The C compiler refused or failed on a generated kernel (the message has its output)."""


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


# ---------------------------------------------------------------------------------------------
# Source generation: `kernel.generate_source`, in C


def generate_c_source(spec: Spec) -> str:
    model, upd, params = spec.model, spec.update, spec.params
    hyper = spec.hyper
    rn = row_names(spec)
    step_cols = spec.step_columns()
    col = {c: i for i, c in enumerate(step_cols)}
    ecol = {c: i for i, c in enumerate(spec.epoch_columns())}
    n_params, n_state, n_hyper = len(params), len(upd.state) * len(params), len(hyper)
    batch = spec.batch_size
    doubles: dict[str, None] = {}  # every double variable, declared once at the top
    body: list[str] = []

    def w(line: str, depth: int) -> None:
        body.append("    " * depth + line)

    def let(var: str, value: str, depth: int) -> None:
        doubles.setdefault(var)
        w(f"{var} = {value};", depth)

    # per experiment (depth 1)
    for k, name in enumerate(hyper):
        let(_ident("hy_", name), f"H[e * {n_hyper} + {k}]", 1)
    for j, q in enumerate(params):
        let(_ident("p_", q), f"P[e * {n_params} + {j}]", 1)
    for si, s in enumerate(upd.state):
        for j, q in enumerate(params):
            let(_ident("prev_", s + "__" + q), f"S[e * {n_state} + {si * n_params + j}]", 1)
    let("t", "T[e]", 1)
    let("w", "1.0", 1)
    w("int64_t line = 0;", 1)
    w("int stopped = 0;", 1)
    w("int64_t epochs_done = 0;", 1)
    w("for (int64_t ep = 0; ep < n_epochs; ep++) {", 1)
    w("if (stopped) break;", 2)
    w("int64_t first_line = line;", 2)
    let("loss_sum", "0.0", 2)
    let("err2_sum", "0.0", 2)
    if model.classifier:
        let("correct_sum", "0.0", 2)
    let("batch_loss", "0.0", 2)
    w("int64_t nb = 0;", 2)
    for q in params:
        let(_ident("gsq_", q), "0.0", 2)
        let(_ident("nz_", q), "0.0", 2)
        let(_ident("gap_", q), "0.0", 2)
    w("for (int64_t i = 0; i < n; i++) {", 2)
    w("int64_t r = ORDER[(ep % order_rows) * n + i];", 3)
    for k, x in enumerate(model.inputs):
        let(_ident("in_", x), f"X[r * x_cols + {k}]", 3)
    let(_ident("in_", "y"), "Y[r]", 3)
    if batch > 1:  # int -> double, as numba converts `1.0 / (k if ... else n - i)`
        w(f"if (nb == 0) w = 1.0 / (double)((i + {batch} <= n) ? {batch} : n - i);", 3)
        if uses_batch_rows(spec):
            doubles.setdefault("bk")  # declared (0.0) with the others; set at each batch's first row
            w(f"if (nb == 0) bk = (double)((i + {batch} <= n) ? {batch} : n - i);", 3)
    for name, e in scaled_row_cells(spec, sym("w")):
        let(_ident("r_", name), to_c(e, rn), 3)
    for q in params:
        src = f"de/d{q} est" if spec.gradient == "numeric" else f"de/d{q}"
        let(_ident("u_", q), _ident("r_", src), 3)
    w(f"loss_sum += {_ident('r_', 'loss')};", 3)
    w(f"batch_loss += {_ident('r_', 'loss')};", 3)
    w(f"err2_sum += {_ident('r_', 'err')} * {_ident('r_', 'err')};", 3)
    if model.classifier:
        w(f"correct_sum += {_ident('r_', 'correct')};", 3)
    for q in params:
        u = _ident("u_", q)
        w(f"{_ident('gsq_', q)} += {u} * {u};", 3)
        w(f"if ({u} != 0.0) {_ident('nz_', q)} += 1.0;", 3)
        if spec.gradient in ("both", "numeric"):
            let("gap", f"fabs({_ident('r_', f'de/d{q} est')} - {_ident('r_', f'de/d{q}')})", 3)
            w(f"if (gap > {_ident('gap_', q)}) {_ident('gap_', q)} = gap;", 3)
    if batch > 1:
        for j, q in enumerate(params):
            w(f"GB[{j * batch} + nb] = {_ident('u_', q)};", 3)
    w("nb += 1;", 3)
    w("if (rec) {", 3)
    w(f"double *Rl = R + (e * r_lines + line) * {len(step_cols)};", 4)
    w("Rl[0] = (double)ep;", 4)
    w("Rl[1] = t + 1.0;", 4)
    w("Rl[2] = (double)(r + 1);", 4)
    for c in step_cols[3:]:
        if c.startswith("new ") or c in spec.state_cols:
            w(f"Rl[{col[c]}] = NAN;", 4)
        else:
            w(f"Rl[{col[c]}] = {_row_name(model, c)};", 4)
    w("}", 3)
    end = "1" if batch == 1 else f"nb == {batch} || i == n - 1"
    w(f"if ({end}) {{", 3)
    w("t += 1.0;", 4)
    for j, q in enumerate(params):
        total = _ident("u_", q) if batch == 1 else f"torch_sum(GB + {j * batch}, nb)"
        let(_ident("g_", q), total, 4)
    for q in params:
        name_of = update_names(upd, q)
        for name, e in upd.cells:
            let(name_of(name), to_c(e, name_of), 4)
    w("if (rec) {", 4)
    w(f"double *Rl = R + (e * r_lines + line) * {len(step_cols)};", 5)
    for s in upd.state:
        for q in params:
            w(f"Rl[{col[f'{s}_{q}']}] = {_ident('o_', s + '__' + q)};", 5)
    for q in params:
        w(f"Rl[{col[f'new {q}']}] = {_ident('o_', 'new__' + q)};", 5)
    w("}", 4)
    w("int64_t bad = -2;", 4)
    for j, q in enumerate(params):
        kw = "if" if j == 0 else "else if"
        w(f"{kw} (!(fabs({_ident('o_', 'new__' + q)}) <= hy_divergence_bound)) bad = {j};", 4)
    w("if (bad == -2 && !isfinite(batch_loss)) bad = -1;", 4)
    for s in upd.state:
        for q in params:
            w(f"{_ident('prev_', s + '__' + q)} = {_ident('o_', s + '__' + q)};", 4)
    keep = "!(i == n - 1)" if spec.carry_inputs else "1"
    w(f"if ({keep}) {{", 4)
    for q in params:
        w(f"{_ident('p_', q)} = {_ident('o_', 'new__' + q)};", 5)
    w("}", 4)
    w("nb = 0;", 4)
    w("batch_loss = 0.0;", 4)
    w("if (bad != -2) {", 4)
    w("DIV[e * 5 + 0] = 1;", 5)
    w("DIV[e * 5 + 1] = line;", 5)
    w("DIV[e * 5 + 2] = bad;", 5)
    w("stopped = 1;", 5)
    w("}", 4)
    w("}", 3)
    w("line += 1;", 3)
    w("if (stopped) break;", 3)
    w("}", 2)  # rows
    n_epo = len(ecol)
    w(f"double *Ep = EPO + (e * n_epochs + ep) * {n_epo};", 2)
    w("Ep[0] = loss_sum;", 2)
    w("Ep[1] = err2_sum;", 2)
    if model.classifier:
        w(f"Ep[{ecol['correct_sum']}] = correct_sum;", 2)
    w("Ep[2] = (double)(line - first_line);", 2)
    for q in params:
        w(f"Ep[{ecol[f'param {q}']}] = {_ident('p_', q)};", 2)
        w(f"Ep[{ecol[f'gsq {q}']}] = {_ident('gsq_', q)};", 2)
        w(f"Ep[{ecol[f'nonzero {q}']}] = {_ident('nz_', q)};", 2)
        w(f"Ep[{ecol[f'gap {q}']}] = {_ident('gap_', q)};", 2)
    w("epochs_done += 1;", 2)
    w("}", 1)  # epochs
    for j, q in enumerate(params):
        w(f"P[e * {n_params} + {j}] = {_ident('p_', q)};", 1)
    for si, s in enumerate(upd.state):
        for j, q in enumerate(params):
            w(f"S[e * {n_state} + {si * n_params + j}] = {_ident('prev_', s + '__' + q)};", 1)
    w("T[e] = t;", 1)
    w("DIV[e * 5 + 3] = epochs_done;", 1)
    w("DIV[e * 5 + 4] = line;", 1)

    L = ["/* sheetsync training loop, generated by sheetsync.engine.native (see kernel.generate_source) */",
         "#include <math.h>", "#include <stdint.h>", "#include <stdlib.h>", CLONES_C, TORCH_SUM_C,
         "SHEETSYNC_CLONES",
         "int kernel(const double *X, const double *Y, const int64_t *ORDER, double *P, double *S,",
         "           const double *H, double *T, int64_t n_epochs, int64_t rec, double *R, double *EPO,",
         "           int64_t *DIV, int64_t E, int64_t n, int64_t order_rows, int64_t x_cols, int64_t r_lines) {"]
    if batch > 1:
        L += [f"    double *GB = malloc(sizeof(double) * {n_params * batch});  /* a batch's row gradients */",
              "    if (!GB) return 1;"]
    L.append("    for (int64_t e = 0; e < E; e++) {")
    names = list(doubles)
    for k in range(0, len(names), 8):
        L.append("        double " + ", ".join(f"{v} = 0.0" for v in names[k:k + 8]) + ";")
    L += ["    " + line for line in body]
    L.append("    }")
    if batch > 1:
        L.append("    free(GB);")
    L += ["    return 0;", "}"]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------
# The compiler, the on-disk cache and the ctypes call


def compiler() -> list[str] | None:
    """The C compiler command (env CC, else cc) if it is installed, else None."""
    argv = shlex.split(os.environ.get("CC") or "cc")
    path = shutil.which(argv[0]) if argv else None
    return [path, *argv[1:]] if path else None


def identity(argv: list[str]) -> str:
    """What names this compiler without running it (a subprocess per process costs ~10 ms)."""
    real = os.path.realpath(argv[0])
    st = os.stat(real)
    return f"{real} {st.st_size} {st.st_mtime_ns} {' '.join(argv[1:])} {platform.machine()}"


def flags_for(source: str) -> tuple[str, ...]:
    if len(source) > LARGE_SOURCE:
        return ("-O1", *FLAGS[1:], "-DSHEETSYNC_NO_CLONES")
    return FLAGS


def cache_key(source: str, argv: list[str]) -> str:
    text = "\0".join([source, " ".join(flags_for(source) + LIBS), identity(argv)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _build(source: str, so_path: Path, argv: list[str]) -> None:
    tag = f"{os.getpid()}.{threading.get_ident()}"
    c_tmp = so_path.with_name(f"{so_path.stem}.{tag}.tmp.c")
    so_tmp = so_path.with_name(f"{so_path.stem}.{tag}.tmp.so")
    c_tmp.write_text(source)
    try:
        try:
            proc = subprocess.run([*argv, *flags_for(source), "-o", str(so_tmp), str(c_tmp), *LIBS],
                                  capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            raise CompileError(f"{argv[0]} could not run: {e}") from None
        if proc.returncode != 0 or not so_tmp.exists():
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise CompileError(f"{argv[0]} failed (exit {proc.returncode}): {tail}")
        _digest_path(so_path).write_text(_digest(so_tmp))  # what `load` accepts under this name
        os.replace(so_tmp, so_path)  # atomic: a library is either absent or whole
        os.replace(c_tmp, so_path.with_suffix(".c"))  # kept beside it, for people reading it
    finally:
        for leftover in (c_tmp, so_tmp):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digest_path(so_path: Path) -> Path:
    return so_path.with_suffix(".so.sha256")


def _written_by_us(so_path: Path) -> bool:
    """The library under this name is the one `_build` wrote: its SHA-256 matches the one
    recorded beside it when it was compiled (checked before every load)."""
    try:
        return _digest_path(so_path).read_text().strip() == _digest(so_path)
    except OSError:
        return False


PROBE_C = "#include <math.h>\n#include <stdint.h>\nint probe(void) { return (int)fma(2.0, 3.0, 1.0); }\n"


def compiler_works(argv: list[str]) -> bool:
    """Whether `argv` builds a trivial library (after a failure: the compiler's fault or the loop's?)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _build(PROBE_C, Path(tmp) / "probe.so", argv)
            ctypes.CDLL(str(Path(tmp) / "probe.so"))
            return True
        except (CompileError, OSError):
            return False


def load(spec: Spec, source: str, key: str, argv: list[str]):
    """The compiled kernel for `spec`, compiling it first if no cached library exists.
    Called under `kernel._lock`. Raises CompileError."""
    so_path = cache_dir() / f"sheetsync_c_{key}.so"
    if not _written_by_us(so_path):
        _build(source, so_path, argv)  # absent, or not the library sheetsync wrote: never load it
    try:
        lib = ctypes.CDLL(str(so_path))  # CDLL (not PyDLL): calls release the GIL, like nogil=True
    except OSError as e:  # unreadable or foreign file under our name: build it afresh once
        try:
            _build(source, so_path, argv)
            lib = ctypes.CDLL(str(so_path))
        except OSError:
            raise CompileError(f"could not load {so_path}: {e}") from None
    fn = lib.kernel
    fn.restype = ctypes.c_int
    pointer, integer = ctypes.c_void_p, ctypes.c_int64
    # X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV, E, n, order_rows, x_cols, r_lines
    fn.argtypes = [pointer] * 7 + [integer] * 2 + [pointer] * 3 + [integer] * 5
    return NativeKernel(spec, fn, lib)


class NativeKernel:
    """Called like the numba kernel: kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV)."""

    def __init__(self, spec: Spec, fn, lib):
        self.fn, self.lib = fn, lib  # keep the library loaded while the function lives
        self.n_inputs = len(spec.model.inputs)
        self.n_params = len(spec.params)
        self.n_state = len(spec.update.state) * len(spec.params)
        self.n_hyper = len(spec.hyper)
        self.n_cols = len(spec.step_columns())
        self.n_epo = len(spec.epoch_columns())

    def __call__(self, X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV):
        # The C code indexes flat, C-ordered arrays of known dtypes: the shapes are checked here
        # (a wrong one would write out of bounds) and odd layouts are copied in and out.
        X = np.ascontiguousarray(X, dtype=np.float64)
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        ORDER = np.ascontiguousarray(ORDER, dtype=np.int64)
        H = np.ascontiguousarray(H, dtype=np.float64)
        E, n, n_epochs = P.shape[0], X.shape[0], int(n_epochs)
        r_lines = R.shape[1] if rec else 0
        expect = {"X": (X.shape, (n, self.n_inputs)), "Y": (Y.shape, (n,)), "ORDER": (ORDER.shape[1:], (n,)),
                  "P": (P.shape, (E, self.n_params)), "S": (S.shape, (E, self.n_state)),
                  "H": (H.shape, (E, self.n_hyper)), "T": (T.shape, (E,)),
                  "R": (R.shape, (E, r_lines, self.n_cols) if rec else R.shape),
                  "EPO": (EPO.shape, (E, n_epochs, self.n_epo)), "DIV": (DIV.shape, (E, 5))}
        for name, (got, want) in expect.items():
            if tuple(got) != tuple(want):
                raise ValueError(f"kernel argument {name} has shape {got}, expected {want}")
        if ORDER.shape[0] < 1:
            raise ValueError("kernel argument ORDER has no rows")
        if rec and r_lines < n_epochs * n:
            raise ValueError(f"kernel argument R has {r_lines} lines, expected {n_epochs * n}")
        outs = [(a, np.ascontiguousarray(a, dtype=dt)) for a, dt in
                ((P, np.float64), (S, np.float64), (T, np.float64), (R, np.float64),
                 (EPO, np.float64), (DIV, np.int64))]
        Pc, Sc, Tc, Rc, EPOc, DIVc = (c for _, c in outs)
        status = self.fn(X.ctypes.data, Y.ctypes.data, ORDER.ctypes.data, Pc.ctypes.data, Sc.ctypes.data,
                         H.ctypes.data, Tc.ctypes.data, n_epochs, 1 if rec else 0, Rc.ctypes.data,
                         EPOc.ctypes.data, DIVc.ctypes.data, E, n, ORDER.shape[0], X.shape[1], r_lines)
        if status != 0:
            raise MemoryError("the training loop could not allocate its batch buffer")
        for original, used in outs:
            if used is not original:
                original[...] = used
