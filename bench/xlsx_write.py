"""Benchmark: `XlsxBackend.apply` of a big numeric steps table, side by side in one run:

- sheetsync now (this working tree), and the same without its C row renderer (the %-format
  path a machine without a C compiler takes),
- sheetsync before the fast write path (the backend as of git commit BASELINE, loaded from git
  under another module name: floats written with repr through one str.format per row, rows
  merged one by one, compression in the same thread),
- openpyxl's write_only mode writing the same cells.

Not a test; run `python bench/xlsx_write.py [ROWS] [COLS]` (default 125,000 x 16 = 2,000,000
cells, the steps budget of `sheetsync run`: 3 integer columns, the rest floats, as a steps tab).
All write floats with full precision into a new tab; apply also copies the user's workbook
part by part and edits the package, which is included in its time. Wall and CPU time are both
printed: on a busy machine the writer thread's overlap shows in wall time only.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from openpyxl import Workbook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sheetsync.backends.base import Column, Plan, Table, TabPlan  # noqa: E402
from sheetsync.backends.xlsx import XlsxBackend  # noqa: E402

BASELINE = "313b677"  # the last commit before the fast read and write paths
INT_COLS = 3


def baseline_backend():
    """The backend module as of BASELINE, importable beside the current one: BASELINE's whole
    package, extracted from git under the name sheetsync_baseline (its imports are relative)."""
    folder = Path(tempfile.mkdtemp(prefix="sheetsync-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE, "sheetsync"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "sheetsync").rename(folder / "sheetsync_baseline")
    sys.path.insert(0, str(folder))
    return importlib.import_module("sheetsync_baseline.backends.xlsx")


def timed(label: str, action, repeat: int = 3) -> tuple[float, float]:
    """Best wall and CPU time of `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    print(f"{label:<40} {min(walls):8.3f} s wall {min(cpus):8.3f} s cpu")
    return min(walls), min(cpus)


def steps_plan(values: np.ndarray) -> Plan:
    rows, cols = values.shape
    columns = [Column(name, np.arange(rows, dtype=np.int64) // div, number_format="0")
               for name, div in (("epoch", rows // 10 or 1), ("step", 1), ("row", 1))][:INT_COLS]
    columns += [Column(f"c{j}", values[:, j]) for j in range(cols - len(columns))]
    return Plan([TabPlan("basic steps", tables=[Table(columns, row=2)], frozen_rows=3)])


def apply_with(backend_class, folder: str, name: str, plan: Plan):
    path = os.path.join(folder, name)
    backend_class.create(path, {"data": [["x", "y"], [1, 2]]})
    return lambda: backend_class(path).apply(plan)


def openpyxl_write_only(folder: str, values: np.ndarray):
    path = os.path.join(folder, "openpyxl.xlsx")

    def write() -> None:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("basic steps")
        ws.append([f"c{j}" for j in range(values.shape[1])])
        for row in values.tolist():
            ws.append(row)
        wb.save(path)

    return write


def without_rowwrite(action):
    """`action` with the C row renderer unavailable, as on a machine without a C compiler."""
    from sheetsync.backends.xlsx import rowwrite

    def run() -> None:
        real = rowwrite._load
        rowwrite._load = lambda: None
        try:
            action()
        finally:
            rowwrite._load = real

    return run


def thread_split(plan: Plan, folder: str) -> tuple[float, float]:
    """CPU seconds of the rendering thread and of the deflating threads in one apply: on free
    cores the apply takes about the larger of the rendering and half the deflating (two
    threads) plus the package work; on a busy machine nearer their sum."""
    from sheetsync.backends.xlsx import zipstream

    spent = {"render": 0.0, "deflate": 0.0}
    lock = threading.Lock()
    real_streamed, real_deflate = zipstream.write_streamed, zipstream._deflate_block

    def timed_deflate(block: bytes, previous: bytes) -> bytes:
        start = time.thread_time()
        out = real_deflate(block, previous)
        with lock:
            spent["deflate"] += time.thread_time() - start
        return out

    def timed_streamed(w, chunks) -> None:
        start = time.thread_time()
        real_streamed(w, chunks)
        spent["render"] += time.thread_time() - start

    zipstream.write_streamed, zipstream._deflate_block = timed_streamed, timed_deflate
    try:
        apply_with(XlsxBackend, folder, "split.xlsx", plan)()
    finally:
        zipstream.write_streamed, zipstream._deflate_block = real_streamed, real_deflate
    return spent["render"], spent["deflate"]


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 125_000
    cols = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    values = np.random.default_rng(0).normal(size=(rows, cols))
    plan = steps_plan(values)
    before = baseline_backend()
    print(f"{rows:,} rows x {cols} columns = {rows * cols:,} numeric cells")
    with tempfile.TemporaryDirectory() as folder:
        now = timed("sheetsync XlsxBackend.apply (now)", apply_with(XlsxBackend, folder, "now.xlsx", plan))
        no_c = timed("  the same without the C row renderer", without_rowwrite(apply_with(XlsxBackend, folder,
                                                                                        "no-c.xlsx", plan)))
        old = timed(f"sheetsync apply before ({BASELINE})",
                    apply_with(before.XlsxBackend, folder, "before.xlsx", plan))
        theirs = timed("openpyxl write_only", openpyxl_write_only(folder, values), repeat=1)
        render, deflate = thread_split(plan, folder)
        sizes = {name: os.path.getsize(os.path.join(folder, name)) / 1e6
                 for name in ("now.xlsx", "before.xlsx", "openpyxl.xlsx")}
    print("file size: " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in sizes.items()))
    print(f"now, CPU: rendering thread {render:.3f} s, deflating threads {deflate:.3f} s in all")
    print(f"speed-up now vs before: {old[0] / now[0]:.1f}x wall, {old[1] / now[1]:.1f}x cpu")
    print(f"speed-up of the C row renderer: {no_c[0] / now[0]:.2f}x wall, {no_c[1] / now[1]:.2f}x cpu")
    print(f"speed-up now vs openpyxl write_only: {theirs[0] / now[0]:.1f}x wall, {theirs[1] / now[1]:.1f}x cpu")


if __name__ == "__main__":
    main()
