"""Shared by every test folder.

Helper modules are imported by name (`from memory_backend import MemoryBackend`,
`from fake_sheets import FakeSheetsAPI`, `from exactness import RTOL`): the folders that hold
them are on the path through pytest's `pythonpath` option (pyproject.toml), not through
`sys.path` edits at the top of test files. A subprocess a test starts gets its path from the
`PYTHONPATH` it is given, as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_book(tmp_path) -> Path:
    """The demo workbook (`sheetsync demo`'s data and four experiments), not yet run."""
    from sheetsync.demo import write_demo

    path = tmp_path / "demo.xlsx"
    write_demo(path)
    return path

