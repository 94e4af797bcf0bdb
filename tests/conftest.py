"""Shared by every test folder.

Helper modules are imported by name (`from memory_backend import MemoryBackend`,
`from fake_sheets import FakeSheetsAPI`, `from exactness import RTOL`): the folders that hold
them are on the path through pytest's `pythonpath` option (pyproject.toml), not through
`sys.path` edits at the top of test files. A subprocess a test starts gets its path from the
`PYTHONPATH` it is given, as before.
"""

from __future__ import annotations

import os
from pathlib import Path

# One thread per process for torch's and the BLAS libraries' pools (set before any test imports
# them; subprocesses inherit it). The tests' tensors are a few dozen numbers, far below where
# torch splits work across threads, so results do not change; but with the suite on every core
# (pytest-xdist) each worker's idle pool spinning on the other's core made the torch exactness
# files 5-7 times slower.
for _pool in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_book(tmp_path) -> Path:
    """The demo workbook (`sheetsync demo`'s data and four experiments), not yet run."""
    from sheetsync.demo import write_demo

    path = tmp_path / "demo.xlsx"
    write_demo(path)
    return path

