"""A `sheetsync run` imports neither pandas nor openpyxl (issue 17: ~0.3 s of a fresh run's
start-up went to them). Checked in a fresh process: every `import` statement a sheetsync module
executes for them during a run is recorded, through the CLI, in values and formula mode, run
and reset, with `--json`.

A run whose compiled loops are cached (any run after the first) imports no loop generator, no
printer and no subprocess either (issue 17: ~15 ms of a fresh run's start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import builtins, json, shutil, sys

importers = set()
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    caller = (globals or {}).get("__name__", "")
    if name.split(".")[0] in ("pandas", "openpyxl") and caller.startswith("sheetsync"):
        importers.add(caller + " -> " + name.split(".")[0])
    return real_import(name, globals, locals, fromlist, level)

from sheetsync.demo import write_demo
demo, book = sys.argv[1] + "/demo.xlsx", sys.argv[1] + "/book.xlsx"
write_demo(demo)
loaded_before = {m for m in ("pandas", "openpyxl") if m in sys.modules}  # writing the demo may load them
for m in loaded_before:  # forget them, so a run that needs them shows up in sys.modules again
    for name in [n for n in sys.modules if n == m or n.startswith(m + ".")]:
        del sys.modules[name]
shutil.copy(demo, book)
builtins.__import__ = recording_import
from sheetsync.cli import main
for argv in (["run", book], ["run", book, "--json"], ["run", book, "--formulas"], ["reset", book, "--formulas"]):
    try:
        main(argv)
    except SystemExit as e:
        assert not e.code, (argv, e.code)
print(json.dumps({"importers": sorted(importers),
                  "loaded": sorted(m for m in ("pandas", "openpyxl") if m in sys.modules)}), file=sys.stderr)
"""

@pytest.fixture(scope="module")
def run_imports(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("lazy")
    env = dict(os.environ, PYTHONPATH=str(ROOT), SHEETSYNC_CACHE_DIR=str(folder / "kernels"))
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stderr.strip().splitlines()[-1]), "folder": str(folder)}


def test_a_run_imports_neither_pandas_nor_openpyxl(run_imports):
    """Values, --json, formula mode and reset: no module of ours imports them, and nothing else
    did on our behalf."""
    assert {k: run_imports[k] for k in ("importers", "loaded")} == {"importers": [], "loaded": []}


# Modules a run whose compiled loops are already cached does without: the loop generator and its
# printers (a library is found through the Spec's index file), the compiler's subprocess; and
# on the demo (no table model, no rating data, no bad name, no fma on the Python side) the
# embeddings engine, fractions and difflib; a deflate pool's concurrent.futures (its tabs are
# small); and logging (nothing is logged when nothing goes wrong).
DEFERRED = ("sheetsync.engine.loop.program", "sheetsync.engine.loop.c_printer",
            "sheetsync.engine.loop.numba_printer", "subprocess", "shlex",
            "sheetsync.engine.embeddings", "fractions", "difflib", "concurrent.futures", "logging")

WARM_CHILD = r"""
import json, shutil, sys
from sheetsync.cli import main
book = sys.argv[1] + "/warm.xlsx"
shutil.copy(sys.argv[1] + "/demo.xlsx", book)
try:
    main(["run", book])
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps(sorted(m for m in sys.argv[2].split(",") if m in sys.modules)), file=sys.stderr)
"""


def test_a_run_with_its_loops_cached_imports_no_generator(run_imports, tmp_path_factory):
    """The run above compiled the demo's loops into its cache; a fresh process running the demo
    again loads them without importing the generator, the printers or subprocess."""
    assert run_imports["importers"] == []  # the run above ran, and filled the cache
    folder = Path(run_imports["folder"])
    env = dict(os.environ, PYTHONPATH=str(ROOT), SHEETSYNC_CACHE_DIR=str(folder / "kernels"), SHEETSYNC_KERNEL="c")
    done = subprocess.run([sys.executable, "-c", WARM_CHILD, str(folder), ",".join(DEFERRED)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    # ... and a process whose cache is empty does generate them (the check above can fail)
    env["SHEETSYNC_CACHE_DIR"] = str(tmp_path_factory.mktemp("cold"))
    done = subprocess.run([sys.executable, "-c", WARM_CHILD, str(folder), ",".join(DEFERRED)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"sheetsync.engine.loop.program", "sheetsync.engine.loop.c_printer", "subprocess"} \
        <= set(json.loads(done.stderr.strip().splitlines()[-1]))
