"""Benchmark: what the run log costs one run once it holds MAX_LOG_ROWS (5,000) rows, side by side
with a log of one row, in one run (issue 17: a run's cost should not grow with the log).

Not a test; run `python bench/run_log.py`. Times are CPU, best of 7: reading the `runs` tab
back from the workbook, `render_runs` (the layout), and writing the tab (`XlsxBackend.apply`
of it alone), then a whole `sheetsync run` of the demo with each log.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sheetsync.backends.base import Plan  # noqa: E402
from sheetsync.backends.xlsx import XlsxBackend  # noqa: E402
from sheetsync.demo import write_demo  # noqa: E402
from sheetsync.layout.runs import MAX_LOG_ROWS, RUNS_HEADER, RUNS_TAB, RunEntry, render_runs  # noqa: E402
from sheetsync.runner import run  # noqa: E402


def best(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times) * 1e3


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sheetsync-runlog-"))
    entry = RunEntry("run", ["basic", "momentum", "adam", "relu"], "3f2a9c1d7e00", ["graddesc", "pytorch"],
                     "ok", ["relu: first run"])
    books = {}
    for rows in (1, MAX_LOG_ROWS - 1):
        path = folder / f"log{rows}.xlsx"
        write_demo(path)
        XlsxBackend(path).apply(Plan([render_runs([RUNS_HEADER] + [entry.row()] * rows, entry)]))
        books[rows] = path
    print(f"{'previous rows':>14} {'read tab':>9} {'render':>8} {'write tab':>10} {'whole run':>10}  (ms cpu)")
    whole = {}
    for rows, path in books.items():
        read = best(lambda: XlsxBackend(path).read([RUNS_TAB]))
        cells = XlsxBackend(path).read([RUNS_TAB]).values[RUNS_TAB]
        render = best(lambda: render_runs(cells, entry))
        copy = folder / "copy.xlsx"
        shutil.copy(path, copy)
        write = best(lambda: XlsxBackend(copy).apply(Plan([render_runs(cells, entry)])))
        run(str(path), action="reset")  # kernels compiled, files cached
        whole[rows] = best(lambda: run(str(path), action="reset"))
        print(f"{rows:>14,} {read:9.1f} {render:8.1f} {write:10.1f} {whole[rows]:10.1f}")
    small, big = whole[1], whole[MAX_LOG_ROWS - 1]
    print(f"the log at its cap costs a run {big - small:.0f} ms more ({big / small:.2f}x); target 5 ms")


if __name__ == "__main__":
    main()
