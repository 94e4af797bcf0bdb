"""Benchmark (not a test): what `sheetsync.sweep` costs beyond its loop, next to a bare C loop.

Issue 17's targets: a sweep of 1,000 experiments x 10,000 steps within 10x of the C loop per
experiment-step, and 1,000 x 500 steps within 20x. Both sides run here, in one process, on the
fast.ai workbook's 29 rows (y = 2x + 30), `linear` with the pytorch flavour's SGD and Adam, one
row per step, 1,000 learning rates:

- sheetsync: `sweep(experiments, x, y)` (values only, as a user sweeping learning rates calls it),
  then the same with one table touched per Result (`result.epochs`), so the lazy tables' price
  shows too;
- C: bench/c_loop.c, the same arithmetic, compiled now with `cc -O2 -ffp-contract=off` and
  called through ctypes for all 1,000 learning rates.

The C loop's final parameters must equal the sweep's within 1e-9 (c_loop.c does not fuse
torch's multiply-adds, so not to the bit). Printed: seconds,
and the ratio sweep / C per experiment-step. Timings are the best of 3 after a warm-up call.

Run:  python bench/sweep_cost.py          (about a minute)
      python bench/sweep_cost.py --quick  (smaller, a smoke run)
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sheetsync import Experiment, sweep  # noqa: E402
from yardstick import best_of, compile_c  # noqa: E402

X = np.array([14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8,
              64, 99, 70, 27, 17, 8], dtype=np.float64)
Y = 2 * X + 30
OPTIMIZERS = {"sgd": (0, 1e-5), "adam": (1, 1e-2)}  # c_loop's code, the largest lr of the sweep


def build_c_loop(workdir: Path) -> ctypes.CDLL:
    library = workdir / "c_loop.so"
    lib = compile_c(HERE / "c_loop.c", library)
    lib.run.restype = ctypes.c_int64
    dp = ctypes.POINTER(ctypes.c_double)
    lib.run.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, dp, dp, dp,
                        ctypes.c_double, ctypes.c_double, ctypes.c_double, dp]
    return lib


def c_loop(lib, optimizer: int, lrs: np.ndarray, epochs: int) -> np.ndarray:
    params = np.ones((len(lrs), 2))
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))  # noqa: E731
    lib.run(0, optimizer, len(lrs), len(X), epochs, ptr(X), ptr(Y), ptr(lrs), 0.9, 0.999, 1e-8, ptr(params))
    return params


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_exp = 200 if args.quick else 1000
    targets = {500: 20.0, 10_000: 10.0}
    with tempfile.TemporaryDirectory() as workdir:
        lib = build_c_loop(Path(workdir))
        print(f"{'optimizer':9} {'steps':>6} {'C s':>8} {'sweep s':>8} {'ratio':>7} {'+epochs s':>9} {'ratio':>7}  target")
        for name, (code, top) in OPTIMIZERS.items():
            lrs = np.geomspace(top / 100, top, n_exp)
            for steps, target in targets.items():
                epochs = max(1, round(steps / len(X)))
                exps = [Experiment(f"e{i}", flavour="pytorch", optimizer=name, lr=float(lr), epochs=epochs)
                        for i, lr in enumerate(lrs)]
                t_c, c_params = best_of(3, lambda: c_loop(lib, code, lrs, epochs))
                t_s, results = best_of(3, lambda: sweep(exps, X, Y))
                t_e, _ = best_of(3, lambda: [r.epochs for r in sweep(exps, X, Y)])
                mine = np.array([[r.params["a"], r.params["b"]] for r in results])
                # c_loop.c rounds torch's fused multiply-adds twice: equal to ~1e-12, not to the bit
                same = np.allclose(mine, c_params, rtol=1e-9, atol=0)
                print(f"{name:9} {epochs * len(X):>6} {t_c:8.4f} {t_s:8.4f} {t_s / t_c:6.1f}x {t_e:9.4f} "
                      f"{t_e / t_c:6.1f}x  <= {target:g}x{'' if same else '  (final parameters differ from C!)'}")


if __name__ == "__main__":
    main()
