"""One-off check (not a test): the generated training loop gives the same bits as main's.

Runs a broad set of loop structures (every optimizer variant x every model, batch sizes,
gradient kinds, losses, a 600-row full batch, the graddesc macros, a sweep) through the
compiled loop and the public API, and either saves every output array (``--save out.npz``) or
compares them with a saved file by raw bits (``--compare out.npz``). Run it once on main's code
and once on this branch's:

    git archive 08f0c94 | tar -x -C /tmp/main-src
    PYTHONPATH=/tmp/main-src python bench/loop_bits.py --save /tmp/main-bits.npz
    PYTHONPATH=$PWD python bench/loop_bits.py --compare /tmp/main-bits.npz [--backend numba]

The kernel is found under main's name (`engine.kernel.load_kernel`) or this branch's
(`engine.loop.backend.load_kernel`), so the same script runs on both trees.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

XV = np.array([0.0, -3.0, 2.5, 0.0, 7.0, -1.0, 4.0, -0.5, 9.0, 1.0, -6.0])
YV = 2.0 * XV + 3.0 + np.array([0.0, 0.1, -0.2, 0.0, 0.3, -0.1, 0.0, 0.05, -0.4, 0.2, 0.0])
X2 = np.column_stack([XV, XV * XV - 4.0])

MODELS = [("linear", XV, {}), ("linear", X2, {}), ("two_linear", XV, {}), ("two_relu", XV, {}),
          ("mlp", X2, {"hidden": 3})]
OPTIMIZERS = [
    dict(flavour="graddesc", optimizer=o) for o in ("sgd", "momentum", "rmsprop", "adam", "eve", "adagrad",
                                                   "adagrad_ann", "adam_ann")
] + [
    dict(flavour="pytorch", optimizer="sgd"),
    dict(flavour="pytorch", optimizer="sgd", weight_decay=0.01),
    dict(flavour="pytorch", optimizer="momentum", momentum=0.9),
    dict(flavour="pytorch", optimizer="momentum", momentum=0.9, dampening=0.3, weight_decay=0.02),
    dict(flavour="pytorch", optimizer="nesterov", momentum=0.8),
    dict(flavour="pytorch", optimizer="nesterov", momentum=0.8, weight_decay=0.01),
    dict(flavour="pytorch", optimizer="adagrad", lr_decay=0.05, initial_accumulator_value=0.1),
    dict(flavour="pytorch", optimizer="adagrad", weight_decay=0.01),
    dict(flavour="pytorch", optimizer="rmsprop"),
    dict(flavour="pytorch", optimizer="rmsprop", centered=True),
    dict(flavour="pytorch", optimizer="rmsprop", momentum=0.5),
    dict(flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5, weight_decay=0.01),
    dict(flavour="pytorch", optimizer="adam"),
    dict(flavour="pytorch", optimizer="adam", weight_decay=0.01, amsgrad=True),
    dict(flavour="pytorch", optimizer="adamw"),
    dict(flavour="pytorch", optimizer="adamw", weight_decay=0.05, amsgrad=True),
    dict(flavour="fastai", optimizer="sgd", weight_decay=0.0),
    dict(flavour="fastai", optimizer="sgd", weight_decay=0.01, decouple_wd=False),
    dict(flavour="fastai", optimizer="momentum", momentum=0.9, weight_decay=0.01),
    dict(flavour="fastai", optimizer="rmsprop", momentum=0.0),
    dict(flavour="fastai", optimizer="rmsprop", momentum=0.9, weight_decay=0.01, decouple_wd=False),
    dict(flavour="fastai", optimizer="adam"),
    dict(flavour="fastai", optimizer="adam", weight_decay=0.01),
]
BATCHES = [1, 4, 7, "all"]
GRADIENTS = [("analytic", "forward"), ("numeric", "forward"), ("both", "central"), ("numeric", "central"),
             ("both", "forward")]


def cases():
    """(label, settings, x, y): every optimizer with every model, batch/gradient/loss rotating,
    and a second pass with the rotation shifted so each optimizer meets more combinations."""
    out = []
    for shift in (0, 1):
        for i, opt in enumerate(OPTIMIZERS):
            for j, (model, x, extra) in enumerate(MODELS):
                batch = 1 if opt["flavour"] == "graddesc" else BATCHES[(i + j + shift) % len(BATCHES)]
                gradient, method = GRADIENTS[(2 * i + j + 3 * shift) % len(GRADIENTS)]
                loss = "absolute" if (i + 3 * j + shift) % 4 == 0 else "squared"
                lr = 0.01 if opt["flavour"] != "graddesc" else (1e-3 if opt["optimizer"] in ("sgd", "momentum") else 0.05)
                s = dict(opt, model=model, batch_size=batch, gradient=gradient, grad_method=method, loss=loss,
                         lr=lr, **extra)
                out.append(("-".join(map(str, s.values())) + f"-{x.ndim}d", s, x, YV))
    rng = np.random.default_rng(3)
    x = rng.normal(size=600) * 10.0 ** rng.uniform(-3, 3, size=600)
    out.append(("full-batch-600", dict(flavour="pytorch", optimizer="sgd", batch_size="all", lr=1e-9), x,
                2.0 * x + 1.0))
    out.append(("mlp-20", dict(flavour="pytorch", optimizer="adam", model="mlp", hidden=20, batch_size=4, lr=0.01),
                X2, YV))
    return out


def load_kernel(spec, which):
    try:
        from sheetsync.engine.loop.backend import load_kernel as load
    except ImportError:
        from sheetsync.engine.kernel import load_kernel as load
    return load(spec, which)


def kernel_outputs(settings, x, y, which, n_epochs=3, record=True, shuffle_rows=2):
    from sheetsync import Experiment
    from sheetsync.engine.train import pack, prepare, reset_state

    job = prepare(Experiment(**settings), x, y)
    spec = job.spec
    P, S, H, T = pack(job, reset_state(job))
    lr_col, bound_col = spec.hyper.index("lr"), spec.hyper.index("divergence_bound")
    P, S, T, H = (np.repeat(a, 4, axis=0) for a in (P, S, T, H))
    H[1, lr_col] *= 0.5
    H[2, lr_col] = 1e30
    H[3, bound_col] = 1.05
    rng = np.random.default_rng(7)
    P = P + rng.uniform(-0.5, 0.5, size=P.shape)
    n = len(y)
    order = np.stack([rng.permutation(n) for _ in range(shuffle_rows)]).astype(np.int64)
    fn = load_kernel(spec, which)
    R = np.full((4, n_epochs * n if record else 0, len(spec.step_columns())), -7.25)
    EPO = np.full((4, n_epochs, len(spec.epoch_columns())), -7.25)
    DIV = np.zeros((4, 5), dtype=np.int64)
    fn(job.X, job.Y, order, P, S, H, T, n_epochs, record, R, EPO, DIV)
    return {"P": P, "S": S, "T": T, "R": R, "EPO": EPO, "DIV": DIV}


def api_outputs():
    """train() with the graddesc macros, and a sweep: every table column as float64."""
    from sheetsync import Experiment, sweep, train
    from sheetsync.demo import X, Y

    out = {}

    def put(label, r):
        for table in ("steps", "epochs"):
            df = getattr(r, table)
            for c in df.columns:
                v = df[c].to_numpy()
                if v.dtype.kind in "fiub":
                    out[f"api/{label}/{table}/{c}"] = v.astype(np.float64)
        out[f"api/{label}/params"] = np.array([r.params[q] for q in sorted(r.params)])

    for o in ("sgd", "momentum", "rmsprop", "adam", "adam_ann", "adagrad", "eve", "adagrad_ann"):
        put(f"graddesc-{o}", train(Experiment(flavour="graddesc", optimizer=o, epochs=4), X, Y))
    exps = [Experiment(flavour="pytorch", optimizer="adam", lr=lr, epochs=3, model="two_relu", init={"b": -0.5})
            for lr in (0.001, 0.01, 0.1, 1e12)]
    exps += [Experiment(flavour="fastai", optimizer="sgd", momentum=0.9, lr=lr, epochs=3, batch_size=4)
             for lr in (0.01, 0.2)]
    exps += [Experiment(flavour="pytorch", optimizer="sgd", lr=0.01, epochs=3, shuffle=True, seed=5)]
    for k, r in enumerate(sweep(exps, XV, YV, keep_steps=True)):
        put(f"sweep-{k}", r)
    return out


def collect(which: str, subset: int | None) -> dict[str, np.ndarray]:
    out = {}
    chosen = cases()
    if subset:
        chosen = chosen[::max(1, len(chosen) // subset)]
    for label, settings, x, y in chosen:
        for tag, kw in (("rec", {}), ("norec", dict(n_epochs=2, record=False, shuffle_rows=1))):
            for name, a in kernel_outputs(settings, x, y, which, **kw).items():
                out[f"kernel/{label}/{tag}/{name}"] = a
    out.update(api_outputs())
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--save")
    parser.add_argument("--compare")
    parser.add_argument("--backend", default="c")
    parser.add_argument("--subset", type=int, help="only about this many kernel structures (numba is slow to compile)")
    args = parser.parse_args()
    import os

    os.environ["SHEETSYNC_KERNEL"] = args.backend
    got = collect(args.backend, args.subset)
    if args.save:
        np.savez_compressed(args.save, **got)
        print(f"saved {len(got)} arrays to {args.save}")
    if args.compare:
        ref = np.load(args.compare)
        missing = [k for k in got if k not in ref.files]
        differ = [k for k in got if k in ref.files and not same_bits(got[k], ref[k])]
        n_values = sum(got[k].size for k in got)
        print(f"{len(got)} arrays ({n_values:,} values) compared by raw bits with {args.compare} "
              f"[{args.backend}]: {len(differ)} differ, {len(missing)} missing")
        for k in (differ + missing)[:20]:
            print("  ", k)
        sys.exit(1 if differ or missing else 0)


if __name__ == "__main__":
    main()
