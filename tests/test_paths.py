"""The import path the tests rely on (pyproject.toml's pytest `pythonpath`, tests/conftest.py)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_helpers_import_by_name_from_every_folder():
    """The path the tests rely on: one helper from each folder on `pythonpath`."""
    import exactness  # noqa: F401  tests/engine
    import fake_sheets  # noqa: F401  tests/google
    import memory_backend  # noqa: F401  tests
    import schedule_sim  # noqa: F401  tests/schedule
    import server_support  # noqa: F401  tests/server
    import torch_runs  # noqa: F401  tests/reference

    import sheetsync

    assert Path(sheetsync.__file__).resolve().parent == REPO / "sheetsync"
