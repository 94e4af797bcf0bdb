"""Small C helpers outside the training loops (the reader's row scanner, the writer's row
renderer): each compiled once by the system C compiler into sheetsync's kernel cache, with the
same place, naming and checks as the loops (`engine.loop.cc`, `engine.loop.cache`).

They are only optimisations: without a C compiler, or if one fails to build, `library` says so
in the log once and returns None (so does `function`), and the caller takes its pure-Python path, which gives the
same result (each helper's tests compare the two).
"""

from __future__ import annotations

import ctypes
import threading

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | None] = {}


def function(name: str, source: str, symbol: str, restype, argtypes: list):
    """The C function `symbol` of the helper `name` (its C `source`), typed for ctypes; None
    when the helper cannot be built here."""
    lib = library(name, source)
    if lib is None:
        return None
    fn = getattr(lib, symbol)
    fn.restype, fn.argtypes = restype, argtypes
    return fn


def library(name: str, source: str) -> ctypes.CDLL | None:
    """The C `source` as a loaded library (built into the kernel cache the first time on this
    machine, loaded once per process); None when it cannot be built here."""
    with _lock:
        if name not in _loaded:
            _loaded[name] = _build_and_load(name, source)
        return _loaded[name]


def _build_and_load(name: str, source: str) -> ctypes.CDLL | None:
    from .engine.loop import cache, cc  # the compiler's machinery: only when a helper is first used

    argv = cc.compiler()
    try:
        if argv is None:
            raise cc.CompileError("no C compiler")
        so_path = cache.cache_dir() / f"sheetsync_{name}_{cc.cache_key(source, argv)}.so"
        if not cache.written_by_us(so_path):
            cc.build(source, so_path, argv)
        return ctypes.CDLL(str(so_path))
    except (cc.CompileError, OSError) as e:
        import logging  # here: a run whose helpers load does without it (~2.5 ms with its imports)

        logging.getLogger(__name__).info("%s: without its C helper (%s); the Python path gives the same result",
                                         name, e)
        return None
