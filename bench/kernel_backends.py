"""Benchmark (not a test): the C backend of the training loop against the numba backend.

Both backends compile the same generated loop and give the same bits (engine/loop/); they
differ in fixed costs. Measured here, each backend forced with SHEETSYNC_KERNEL:

1. a fresh process: `python -m sheetsync run` on the demo workbook (4 experiments, 29 rows),
   and a fresh process that only imports sheetsync and trains the demo's 4 experiments;
   warm caches (one unmeasured run first), best of 3;
2. the cold compile of one kernel: the seconds of the first `train` call in a fresh process
   with an empty kernel cache, next to the same with the cache warm (best of 3); for C also the
   compiler alone (one `cc` run);
3. loop speed: 100,000 rows x 10 epochs of linear pytorch SGD, `keep_steps=False`, in one
   process, best of 5 after a warm-up (the loops should run at about the same speed).

Run:  python bench/kernel_backends.py          (about a minute)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BACKENDS = ("c", "numba")

TRAIN_DEMO = textwrap.dedent("""
    import sheetsync
    from sheetsync.demo import EXPERIMENTS, X, Y
    names = EXPERIMENTS[0][1:]
    for k, name in enumerate(names):
        settings, init = {}, {}
        for row in EXPERIMENTS[1:]:
            value = row[k + 1]
            if value is None:
                continue
            if row[0].startswith("init "):
                init[row[0][5:]] = value
            else:
                settings[row[0]] = value
        sheetsync.train(sheetsync.Experiment(name, init=init, **settings), X, Y)
""")

TRAIN_ONE = textwrap.dedent("""
    import time
    import sheetsync
    exp = sheetsync.Experiment(flavour="pytorch", optimizer="{optimizer}", model="{model}", lr=0.001, epochs=2)
    start = time.perf_counter()
    sheetsync.train(exp, [1.0, 2.0, 3.0], [3.0, 5.0, 7.0])
    print(time.perf_counter() - start)
""")
COLD_CASES = [("linear", "sgd"), ("two_relu", "adam"), ("mlp", "rmsprop")]


def child_seconds(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return seconds


def best_fresh(cmd_for, env: dict, repeats: int = 3) -> float:
    child_seconds(cmd_for(0), env)  # warm the caches (kernels, __pycache__)
    return min(child_seconds(cmd_for(k + 1), env) for k in range(repeats))


def fresh_process(work: Path, cache: Path) -> dict[str, dict[str, float]]:
    from sheetsync.demo import write_demo

    demo = work / "demo.xlsx"
    write_demo(demo)
    out: dict[str, dict[str, float]] = {}
    for which in BACKENDS:
        env = dict(os.environ, SHEETSYNC_KERNEL=which, SHEETSYNC_CACHE_DIR=str(cache))

        def run_cmd(k: int) -> list[str]:
            book = work / f"run-{which}-{k}.xlsx"
            shutil.copyfile(demo, book)
            return [sys.executable, "-m", "sheetsync", "run", str(book), "--json"]

        out[which] = {
            "run": best_fresh(run_cmd, env),
            "train": best_fresh(lambda k: [sys.executable, "-c", TRAIN_DEMO], env),
            "import": best_fresh(lambda k: [sys.executable, "-c", "import sheetsync, sheetsync.runner"], env),
        }
    return out


def cold_compile(work: Path) -> dict[str, list[tuple[str, float, float]]]:
    """Per backend: (kernel, first train() seconds with an empty cache, the same warm)."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for which in BACKENDS:
        rows = []
        for model, optimizer in COLD_CASES:
            cache = Path(tempfile.mkdtemp(dir=work))
            env = dict(os.environ, SHEETSYNC_KERNEL=which, SHEETSYNC_CACHE_DIR=str(cache))
            cmd = [sys.executable, "-c", TRAIN_ONE.format(model=model, optimizer=optimizer)]

            def first_train() -> float:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                return float(proc.stdout.split()[-1])

            cold = first_train()
            warm = min(first_train() for _ in range(3))
            rows.append((f"{model} {optimizer}", cold, warm))
        out[which] = rows
    return out


def compiler_alone(work: Path) -> list[float]:
    """Seconds of one C compiler run per kernel of COLD_CASES."""
    from sheetsync import Experiment
    from sheetsync.engine.loop import c_printer, cc, program
    from sheetsync.engine.train import prepare

    times = []
    for k, (model, optimizer) in enumerate(COLD_CASES):
        job = prepare(Experiment(flavour="pytorch", optimizer=optimizer, model=model), [1.0, 2.0], [1.0, 2.0])
        start = time.perf_counter()
        cc.build(c_printer.source(program.build(job.spec)), work / f"alone-{k}.so", cc.compiler())
        times.append(time.perf_counter() - start)
    return times


def loop_speed(rows: int, epochs: int) -> dict[str, float]:
    from sheetsync import Experiment, train

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, rows)
    y = 2 * x + 0.3 + rng.normal(0, 0.01, rows)
    exp = Experiment(flavour="pytorch", optimizer="sgd", lr=0.01, epochs=epochs)
    out, finals = {}, {}
    for which in BACKENDS:
        os.environ["SHEETSYNC_KERNEL"] = which
        train(exp.replace(epochs=1), x[:10], y[:10], keep_steps=False)  # compile or load once
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            r = train(exp, x, y, keep_steps=False)
            best = min(best, time.perf_counter() - start)
        out[which], finals[which] = best, r.params
    del os.environ["SHEETSYNC_KERNEL"]
    assert finals["c"] == finals["numba"], finals
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "cache"
        fresh = fresh_process(work, cache)
        print("Fresh process, warm caches, best of 3 (seconds):")
        print(f"  {'':34s} {'C':>8s} {'numba':>8s} {'numba/C':>8s}")
        for key, label in [("run", "sheetsync run demo.xlsx"), ("train", "import + train the demo's 4"),
                           ("import", "import sheetsync, runner only")]:
            c, nb = fresh["c"][key], fresh["numba"][key]
            print(f"  {label:34s} {c:8.3f} {nb:8.3f} {nb / c:8.2f}")
        compiled = cold_compile(work)
        alone = compiler_alone(work)
        print("\nThe first train() call in a fresh process, kernel cache empty (cold) and full (warm), seconds:")
        print(f"  {'':16s} {'C cold':>7s} {'C warm':>7s} {'cc only':>7s} {'numba cold':>10s} {'numba warm':>10s}"
              f" {'cold numba/C':>12s}")
        for (label, c_cold, c_warm), (_, n_cold, n_warm), cc in zip(compiled["c"], compiled["numba"], alone):
            print(f"  {label:16s} {c_cold:7.3f} {c_warm:7.3f} {cc:7.3f} {n_cold:10.3f} {n_warm:10.3f}"
                  f" {n_cold / c_cold:12.1f}")
        speed = loop_speed(args.rows, args.epochs)
        steps = args.rows * args.epochs
        print(f"\nLoop speed, linear pytorch sgd, {args.rows:,} rows x {args.epochs} epochs, best of 5:")
        for which in BACKENDS:
            print(f"  {which:6s} {speed[which]:7.3f} s  {steps / speed[which] / 1e6:6.1f} M steps/s")
        print(f"  numba/C time ratio {speed['numba'] / speed['c']:.2f} (final parameters identical)")


if __name__ == "__main__":
    main()
