"""Benchmark: what the run log costs one run once it holds MAX_LOG_ROWS (5,000) rows, side by side
with a log of one row, in one run (issue 17: a run's cost should not grow with the log; target:
at most 5 ms more at the cap).

Not a test; run `python bench/run_log.py`. Times are CPU, best of N (the machine is shared):
the run's read of the log (`runs.first_read` + `log_as_read`: its header row only), the layout
(`render_runs`: the run's row, to be appended), and the write (`XlsxBackend.apply` of that plan
alone: the log's part re-deflated at its two ends, its rows copied compressed), then a whole
`sheetsync run` (reset) of the demo with each log, the two books taken in turns (best of 27)
so the machine's load falls on both alike. Then what recompressing the log's part whole would
cost against what the append does to it. Last, the amortised trim: the run that finds
the log at MAX_LOG_ROWS + TRIM_ROWS reads it whole and writes the newest MAX_LOG_ROWS (once per
TRIM_ROWS runs), and the old way (every run read and wrote the log whole) for comparison.
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
from sheetsync.layout.runs import (MAX_LOG_ROWS, RUNS_HEADER, RUNS_TAB, TRIM_ROWS, RunEntry,  # noqa: E402
                                   first_read, log_as_read, render_runs)
from sheetsync.runner import run  # noqa: E402

REPEAT = 9


def best(fn, repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times) * 1e3


def logged_book(folder: Path, rows: int, entry: RunEntry, name: str = "log") -> Path:
    """The demo workbook with a run log of `rows` rows (written whole, as a run would)."""
    path = folder / f"{name}{rows}.xlsx"
    write_demo(path)
    XlsxBackend(path).apply(Plan([render_runs([RUNS_HEADER] + [entry.row()] * (rows - 1), entry)]))
    return path


def one_log(folder: Path, rows: int, entry: RunEntry) -> dict[str, float]:
    path = logged_book(folder, rows, entry)
    backend = XlsxBackend(path)

    def read():
        return log_as_read(backend, first_read(backend, [RUNS_TAB]))

    log = read()
    copy = folder / "copy.xlsx"

    def write():  # on a fresh copy each time: the log stays `rows` long
        shutil.copy(path, copy)
        start = time.process_time()
        XlsxBackend(copy).apply(Plan([render_runs(log, entry)]))
        return time.process_time() - start

    run(str(path), action="reset")  # kernels compiled, files cached
    return {"read": best(read), "render": best(lambda: render_runs(log, entry)),
            "write": min(write() for _ in range(REPEAT)) * 1e3, "path": path}


def whole_runs(paths: list[Path], repeat: int = 3 * REPEAT) -> list[float]:
    """A whole `sheetsync run` (reset) of each book, taken in turns so that the machine's load
    falls on both alike; best of `repeat` each."""
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(repeat):
        for path, spent in zip(paths, times):
            start = time.process_time()
            run(str(path), action="reset")
            spent.append(time.process_time() - start)
    return [min(t) * 1e3 for t in times]


def part_costs(folder: Path, entry: RunEntry) -> dict[str, float]:
    """The log's part at the cap: what recompressing it whole would cost against what an append
    does to it (`append.split`: find the segments, inflate the two ends, the middle's CRC by
    arithmetic; then re-deflate the ends)."""
    import zipfile
    import zlib

    from sheetsync.backends.xlsx import append
    from sheetsync.backends.xlsx.zipstream import _deflate_block

    path = logged_book(folder, MAX_LOG_ROWS, entry, "part")
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
        data = append.raw_member(z, info)
        text = z.read(info)

    def appended():
        stream = append.split(data, info.CRC, info.file_size)
        _deflate_block(stream.head, b"")
        _deflate_block(stream.recent + stream.end, b"")

    return {"size": len(text) / 1e6, "inflate": best(lambda: zlib.decompress(data, -15)),
            "deflate": best(lambda: _deflate_block(text, b"")), "crc": best(lambda: zlib.crc32(text)),
            "append": best(appended)}


def whole_write(folder: Path, rows: int, entry: RunEntry) -> float:
    """The old way (and the trim's): read the log whole, render it whole, write it whole."""
    path = logged_book(folder, rows, entry, "whole")
    copy = folder / "copy.xlsx"

    def once():
        shutil.copy(path, copy)
        start = time.process_time()
        backend = XlsxBackend(copy)
        cells = backend.read([RUNS_TAB]).values[RUNS_TAB]
        backend.apply(Plan([render_runs(cells, entry)]))
        return time.process_time() - start

    return min(once() for _ in range(5)) * 1e3


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sheetsync-runlog-"))
    entry = RunEntry("run", ["basic", "momentum", "adam", "relu"], "3f2a9c1d7e00", ["graddesc", "pytorch"],
                     "ok", ["relu: first run"])
    print(f"{'log rows':>9} {'read log':>9} {'render':>8} {'write log':>10} {'whole run':>10}  (ms cpu, best of {REPEAT})")
    got = {rows: one_log(folder, rows, entry) for rows in (1, MAX_LOG_ROWS)}
    for t, spent in zip(got.values(), whole_runs([t["path"] for t in got.values()])):
        t["run"] = spent
    for rows, t in got.items():
        print(f"{rows:>9,} {t['read']:9.2f} {t['render']:8.2f} {t['write']:10.2f} {t['run']:10.1f}")
    small, big = got[1], got[MAX_LOG_ROWS]
    ratios = "  ".join(f"{k} {big[k] / small[k]:.2f}x" for k in ("read", "render", "write", "run"))
    print(f"at the cap / 1 row: {ratios}")
    print(f"the log at its cap costs a run {big['run'] - small['run']:+.1f} ms "
          f"(read+render+write {sum(big[k] - small[k] for k in ('read', 'render', 'write')):+.1f} ms); target 5 ms")
    part = part_costs(folder, entry)
    print(f"the log's part at the cap ({part['size']:.1f} MB of XML): recompressing it whole would cost "
          f"inflate {part['inflate']:.1f} + deflate {part['deflate']:.1f} + crc {part['crc']:.1f} ms; "
          f"the append's work on it {part['append']:.2f} ms")
    trim = whole_write(folder, MAX_LOG_ROWS + TRIM_ROWS, entry)
    old = whole_write(folder, MAX_LOG_ROWS, entry)
    print(f"trim (once per {TRIM_ROWS} runs: read, render, write whole at {MAX_LOG_ROWS + TRIM_ROWS:,} rows): "
          f"{trim:.1f} ms, {trim / TRIM_ROWS:.2f} ms a run amortised; "
          f"the old whole write at {MAX_LOG_ROWS:,} rows: {old:.1f} ms every run")


if __name__ == "__main__":
    main()
