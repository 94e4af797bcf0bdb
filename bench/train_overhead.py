"""Benchmark (not a test): what a small `train()` costs beyond the compiled loop (issue 17).

The same structure trained again and again (a server or scheduler running the same sheet):
side by side in one process, best of many calls, microseconds per call:

  kernel      the bare compiled loop, arrays allocated beforehand
  run_epochs  prepare + load the kernel + pack, run, unpack (the loop layer: engine/loop/run.py)
  train       the whole public call (its Result tables and diagnostics included)

and the parts of the overhead: prepare (Spec lookup), load_kernel (in-process lookup).
Runs on main's tree too (`PYTHONPATH=/tmp/main-src python bench/train_overhead.py`).

Run:  python bench/train_overhead.py [--rows 29] [--epochs 1] [--keep-steps]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_us(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=29)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep-steps", action="store_true")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("SHEETSYNC_KERNEL", "c")

    from sheetsync import Experiment, train
    from sheetsync.engine.train import pack, prepare, reset_state, run_epochs
    try:
        from sheetsync.engine.loop.backend import load_kernel
        tree = "a-loop"
    except ImportError:
        from sheetsync.engine.kernel import load_kernel
        tree = "main"

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, args.rows)
    y = 2 * x + 0.3
    exp = Experiment(flavour="pytorch", optimizer="adam", lr=0.01, epochs=args.epochs)
    rec = args.keep_steps
    job = prepare(exp, x, y)
    spec = job.spec
    kernel = load_kernel(spec)
    state = reset_state(job)
    P, S, H, T = pack(job, state)
    order = job.order(0, args.epochs)
    R = np.empty((1, args.epochs * args.rows if rec else 0, len(spec.step_columns())))
    EPO = np.zeros((1, args.epochs, len(spec.epoch_columns())))
    DIV = np.zeros((1, 5), dtype=np.int64)

    def bare():
        kernel(job.X, job.Y, order, P.copy(), S.copy(), H, T.copy(), args.epochs, rec, R, EPO, DIV)

    rows = {
        "kernel (bare loop)": best_us(bare, args.repeats),
        "prepare": best_us(lambda: prepare(exp, x, y), args.repeats),
        "load_kernel (cached)": best_us(lambda: load_kernel(prepare(exp, x, y).spec), args.repeats)
        - best_us(lambda: prepare(exp, x, y), args.repeats),
        "prepare + run_epochs": best_us(lambda: run_epochs(prepare(exp, x, y), state, args.epochs, rec), args.repeats),
        "train()": best_us(lambda: train(exp, x, y, keep_steps=rec, find_safe_lr=False), args.repeats // 4),
    }
    k = rows["kernel (bare loop)"]
    print(f"[{tree}] {args.rows} rows x {args.epochs} epochs, pytorch adam, keep_steps={rec}, best of "
          f"{args.repeats} (µs per call)")
    for label, us in rows.items():
        extra = f"  +{us - k:8.1f} beyond the loop  ratio {us / k:6.2f}" if label in ("prepare + run_epochs", "train()") else ""
        print(f"  {label:24s} {us:9.1f}{extra}")


if __name__ == "__main__":
    main()
