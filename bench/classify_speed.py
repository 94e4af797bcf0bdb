"""Benchmark (not a test): classifier training speed next to a torch per-row loop and C.

For `logistic` (binary cross-entropy) and `softmax` (K = 3, cross-entropy), two inputs, 200
seeded rows, per-row SGD in the pytorch flavour, in one run:

- sheetsync, one experiment: `train(experiment, x, y, keep_steps=False)`;
- sheetsync, a sweep of 1,000 experiments (1,000 learning rates): `sweep(experiments, x, y)`;
- (a) torch: the loop a PyTorch user writes: nn.Linear(2, 1 or 3) in float64, the torch loss on
  one row, zero_grad, backward, torch.optim.SGD step;
- (b) C: bench/c_classify.c, the same arithmetic, compiled now with `cc -O2 -ffp-contract=off`
  and called through ctypes, one experiment and 1,000.

It prints steps per second and the ratios issue 14 asks for: sheetsync single vs the torch loop
(target >= 20x) and the C loop vs sheetsync's sweep per experiment-step (target within 10x); and
checks the numbers: C's final parameters against every experiment of sheetsync's sweep, and the
torch loop's against sheetsync's single run.

Run:  python bench/classify_speed.py           (a minute or two)
      python bench/classify_speed.py --quick   (fewer steps)
Timings are the best of 3 after a warm-up call (the loop compiles, or loads its cache, once).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sheetsync import Experiment  # noqa: E402
from sheetsync.engine import sweep, train  # noqa: E402
from yardstick import best_of, compile_c  # noqa: E402

N_ROWS = 200
SWEEP_SIZE = 1000
rng = np.random.default_rng(14)
X = np.ascontiguousarray(rng.uniform(-2, 2, (N_ROWS, 2)))
SCORE = X @ np.array([1.0, -0.5]) + rng.normal(0, 0.5, N_ROWS)
Y = {"logistic": (SCORE > 0).astype(float), "softmax": np.digitize(SCORE, [-0.7, 0.7]).astype(float)}
NAMES = {"logistic": ["a1", "a2", "b"], "softmax": ["a1_1", "a1_2", "a2_1", "a2_2", "a3_1", "a3_2", "b1", "b2", "b3"]}
LR = 0.05


def init(model: str) -> dict[str, float]:
    return {n: 0.1 * (i % 3) - 0.1 for i, n in enumerate(NAMES[model])}


def experiment(model: str, lr: float, epochs: int) -> Experiment:
    return Experiment(f"{model}-{lr:.6g}", model=model, flavour="pytorch", optimizer="sgd", lr=lr, epochs=epochs,
                      init=init(model))


def torch_loop(model: str, epochs: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    torch.set_default_dtype(torch.float64)
    lin = torch.nn.Linear(2, 1 if model == "logistic" else 3)
    with torch.no_grad():
        values = init(model)
        if model == "logistic":
            lin.weight[0, 0], lin.weight[0, 1], lin.bias[0] = values["a1"], values["a2"], values["b"]
        else:
            for k in range(3):
                lin.weight[k, 0], lin.weight[k, 1] = values[f"a{k + 1}_1"], values[f"a{k + 1}_2"]
                lin.bias[k] = values[f"b{k + 1}"]
    opt = torch.optim.SGD(lin.parameters(), lr=LR)
    xs, ys = torch.as_tensor(X), torch.as_tensor(Y[model])
    for _ in range(epochs):
        for i in range(N_ROWS):
            opt.zero_grad()
            out = lin(xs[i:i + 1])
            if model == "logistic":
                loss = F.binary_cross_entropy_with_logits(out[:, 0], ys[i:i + 1])
            else:
                loss = F.cross_entropy(out, ys[i:i + 1].long())
            loss.backward()
            opt.step()
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    return np.concatenate([w.ravel(), b])[None, :]


def build_c(workdir: Path) -> ctypes.CDLL:
    library = workdir / "c_classify.so"
    lib = compile_c(HERE / "c_classify.c", library)
    lib.run.restype = ctypes.c_int64
    dp = ctypes.POINTER(ctypes.c_double)
    lib.run.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, dp, dp, dp, dp]
    return lib


def c_loop(lib, model: str, lrs: np.ndarray, epochs: int) -> np.ndarray:
    lrs = np.ascontiguousarray(lrs, dtype=np.float64)
    params = np.ascontiguousarray(np.tile(np.array(list(init(model).values())), (len(lrs), 1)))
    ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))  # noqa: E731
    y = np.ascontiguousarray(Y[model])
    lib.run(0 if model == "logistic" else 1, len(lrs), N_ROWS, epochs, ptr(X), ptr(y), ptr(lrs), ptr(params))
    return params


def sweep_lrs() -> np.ndarray:
    return np.geomspace(LR / 100, LR, SWEEP_SIZE)


def measure(model: str, lib, single_epochs: int, sweep_epochs: int, torch_epochs: int, repeats: int) -> dict:
    names = NAMES[model]
    t_single, _ = best_of(repeats, lambda: train(experiment(model, LR, single_epochs), X, Y[model], keep_steps=False))
    exps = [experiment(model, lr, sweep_epochs) for lr in sweep_lrs()]
    t_sweep, rs = best_of(repeats, lambda: sweep(exps, X, Y[model], keep_steps=False))
    swept = np.array([[x.params[n] for n in names] for x in rs])
    t_c, c_params = best_of(repeats, lambda: c_loop(lib, model, sweep_lrs(), sweep_epochs))
    torch_loop(model, 1)  # warm-up: torch's first backward pays for its setup
    start = time.perf_counter()
    torch_params = torch_loop(model, torch_epochs)
    t_torch = time.perf_counter() - start
    ours_at_torch = train(experiment(model, LR, torch_epochs), X, Y[model], keep_steps=False)
    ours_t = np.array([[ours_at_torch.params[n] for n in names]])
    steps_single, steps_sweep, steps_torch = single_epochs * N_ROWS, SWEEP_SIZE * sweep_epochs * N_ROWS, torch_epochs * N_ROWS
    return {
        "model": model,
        "single": steps_single / t_single,
        "torch": steps_torch / t_torch,
        "sweep": steps_sweep / t_sweep,
        "c": steps_sweep / t_c,
        "c vs sweep bits": int((c_params == swept).all()),
        "c vs sweep gap": float(np.max(np.abs(c_params - swept) / np.maximum(np.abs(swept), 1e-300))),
        "torch gap": float(np.max(np.abs(torch_params - ours_t) / np.maximum(np.abs(ours_t), 1e-300))),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    single, swept, torch_epochs, repeats = (50, 2, 2, 1) if args.quick else (500, 20, 10, 3)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_c(Path(tmp))
        rows = [measure(m, lib, single, swept, torch_epochs, repeats) for m in ("logistic", "softmax")]
    print(f"{N_ROWS} rows, 2 inputs, per-row SGD (pytorch flavour); steps per second (sweep and C: experiment-steps)")
    print(f"{'model':10} {'sheetsync':>12} {'torch loop':>12} {'ratio':>8} {'sweep x1000':>13} {'C x1000':>12} "
          f"{'C/sweep':>8}  check")
    for r in rows:
        print(f"{r['model']:10} {r['single']:12,.0f} {r['torch']:12,.0f} {r['single'] / r['torch']:7.0f}x "
              f"{r['sweep']:13,.0f} {r['c']:12,.0f} {r['c'] / r['sweep']:7.1f}x  "
              f"C = sweep bit for bit: {bool(r['c vs sweep bits'])} (largest gap {r['c vs sweep gap']:.1e}); "
              f"torch loop vs sheetsync largest relative gap {r['torch gap']:.1e}")
    print("targets: sheetsync single >= 20x the torch loop; C within 10x of sheetsync's sweep")


if __name__ == "__main__":
    main()
