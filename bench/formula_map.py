"""Formula mode, the precedents map and the trace at 100,000 steps (a benchmark, not a test).

    python bench/formula_map.py [--rows 10000] [--epochs 10]

Trains `linear` (pytorch sgd) and `two_relu` (pytorch adam) on seeded data, then measures, side
by side: writing the workbook in values mode and in formula mode (time and file size), building
the `NAME map` tab, and tracing a late cell (depth 3, and to the inputs, capped as the CLI caps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sheetsync import Experiment, train
from sheetsync.backends.base import Plan
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.layout.formulas import StepFormulas
from sheetsync.layout.map import map_rows, render_map
from sheetsync.layout.steps import HEADER_ROW, render_steps
from sheetsync.trace import Tracer
from sheetsync.backends.base import Snapshot


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def data(rows: int):
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(-2, 2, rows), 3)
    return x, np.round(1.5 * x + 0.7 + rng.normal(0, 0.3, rows), 3)


def write(path: Path, x, y, tab):
    XlsxBackend.create(path, {"data": [["x", "y"], *[[a, b] for a, b in zip(x, y)]],
                              "experiments": [["setting", "e"], ["lr", 0.01]]})
    XlsxBackend(path).apply(Plan([tab]))
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    x, y = data(args.rows)
    cells = lambda i, name: f"data!{'A' if name == 'x' else 'B'}{i + 2}"  # noqa: E731
    print(f"{args.rows:,} rows x {args.epochs} epochs = {args.rows * args.epochs:,} steps per experiment\n")
    print(f"{'experiment':<26}{'train':>8}{'formulas':>10}{'map':>8}{'values .xlsx':>22}{'formulas .xlsx':>24}"
          f"{'trace d=3':>11}{'trace all':>11}")
    for exp in (Experiment("e", flavour="pytorch", optimizer="sgd", lr=0.01, epochs=args.epochs),
                Experiment("e", flavour="pytorch", optimizer="adam", model="two_relu", lr=0.01, epochs=args.epochs)):
        result, t_train = timed(lambda: train(exp, x, y))
        sf, _ = timed(lambda: StepFormulas(result, cells, {"lr": "experiments!B2"}, HEADER_ROW + 2))
        formulas, t_formulas = timed(sf.all)
        rows, t_map = timed(lambda: map_rows(sf, "e steps"))
        with tempfile.TemporaryDirectory() as tmp:
            (size_values, t_values) = timed(lambda: write(Path(tmp) / "v.xlsx", x, y, render_steps(result)))
            size_formulas, t_fwrite = timed(lambda: write(Path(tmp) / "f.xlsx", x, y,
                                                          render_steps(result, None, formulas)))
            book = XlsxBackend(Path(tmp) / "v.xlsx")
            book.apply(Plan([render_map("e", sf, "e steps")]))
            snapshot: Snapshot = book.read(["data", "experiments", "e steps", "e epochs", "sheetsync state"])
            tracer = Tracer(snapshot, "e")
            last = len(result.steps) - 1
            tree3, t_trace3 = timed(lambda: tracer.precedents(last, "new a", 3))
            tree, t_trace = timed(lambda: tracer.precedents(last, "new a", None))
        label = f"{exp.model} {exp.optimizer}"
        print(f"{label:<26}{t_train:>7.2f}s{t_formulas:>9.2f}s{t_map:>7.2f}s"
              f"{size_values / 1e6:>9.1f} MB {t_values:>6.2f}s{size_formulas / 1e6:>10.1f} MB {t_fwrite:>6.2f}s"
              f"{t_trace3 * 1e3:>9.1f}ms{t_trace * 1e3:>9.1f}ms")
        print(f"{'':<26}formula mode file / values file = {size_formulas / size_values:.2f}x; map rows {len(rows)}")


if __name__ == "__main__":
    main()
