"""Benchmark (not a test): sheetsync's per-row training speed next to a torch.optim loop and C.

For `linear` and `two_relu` with the pytorch flavour's SGD and Adam, per-row steps on the
fast.ai workbook's 29 rows (x as in graddesc.xlsm, y = 2x + 30), in one run:

- sheetsync, one experiment: `train(experiment, x, y, keep_steps=False)`;
- sheetsync, a sweep of 1,000 experiments (1,000 learning rates): `sweep(experiments, x, y)`;
- (a) torch: the loop a PyTorch user writes (0-d float64 tensors, zero_grad, backward, step);
- (b) C: bench/c_loop.c, the same arithmetic, compiled now with the system `cc -O2
  -ffp-contract=off` (no -ffast-math) and called through ctypes, one experiment and 1,000.

It prints steps per second, the ratios the design asks for (sheetsync single vs the torch loop,
target >= 20x; the C loop vs sheetsync's sweep per experiment-step, target <= 10x), and checks
that the numbers agree: C's final parameters against sheetsync's (every experiment of the
sweep), the torch loop's against sheetsync's after the same steps. Then memory: peak RSS and
tracemalloc's peak of `train(..., keep_steps=False)` (RSS sampled every millisecond during
the call) over 10,000 seeded rows for 10 and 1,000
epochs (each in a fresh process), which should not grow with the number of steps.

Run:  python bench/engine_speed.py            (about two minutes)
      python bench/engine_speed.py --quick    (fewer steps, for a smoke run)
Timings are the best of 3 after a warm-up call (numba compiles, or loads its cache, once).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sheetsync import Experiment  # noqa: E402
from sheetsync.engine import sweep, train  # noqa: E402
from yardstick import best_of, compile_c  # noqa: E402

WORKBOOK_X = np.array([14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8,
                       64, 99, 70, 27, 17, 8], dtype=np.float64)
WORKBOOK_Y = 2 * WORKBOOK_X + 30
SWEEP_SIZE = 1000


@dataclass(frozen=True)
class Problem:
    model: str
    optimizer: str
    lr: float  # the single experiment's; the sweep spans lr/100 .. lr

    @property
    def label(self) -> str:
        return f"{self.model} {self.optimizer}"

    @property
    def init(self) -> dict[str, float]:
        return {"a": 1.0, "b": 1.0} if self.model == "linear" else {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}

    def sweep_lrs(self) -> np.ndarray:
        return np.geomspace(self.lr / 100, self.lr, SWEEP_SIZE)

    def experiment(self, lr: float, epochs: int) -> Experiment:
        return Experiment(f"lr {lr:.3g}", init=self.init, model=self.model, flavour="pytorch",
                          optimizer=self.optimizer, lr=float(lr), epochs=epochs)


# Per-row SGD on the workbook's data is stable for lr < 1/max(x^2) ~ 1.02e-4 (docs/optimizers.md).
PROBLEMS = [Problem("linear", "sgd", 1e-4), Problem("linear", "adam", 0.1),
            Problem("two_relu", "sgd", 1e-5), Problem("two_relu", "adam", 0.01)]


# ---------------------------------------------------------------------------------------------
# (a) the torch.optim loop


def torch_loop(problem: Problem, lr: float, epochs: int) -> dict[str, float]:
    import torch

    torch.set_default_dtype(torch.float64)
    params = {n: torch.tensor(v, requires_grad=True) for n, v in problem.init.items()}
    opt = (torch.optim.SGD if problem.optimizer == "sgd" else torch.optim.Adam)(list(params.values()), lr=lr)
    xs, ys = torch.as_tensor(WORKBOOK_X), torch.as_tensor(WORKBOOK_Y)
    a, b = params["a"], params["b"]
    for _ in range(epochs):
        for x, y in zip(xs, ys):
            opt.zero_grad()
            if problem.model == "linear":
                pred = a * x + b
            else:
                pred = params["c"] * torch.relu(a * x + b) + params["d"]
            ((pred - y) ** 2).backward()
            opt.step()
    return {n: p.item() for n, p in params.items()}


# ---------------------------------------------------------------------------------------------
# (b) the C loop


def build_c_loop(workdir: Path) -> ctypes.CDLL:
    """Compile bench/c_loop.c with the system cc, as the design asks, and load it."""
    lib = compile_c(HERE / "c_loop.c", workdir / "c_loop.so")
    lib.run.restype = ctypes.c_int64
    double_p = ctypes.POINTER(ctypes.c_double)
    lib.run.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, double_p, double_p,
                        double_p, ctypes.c_double, ctypes.c_double, ctypes.c_double, double_p]
    return lib


def c_loop(lib: ctypes.CDLL, problem: Problem, lrs: np.ndarray, epochs: int) -> np.ndarray:
    """Final parameters, one row per learning rate (defaults of torch.optim.Adam: 0.9, 0.999, 1e-8)."""
    lrs = np.ascontiguousarray(lrs, dtype=np.float64)
    params = np.tile(np.array(list(problem.init.values())), (len(lrs), 1))
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))  # noqa: E731
    lib.run(0 if problem.model == "linear" else 1, 0 if problem.optimizer == "sgd" else 1, len(lrs),
            len(WORKBOOK_X), epochs, ptr(WORKBOOK_X), ptr(WORKBOOK_Y), ptr(lrs), 0.9, 0.999, 1e-8, ptr(params))
    return params


# ---------------------------------------------------------------------------------------------
# sheetsync


def sheetsync_single(problem: Problem, epochs: int) -> np.ndarray:
    result = train(problem.experiment(problem.lr, epochs), WORKBOOK_X, WORKBOOK_Y, keep_steps=False)
    return np.array([[result.params[n] for n in problem.init]])


class KernelClock:
    """Time spent inside sheetsync's compiled loop (engine internals: `train.run_kernel`), to show
    how much of a sweep is the loop and how much is building 1,000 Results. None if renamed."""

    def __init__(self) -> None:
        self.module = sys.modules.get("sheetsync.engine.train")
        self.original = getattr(self.module, "run_kernel", None)
        self.seconds = 0.0

    def __enter__(self) -> "KernelClock":
        if self.original is not None:
            def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return self.original(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            self.module.run_kernel = timed
        return self

    def __exit__(self, *exc) -> None:
        if self.original is not None:
            self.module.run_kernel = self.original


def sheetsync_sweep(problem: Problem, epochs: int) -> np.ndarray:
    experiments = [problem.experiment(lr, epochs) for lr in problem.sweep_lrs()]
    results = sweep(experiments, WORKBOOK_X, WORKBOOK_Y, keep_steps=False)
    return np.array([[r.params[n] for n in problem.init] for r in results])


def gap(ours: np.ndarray, theirs: np.ndarray) -> str:
    """How two sets of final parameters compare: bitwise, or the largest relative gap."""
    if np.array_equal(ours, theirs):
        return "bitwise equal"
    rel = np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300))
    return f"max rel gap {rel:.1e}"


# ---------------------------------------------------------------------------------------------
# The speed table


@dataclass
class Sizes:
    single_epochs: int
    sweep_epochs: int
    torch_epochs: int
    repeats: int


def measure(problem: Problem, lib: ctypes.CDLL, sizes: Sizes) -> dict:
    rows = len(WORKBOOK_X)
    sheetsync_single(problem, 1), sheetsync_sweep(problem, 1)  # warm-up: compile or load kernels
    torch_loop(problem, problem.lr, 1)  # warm-up: import torch, first autograd graph
    t_single, p_single = best_of(sizes.repeats, lambda: sheetsync_single(problem, sizes.single_epochs), warm_up=False)
    t_sweep, p_sweep = best_of(sizes.repeats, lambda: sheetsync_sweep(problem, sizes.sweep_epochs), warm_up=False)
    with KernelClock() as clock:
        sheetsync_sweep(problem, sizes.sweep_epochs)
    t_torch, p_torch = best_of(1, lambda: torch_loop(problem, problem.lr, sizes.torch_epochs), warm_up=False)
    t_c1, c_single = best_of(sizes.repeats, lambda: c_loop(lib, problem, np.array([problem.lr]), sizes.single_epochs), warm_up=False)
    t_cs, c_sweep = best_of(sizes.repeats, lambda: c_loop(lib, problem, problem.sweep_lrs(), sizes.sweep_epochs), warm_up=False)
    same_steps = sheetsync_single(problem, sizes.torch_epochs)[0]
    return {
        "problem": problem.label,
        "sheetsync single": rows * sizes.single_epochs / t_single,
        "sheetsync sweep": SWEEP_SIZE * rows * sizes.sweep_epochs / t_sweep,
        "sweep kernel": SWEEP_SIZE * rows * sizes.sweep_epochs / clock.seconds if clock.seconds else float("nan"),
        "torch loop": rows * sizes.torch_epochs / t_torch,
        "C single": rows * sizes.single_epochs / t_c1,
        "C sweep": SWEEP_SIZE * rows * sizes.sweep_epochs / t_cs,
        "C vs sheetsync": f"single {gap(p_single, c_single)}; sweep {gap(p_sweep, c_sweep)}",
        "torch vs sheetsync": gap(same_steps, np.array(list(p_torch.values()))),
        "finite": bool(np.all(np.isfinite(p_sweep)) and np.all(np.isfinite(p_single))),
    }


def print_speed_table(results: list[dict]) -> None:
    print("\nPer-row steps per second (sweep: experiment-steps per second; 1,000 lrs from lr/100 to lr)\n")
    head = f"{'problem':15s} {'sheetsync 1':>12s} {'sheetsync 1k':>13s} {'torch loop':>11s} {'C 1':>11s} {'C 1k':>11s}" \
           f" {'single/torch':>13s} {'C 1k/sweep':>11s} {'1k kernel only':>15s} {'C 1k/kernel':>12s}"
    print(head)
    print("-" * len(head))
    for r in results:
        single_vs_torch = r["sheetsync single"] / r["torch loop"]
        c_vs_sweep = r["C sweep"] / r["sheetsync sweep"]
        print(f"{r['problem']:15s} {r['sheetsync single']:12.3g} {r['sheetsync sweep']:13.3g} {r['torch loop']:11.3g}"
              f" {r['C single']:11.3g} {r['C sweep']:11.3g} {single_vs_torch:12.0f}x {c_vs_sweep:10.1f}x"
              f" {r['sweep kernel']:15.3g} {r['C sweep'] / r['sweep kernel']:11.1f}x")
    print("\ntargets: single/torch >= 20x; C 1k/sweep <= 10x (C's experiment-steps per second over sheetsync's)")
    print("'1k kernel only': the sweep's experiment-steps per second counting only the compiled loop's time;"
          " the rest of a sweep is preparing and building 1,000 Results")
    print("\nnumbers agree?")
    for r in results:
        print(f"  {r['problem']:15s} C vs sheetsync: {r['C vs sheetsync']}; torch loop vs sheetsync (same steps): "
              f"{r['torch vs sheetsync']}; all finite: {r['finite']}")


# ---------------------------------------------------------------------------------------------
# Memory: each measurement in a fresh process


def resident_mb() -> float:
    """Current resident set size (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


class RssSampler:
    """Highest resident set size seen every millisecond while the block runs (ru_maxrss can't
    show it: its high-water mark is the numba compile's, set before the call)."""

    def __enter__(self) -> "RssSampler":
        import threading

        self.peak, self.done = resident_mb(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self.done.wait(0.001):
            self.peak = max(self.peak, resident_mb())

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, resident_mb())


def memory_child(epochs: int, keep_steps: bool) -> None:
    """Run in a subprocess: warm up, then measure one train() over 10,000 seeded rows; print JSON."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 10_000)
    y = 2 * x + 0.3 + rng.normal(0, 0.1, 10_000)
    make = lambda n: Experiment("memory", init={"a": 1.0, "b": 1.0}, flavour="pytorch", optimizer="sgd",  # noqa: E731
                                lr=0.01, epochs=n)
    train(make(1), x[:10], y[:10], keep_steps=keep_steps)
    rss_before = resident_mb()
    tracemalloc.start()
    start = time.perf_counter()
    with RssSampler() as rss:
        result = train(make(epochs), x, y, keep_steps=keep_steps)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"epochs": epochs, "keep_steps": keep_steps, "steps": 10_000 * epochs, "seconds": seconds,
                      "tracemalloc_peak_mb": peak / 1e6, "rss_before_mb": rss_before, "peak_rss_mb": rss.peak,
                      "steps_table_rows": len(result.steps), "epochs_table_rows": len(result.epochs),
                      "a": result.params["a"]}))


def measure_memory(epoch_counts: list[int]) -> list[dict]:
    runs = [(n, False) for n in epoch_counts] + [(epoch_counts[0], True)]
    out = []
    for epochs, keep in runs:
        child = subprocess.run([sys.executable, __file__, "--memory-child", str(epochs), str(keep)],
                               check=True, capture_output=True, text=True)
        out.append(json.loads(child.stdout.strip().splitlines()[-1]))
    return out


def print_memory_table(runs: list[dict]) -> None:
    print("\nMemory of train(...) on 10,000 rows (linear, pytorch SGD), each in a fresh process\n")
    head = f"{'epochs':>7s} {'keep_steps':>10s} {'row steps':>11s} {'seconds':>8s} {'tracemalloc peak':>17s}" \
           f" {'peak RSS':>9s} {'RSS before':>11s} {'steps rows':>11s} {'epochs rows':>12s}"
    print(head)
    print("-" * len(head))
    for r in runs:
        print(f"{r['epochs']:7d} {str(r['keep_steps']):>10s} {r['steps']:11,d} {r['seconds']:8.2f}"
              f" {r['tracemalloc_peak_mb']:14.2f} MB {r['peak_rss_mb']:6.0f} MB {r['rss_before_mb']:8.0f} MB"
              f" {r['steps_table_rows']:11,d} {r['epochs_table_rows']:12,d}")
    short, long = runs[0], runs[1]
    growth = (long["tracemalloc_peak_mb"] - short["tracemalloc_peak_mb"]) * 1e6
    extra_rows = long["epochs_table_rows"] - short["epochs_table_rows"]
    print(f"\n{long['steps'] - short['steps']:,} more steps add {growth / 1e6:.2f} MB to the Python-heap peak:"
          f" {growth / max(extra_rows, 1):.0f} bytes per extra epochs-table row, {growth / (long['steps'] - short['steps']):.3f}"
          " bytes per extra step")
    for r in runs:
        grew = r["peak_rss_mb"] - r["rss_before_mb"]
        print(f"  {r['epochs']} epochs, keep_steps={r['keep_steps']}: RSS peaked {grew:.1f} MB above its level before"
              f" the call ({r['rss_before_mb']:.0f} MB after imports and a warm-up call; sampled every ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: a smoke run")
    parser.add_argument("--memory-child", nargs=2, metavar=("EPOCHS", "KEEP_STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1] == "True")
        return
    sizes = Sizes(2_000, 20, 20, 1) if args.quick else Sizes(40_000, 200, 150, 3)
    print(f"steps: single {len(WORKBOOK_X) * sizes.single_epochs:,}, sweep {SWEEP_SIZE} x "
          f"{len(WORKBOOK_X) * sizes.sweep_epochs:,}, torch loop {len(WORKBOOK_X) * sizes.torch_epochs:,}")
    with tempfile.TemporaryDirectory() as workdir:
        lib = build_c_loop(Path(workdir))
        results = [measure(problem, lib, sizes) for problem in PROBLEMS]
    print_speed_table(results)
    print_memory_table(measure_memory([10, 100] if args.quick else [10, 1000]))


if __name__ == "__main__":
    main()
