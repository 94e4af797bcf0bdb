"""Benchmark: `XlsxBackend.apply` of a 100,000 x 20 numeric steps table against openpyxl's
write_only mode writing the same cells. Not a test; run `python bench/xlsx_write.py [ROWS]`.

Both write floats with full precision into a new tab; apply also copies the user's workbook
part by part and edits the package, which is included in its time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from openpyxl import Workbook

from sheetsync.backends.base import Column, Plan, Table, TabPlan
from sheetsync.backends.xlsx import XlsxBackend

COLS = 20


def timed(label: str, action) -> float:
    """Wall time, with CPU time beside it (on a busy machine the CPU time is the fairer one)."""
    start, cpu = time.perf_counter(), time.process_time()
    action()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{label:<34} {seconds:8.2f} s wall {cpu:8.2f} s cpu")
    return cpu


def sheetsync_apply(folder: str, values: np.ndarray) -> None:
    path = os.path.join(folder, "sheetsync.xlsx")
    backend = XlsxBackend.create(path, {"data": [["x", "y"], [1, 2]]})
    columns = [Column(f"c{j}", values[:, j], number_format="0.000000") for j in range(COLS)]
    plan = Plan([TabPlan("basic steps", tables=[Table(columns)], frozen_rows=1)])
    return lambda: backend.apply(plan)


def openpyxl_write_only(folder: str, values: np.ndarray):
    path = os.path.join(folder, "openpyxl.xlsx")

    def write() -> None:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("basic steps")
        ws.append([f"c{j}" for j in range(COLS)])
        for row in values.tolist():
            ws.append(row)
        wb.save(path)

    return write


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    values = np.random.default_rng(0).normal(size=(rows, COLS))
    print(f"{rows:,} rows x {COLS} columns = {rows * COLS:,} numeric cells")
    with tempfile.TemporaryDirectory() as folder:
        ours = timed("sheetsync XlsxBackend.apply", sheetsync_apply(folder, values))
        theirs = timed("openpyxl write_only", openpyxl_write_only(folder, values))
        sizes = {name: os.path.getsize(os.path.join(folder, name)) / 1e6
                 for name in ("sheetsync.xlsx", "openpyxl.xlsx")}
    print(f"file size: sheetsync {sizes['sheetsync.xlsx']:.1f} MB, openpyxl {sizes['openpyxl.xlsx']:.1f} MB")
    print(f"ratio (cpu): openpyxl / sheetsync = {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
