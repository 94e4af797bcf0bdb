"""What the benches share: timing a call best-of-N, and building a hand-written C loop to
measure against (each bench keeps its own C source and argument types)."""

from __future__ import annotations

import ctypes
import subprocess
import time
from pathlib import Path

C_FLAGS = ("-O2", "-ffp-contract=off", "-shared", "-fPIC")  # no FP contraction: the same IEEE ops


def best_of(repeats: int, run, warm_up: bool = True):
    """(best wall time of `repeats` calls, the last call's result), after one warm-up call that
    compiles or loads what the call needs (unless `warm_up` is False: a slow call timed once)."""
    if warm_up:
        run()
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


def compile_c(source: Path, library: Path, flags: tuple[str, ...] = C_FLAGS) -> ctypes.CDLL:
    subprocess.run(["cc", *flags, "-o", str(library), str(source), "-lm"], check=True)
    return ctypes.CDLL(str(library))


def demo_book(folder: Path, epochs: int) -> Path:
    """The demo workbook with every experiment at `epochs` epochs, written into `folder`."""
    from sheetsync.backends.xlsx import XlsxBackend
    from sheetsync.demo import demo_tabs

    tabs = demo_tabs()
    for row in tabs["experiments"]:
        if row[0] == "epochs":
            row[1:] = [epochs] * (len(row) - 1)
    path = folder / f"demo-{epochs}.xlsx"
    XlsxBackend.create(str(path), tabs)
    return path
