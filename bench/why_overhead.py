"""Benchmark (not a test): what the explanations add to a run.

The safe-lr search (a sweep of up to 12 learning rates, run only when an experiment diverged or
its loss rose), the loss landscape (a 17 x 17 grid of the mean loss over the data) and the
stability margin of every written step, against the same run with the three switched off, side
by side in one warm process (as `sheetsync serve` and the scheduler run it), alternating, best
of N.

Cases: the demo (its four experiments; adam's loss rises, so the search runs), the thread's
experiment (two_linear at lr 1e-4, diverges), and 100,000 data rows x 10 epochs (linear, pytorch
sgd, stable) and the same at a diverging lr.

    python bench/why_overhead.py
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sheetsync  # noqa: E402
from sheetsync.backends.xlsx import XlsxBackend  # noqa: E402
from sheetsync.demo import demo_tabs  # noqa: E402
from sheetsync.engine import explain  # noqa: E402

import sheetsync.layout.render  # noqa: E402

render_module = sys.modules["sheetsync.layout.render"]


@contextlib.contextmanager
def without_explanations():
    """The run as it was before: no search, no landscape, no margin column."""
    saved = (explain.search_safe_lr, render_module.render_landscape, explain.step_geometry)
    explain.search_safe_lr = lambda *a, **k: explain.SafeLr(None)
    render_module.render_landscape = lambda *a, **k: None
    # margins not computed (zeros: a column of blanks would put the writer off its fast path)
    explain.step_geometry = lambda result, lines=None: explain.StepGeometry(
        *(np.zeros(len(lines) if lines is not None else len(result.steps)),) * 3)
    try:
        yield
    finally:
        explain.search_safe_lr, render_module.render_landscape, explain.step_geometry = saved


def timed(make, go) -> float:
    path = make()
    start = time.perf_counter()
    go(path)
    return time.perf_counter() - start


BOOKS = iter(range(10**9))


def workbook(tabs: dict, folder: Path):
    def make() -> str:
        path = folder / f"book{next(BOOKS)}.xlsx"
        XlsxBackend.create(str(path), tabs)
        return str(path)

    return make


def big_tabs(rows: int, lr: float) -> dict:
    rng = np.random.default_rng(0)
    x = rng.random(rows)
    y = 2 * x + 30 + rng.normal(0, 0.1, rows)
    return {"data": [["x", "y"]] + [[float(a), float(b)] for a, b in zip(x, y)],
            "experiments": [["setting", "big"], ["model", "linear"], ["flavour", "pytorch"], ["optimizer", "sgd"],
                            ["lr", lr], ["epochs", 10]]}


def main() -> None:
    thread = {"data": demo_tabs()["data"],
              "experiments": [["setting", "thread"], ["model", "two_linear"], ["lr", 0.0001], ["epochs", 1],
                              ["gradient", "numeric"]]}
    cases = [("demo (4 experiments, adam's loss rises)", demo_tabs(), 5),
             ("thread: two_linear lr 1e-4, diverges", thread, 5),
             ("100,000 rows x 10 epochs, stable", big_tabs(100_000, 1e-5), 2),
             ("100,000 rows x 10 epochs, diverges", big_tabs(100_000, 3.0), 2)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sheetsync.run(workbook(demo_tabs(), folder)())  # compile and import once
        print(f"{'case':44} {'with':>9} {'without':>9} {'added':>7}")
        for name, tabs, n in cases:  # alternating, best of n each
            make = workbook(tabs, folder)
            with_, without = [], []
            for _ in range(n):
                with_.append(timed(make, sheetsync.run))
                with without_explanations():
                    without.append(timed(make, sheetsync.run))
            w, wo = min(with_), min(without)
            print(f"{name:44} {w:8.3f}s {wo:8.3f}s {100 * (w / wo - 1):6.1f}%")

if __name__ == "__main__":
    main()
