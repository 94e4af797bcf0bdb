"""Benchmark: `XlsxBackend.read` of a big data tab, side by side in one run:

- the text scan (`SheetScan`, what `read` uses now),
- the ElementTree reading it falls back to (`WorkbookReader.cells_by_elementtree`, the reading
  before the scan), called directly,
- openpyxl's read_only mode reading the same cells.

Not a test; run `python bench/xlsx_read.py [ROWS]` (default 100,000 rows of x, y, the data tab
of bench/run_vs_libreoffice.py, made the same way with openpyxl). Both sheetsync readings must
give the same rows; the script checks.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's workbook builder

from sheetsync.backends.xlsx import ooxml  # noqa: E402
from sheetsync.backends.xlsx import WorkbookReader, XlsxBackend  # noqa: E402


def data_workbook(path: str, rows: int) -> None:
    """The data tab of bench/run_vs_libreoffice.py's big case, made by the same function."""
    from run_vs_libreoffice import sheetsync_workbook

    rng = np.random.default_rng(0)
    x = rng.random(rows)
    y = 2 * x + 30 + rng.normal(0, 0.1, rows)
    sheetsync_workbook(Path(path), x, y, [["setting", "big"]])


def timed(label: str, action, repeat: int = 3):
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = action()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        del result
    print(f"{label:<44} {min(walls):8.3f} s wall {min(cpus):8.3f} s cpu")
    return min(walls)


def elementtree_read(path: str):
    """What `read` did before the scan: the same snapshot, every sheet through ElementTree."""
    pkg = ooxml.Package(path)
    try:
        reader = WorkbookReader(pkg)
        reader.cells = reader.cells_by_elementtree
        return reader.snapshot(["data", "experiments"])
    finally:
        pkg.close()


def openpyxl_read(path: str):
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = [list(r) for r in wb["data"].iter_rows(values_only=True)]
    wb.close()
    return rows


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "book.xlsx")
        data_workbook(path, rows)
        print(f"data tab: {rows:,} rows x 2 numbers ({os.path.getsize(path) / 1e6:.1f} MB file)")
        scan = XlsxBackend(path).read(["data", "experiments"])
        tree = elementtree_read(path)
        assert scan.values == tree.values and [t.__dict__ for t in scan.tabs] == [t.__dict__ for t in tree.tabs]
        now = timed("XlsxBackend.read (text scan)", lambda: XlsxBackend(path).read(["data", "experiments"]))
        before = timed("ElementTree reading (before the scan)", lambda: elementtree_read(path))
        theirs = timed("openpyxl read_only, values", lambda: openpyxl_read(path), repeat=1)
    print(f"speed-up scan vs ElementTree: {before / now:.1f}x; vs openpyxl read_only: {theirs / now:.1f}x")


if __name__ == "__main__":
    main()
