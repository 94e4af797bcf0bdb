"""Which compiled loop runs (C or numba), loading it once, and running it.

Two backends compile the same statement list (`program`) and give the same bits:

- C (`c_printer`, `cc`): compiled by the system C compiler into a cached shared library and
  called through ctypes; a fresh process loads it in well under a millisecond, where numba pays
  ~0.5 s to import and initialise, so C is the default when a compiler exists.
- numba (`numba_printer`): compiled with ``cache=True``; the fallback when there is no C
  compiler or a compile fails. numba is imported only when this backend runs.

``SHEETSYNC_KERNEL=c`` or ``=numba`` forces a backend. A loop is looked up in this process by
its Spec (`Spec.key`) before any source is generated, so a `train` on a structure already run
costs a dictionary lookup here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading

import numpy as np

from ...errors import SheetsyncError
from . import c_printer, cache, cc, numba_printer
from .program import build
from .spec import Spec

_lock = threading.Lock()
_loaded: dict[tuple, object] = {}  # in-process kernels by (backend, Spec.key, environment)
_failed_c: set[str] = set()  # C kernels (or "cc:" + compiler identity) that failed here: numba runs them
_choice: dict[tuple, str] = {}  # backend() by the environment it read
log = logging.getLogger(__name__)


def _forced() -> str:
    return os.environ.get("SHEETSYNC_KERNEL", "").strip().lower()


def backend() -> str:
    """The backend to run: SHEETSYNC_KERNEL if set, else "c" when a C compiler is installed,
    else "numba"."""
    env = (_forced(), os.environ.get("CC"), os.environ.get("PATH"))
    which = _choice.get(env)
    if which is None:
        which = _choice[env] = _choose(env[0])
    return which


def _choose(forced: str) -> str:
    if forced in ("", "auto"):
        return "c" if cc.compiler() else "numba"
    if forced == "numba":
        return "numba"
    if forced == "c":
        if cc.compiler() is None:
            name = os.environ.get("CC") or "cc"
            raise SheetsyncError(f"SHEETSYNC_KERNEL=c, but there is no C compiler: {name!r} was not found "
                                 "(install one, set CC, or unset SHEETSYNC_KERNEL to use numba)")
        return "c"
    raise SheetsyncError(f"SHEETSYNC_KERNEL={forced!r}: expected c, numba or auto")


def load_kernel(spec: Spec, which: str | None = None):
    """The compiled loop for `spec`, called as
    kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV); `which` is a `backend()`."""
    which = which or backend()
    memo = (which, spec.key, _forced(), os.environ.get("CC"))  # a C loop that fell back depends on both
    fn = _loaded.get(memo)
    if fn is None:
        fn = _load_c_kernel(spec) if which == "c" else None
        if fn is None:
            fn = _load_numba_kernel(spec)
        _loaded[memo] = fn
    return fn


def _load_c_kernel(spec: Spec):
    """The C kernel, or None (after a logged warning) when it cannot be compiled."""
    argv = cc.compiler()
    forced = _forced() == "c"
    if argv is None:  # the compiler went away since backend() looked
        if forced:
            raise SheetsyncError("SHEETSYNC_KERNEL=c, but there is no C compiler")
        return None
    source = c_printer.source(build(spec))
    key = cc.cache_key(source, argv)
    broken = "cc:" + cc.identity(argv)
    with _lock:
        if (key in _failed_c or broken in _failed_c) and not forced:
            return None
        try:
            return cc.load(spec, source, key, argv)
        except cc.CompileError as e:
            if forced:
                raise SheetsyncError(f"SHEETSYNC_KERNEL=c, but the training loop did not compile: {e}") from None
            _failed_c.add(key)
            # A compiler that cannot build even a trivial library (headers missing, say) is not
            # tried again in this process; one that fails on one loop is, on the next.
            if not cc.compiler_works(argv):
                _failed_c.add(broken)
                log.warning("the C compiler %s does not work, training loops run with numba: %s", argv[0], e)
            else:
                log.warning("the C training loop did not compile, using numba instead: %s", e)
            return None


def _load_numba_kernel(spec: Spec):
    source = numba_printer.source(build(spec))
    key = cache.key(source)
    with _lock:
        path = cache.cache_dir() / f"sheetsync_kernel_{key}.py"
        if not path.exists() or path.read_text() != source:
            cache.write_atomic(path, source)
        module_spec = importlib.util.spec_from_file_location(f"sheetsync_kernel_{key}", path)
        module = sys.modules.get(module_spec.name)
        if module is None:
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module  # numba's on-disk cache re-imports it by name
            module_spec.loader.exec_module(module)
        return module.kernel


def run_kernel(spec: Spec, X, Y, order, P, S, H, T, n_epochs: int, record: bool, out: np.ndarray | None = None):
    """Run `n_epochs` epochs for every experiment row of P/S/H/T (updated in place).

    Returns (R, EPO, DIV): recorded lines (E, n_epochs*rows, columns) or an empty array,
    epoch accumulators (E, n_epochs, k), and per experiment [diverged, line, param, epochs, lines].
    `out` (one experiment, at least that many lines): where to record them — a buffer reused
    across calls is not page-faulted in again on every call.
    """
    kernel = load_kernel(spec)
    E, n = P.shape[0], X.shape[0]
    shape = (E, n_epochs * n if record else 0, len(spec.step_columns()))
    if out is not None and E == 1 and out.shape[0] == 1 and out.shape[1] >= shape[1] and out.shape[2] == shape[2]:
        R = out[:, :shape[1]]  # contiguous: the first axis has one row
    else:
        R = np.empty(shape)
    EPO = np.zeros((E, n_epochs, len(spec.accumulators)))
    DIV = np.zeros((E, 5), dtype=np.int64)
    kernel(X, Y, order, P, S, H, T, n_epochs, record, R, EPO, DIV)
    return R, EPO, DIV
