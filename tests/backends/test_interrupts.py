"""Interrupted runs: SIGTERM in the middle of a write removes the temporary file and leaves the
workbook as it was, as Ctrl-C does; Ctrl-C while the command is still starting exits 130 with
one line and no traceback."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sheetsync.demo import write_demo

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# `python -m sheetsync run BOOK`, paused (for a minute) once the temp file is written, before
# it replaces the workbook
PAUSED_RUN = """
    import runpy, sys, time
    from pathlib import Path
    from sheetsync.backends.xlsx import atomic
    marker = Path(sys.argv[2])
    real = atomic._copy_permissions
    def pause_mid_write(*args, **kwargs):
        real(*args, **kwargs)
        marker.touch()
        time.sleep(60)
    atomic._copy_permissions = pause_mid_write
    sys.argv = ["sheetsync", "run", sys.argv[1]]
    runpy.run_module("sheetsync", run_name="__main__", alter_sys=True)
"""


def temp_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".sheetsync-tmp")]


def test_sigterm_mid_write_removes_the_temp_file_and_leaves_the_workbook(tmp_path):
    book = write_demo(tmp_path / "book.xlsx")
    before = digest(book)
    marker = tmp_path / "writing"
    proc = start(PAUSED_RUN, str(book), str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert temp_files(tmp_path)  # the write is under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert temp_files(tmp_path) == []
    assert digest(book) == before


# Ctrl-C arrives while numpy is being imported (the first second of the command)
CTRL_C_AT_START = """
    import runpy, sys
    class CtrlC:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy":
                raise KeyboardInterrupt
    sys.meta_path.insert(0, CtrlC())
    sys.argv = ["sheetsync", "run", sys.argv[1]]
    runpy.run_module("sheetsync", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path):
    book = write_demo(tmp_path / "book.xlsx")
    proc = start(CTRL_C_AT_START, str(book))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err, err
