"""Which compiled loop runs (C or numba), loading it once, and running it.

Two backends compile the same statement list (`program`) and give the same bits:

- C (`c_printer`, `cc`): compiled by the system C compiler into a cached shared library and
  called through ctypes; a fresh process loads it in well under a millisecond, where numba pays
  ~0.5 s to import and initialise, so C is the default when a compiler exists.
- numba (`numba_printer`): compiled with ``cache=True``; the fallback when there is no C
  compiler or a compile fails. numba is imported only when this backend runs.

``SHEETSYNC_KERNEL=c`` or ``=numba`` forces a backend. A loop is looked up in this process by
its Spec (`Spec.key`) before any source is generated, so a `train` on a structure already run
costs a dictionary lookup here. Across processes, a C loop is found through an index file named
by the Spec, the compiler and the generator's own code (`_index_path`), so a run whose loops are
cached neither imports `program` and the printers nor generates their source (~15 ms of a
fresh run); a miss generates it and looks the library up by the hash of its source, as before.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import numpy as np

from ... import __version__
from ...errors import SheetsyncError
from . import cache, cc
from .spec import Spec

_lock = threading.Lock()
_loaded: dict[tuple, object] = {}  # in-process kernels by (backend, Spec.key, environment)
_failed_c: set[str] = set()  # C kernels (or "cc:" + compiler identity) that failed here: numba runs them
_choice: dict[tuple, str] = {}  # backend() by the environment it read


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
    index = _index_path(spec, argv)
    known = _read_index(index)
    if known is not None:
        with _lock:
            fn = cc.load_built(spec, known)
        if fn is not None:
            return fn
    # A miss: the loop's source decides the library. Imported here, not above: a run whose
    # loops are all in the cache never needs the generator (~10 ms of imports).
    from . import c_printer
    from .program import build

    source = c_printer.source(build(spec))
    key = cc.cache_key(source, argv)
    broken = "cc:" + cc.identity(argv)
    with _lock:
        if (key in _failed_c or broken in _failed_c) and not forced:
            return None
        try:
            fn = cc.load(spec, source, key, argv)
        except cc.CompileError as e:
            if forced:
                raise SheetsyncError(f"SHEETSYNC_KERNEL=c, but the training loop did not compile: {e}") from None
            _failed_c.add(key)
            import logging  # here: a run whose loops compile does without it (~2 ms with its imports)

            log = logging.getLogger(__name__)
            # A compiler that cannot build even a trivial library (headers missing, say) is not
            # tried again in this process; one that fails on one loop is, on the next.
            if not cc.compiler_works(argv):
                _failed_c.add(broken)
                log.warning("the C compiler %s does not work, training loops run with numba: %s", argv[0], e)
            else:
                log.warning("the C training loop did not compile, using numba instead: %s", e)
            return None
        if known != key:
            try:
                cache.write_atomic(index, key)
            except OSError:  # the index only saves time
                pass
        return fn


@functools.cache  # once a process: the code does not change under it
def _generator_stamp() -> str:
    """What names the code that generates a loop from its Spec: the size and modification time
    of every module of the engine (the Spec's model, update and loss, the program, the printers,
    the compiler's flags), the rule Python's own bytecode cache uses for a module's source."""
    engine = Path(__file__).resolve().parent.parent
    parts = [__version__]
    for folder in (engine, engine / "loop"):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                st = entry.stat()
                parts.append(f"{folder.name}/{entry.name} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(parts)


def _index_path(spec: Spec, argv: list[str]) -> Path:
    """The index file that names the library compiled for `spec` by this compiler from this
    generator (its content: the library's cache key, `cc.cache_key` of the source)."""
    return cache.cache_dir() / f"sheetsync_c_spec_{cache.key(repr(spec.key), _generator_stamp(), cc.identity(argv))}.key"


def _read_index(index: Path) -> str | None:
    try:
        key = index.read_text()
    except OSError:
        return None
    return key if len(key) == len(cache.key()) and all(ch in "0123456789abcdef" for ch in key) else None


def _load_numba_kernel(spec: Spec):
    import importlib.util

    from . import numba_printer
    from .program import build

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
