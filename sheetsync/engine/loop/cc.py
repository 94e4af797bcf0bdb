"""The C backend's compiler: finding it, building a loop into a cached shared library, and
calling it through ctypes.

Why C. `sheetsync run book.xlsx` is a fresh process, and numba's fixed costs (~0.15 s to
import, ~0.3 s to initialise its CPU target, 50-200 ms to load each cached kernel) are most of
a small run, while the loop itself takes milliseconds. A shared library compiled once by the
system C compiler and cached on disk loads with ctypes in well under a millisecond, and the
loop runs about as fast as numba's (both are scalar code, optimised without fast-math). This
module must not import numba, directly or through `reduction`/`fused`.

Cache: one shared library per loop in `cache.cache_dir()`, named by the hash of the C source,
the flags and the compiler's identity; written under a temporary name and moved into place
with `os.replace`, so processes compiling the same loop at once never load half a file.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import threading
from pathlib import Path

import numpy as np

from . import cache
from .spec import Spec

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


def compiler() -> list[str] | None:
    """The C compiler command (env CC, else cc) if it is installed, else None."""
    command = os.environ.get("CC") or "cc"
    if not any(ch.isspace() or ch in "\"'\\" for ch in command):
        argv = [command]  # one word, as shlex would split it (not imported for that: every run asks)
    else:
        import shlex

        argv = shlex.split(command)
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
    return cache.key(source, " ".join(flags_for(source) + LIBS), identity(argv))


def build(source: str, so_path: Path, argv: list[str]) -> None:
    import subprocess  # only a compile needs it, not a run whose loops are cached

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
        cache.digest_path(so_path).write_text(cache.digest(so_tmp))  # what `load` accepts under this name
        os.replace(so_tmp, so_path)  # atomic: a library is either absent or whole
        os.replace(c_tmp, so_path.with_suffix(".c"))  # kept beside it, for people reading it
    finally:
        for leftover in (c_tmp, so_tmp):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass


PROBE_C = "#include <math.h>\n#include <stdint.h>\nint probe(void) { return (int)fma(2.0, 3.0, 1.0); }\n"


def compiler_works(argv: list[str]) -> bool:
    """Whether `argv` builds a trivial library (after a failure: the compiler's fault or the loop's?)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            build(PROBE_C, Path(tmp) / "probe.so", argv)
            ctypes.CDLL(str(Path(tmp) / "probe.so"))
            return True
        except (CompileError, OSError):
            return False


def load(spec: Spec, source: str, key: str, argv: list[str]):
    """The compiled kernel for `spec`, compiling it first if no cached library exists.
    Called under the loader's lock (`backend`). Raises CompileError."""
    so_path = cache.cache_dir() / f"sheetsync_c_{key}.so"
    if not cache.written_by_us(so_path):
        build(source, so_path, argv)  # absent, or not the library sheetsync wrote: never load it
    try:
        lib = ctypes.CDLL(str(so_path))  # CDLL (not PyDLL): calls release the GIL, like nogil=True
    except OSError as e:  # unreadable or foreign file under our name: build it afresh once
        try:
            build(source, so_path, argv)
            lib = ctypes.CDLL(str(so_path))
        except OSError:
            raise CompileError(f"could not load {so_path}: {e}") from None
    return _kernel(spec, lib)


def load_built(spec: Spec, key: str):
    """The kernel for `spec` from the library cached under `key` if sheetsync built it there
    and it loads, else None (the caller generates the source and calls `load`). Called under
    the loader's lock."""
    so_path = cache.cache_dir() / f"sheetsync_c_{key}.so"
    if not cache.written_by_us(so_path):
        return None
    try:
        lib = ctypes.CDLL(str(so_path))
    except OSError:
        return None
    return _kernel(spec, lib)


def _kernel(spec: Spec, lib) -> NativeKernel:
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
        self.n_epo = len(spec.accumulators)
        self.spec = spec if spec.tables else None  # table widths are run-time sizes (in H)

    def __call__(self, X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV):
        # The C code indexes flat, C-ordered arrays of known dtypes: the shapes are checked here
        # (a wrong one would write out of bounds) and odd layouts are copied in and out.
        X = np.ascontiguousarray(X, dtype=np.float64)
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        ORDER = np.ascontiguousarray(ORDER, dtype=np.int64)
        H = np.ascontiguousarray(H, dtype=np.float64)
        E, n, n_epochs = P.shape[0], X.shape[0], int(n_epochs)
        r_lines = R.shape[1] if rec else 0
        n_params, n_state = self.n_params, self.n_state
        if self.spec is not None:  # every row of H must describe P's width, or C would overrun it
            widths = {self.spec.table_entries(dict(zip(self.spec.hyper, row))) for row in H.tolist()}
            n_params = widths.pop() if len(widths) == 1 else -1
            n_state = len(self.spec.update.state) * n_params
        expect = {"X": (X.shape, (n, self.n_inputs)), "Y": (Y.shape, (n,)), "ORDER": (ORDER.shape[1:], (n,)),
                  "P": (P.shape, (E, n_params)), "S": (S.shape, (E, n_state)),
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
