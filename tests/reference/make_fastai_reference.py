"""Generate tests/reference/fastai_reference.json: parameter trajectories from the real fastai.optimizer.

What it runs. fastai's own `SGD`, `SGD(mom)`, `RMSProp` (with and without mom), and `Adam`
(defaults, custom mom/sqr_mom/eps/wd, and `decouple_wd=False`), imported from
`fastai.optimizer` 2.8.12, unmodified, on every sheetsync model (linear with 1 and 2 inputs,
two_linear, two_relu, mlp with 2 inputs and 3 hidden ReLU units) on fixed seeded data, per row
(batch_size 1) for all models and in mini-batches of 4 for two_relu and mlp, 200+
steps each. The loop is the plain one in torch_runs.py (zero_grad, loss.backward(), opt.step(),
the batch loss the mean of the rows' losses), in float64 on the CPU.

The JSON holds, per problem: the model, data, start values, the hyperparameters in sheetsync
setting names (`flavour: fastai`, `optimizer`, `lr`, `momentum`, `alpha`, `beta1`, `beta2`, `eps`,
`weight_decay`, `decouple_wd`), the literal fastai call, any argument fastai accepted but did not
use (`fastai_ignored`: fastai 2.8.12's `RMSProp` never passes its `eps` on, so 1e-8 is used
whatever is given), the batch size and epochs, and the
parameters after every step (JSON floats are written with Python's repr, so they round-trip
exactly). tests/engine/test_fastai_exact.py compares sheetsync with it.

How it was made. fastai 2.8.12 declares torchvision, which does not install cleanly on these
machines, so fastai is installed without its declared dependencies into a throw-away virtualenv
that sees the system-wide torch 2.13.0+cpu. `fastai.optimizer` imports fastai.imports, which
needs matplotlib, scipy, pillow, plum-dispatch (<2.10, as fastai pins) and fasttransform, and
fastprogress (1.0.3: 1.1.x needs python-fasthtml). Nothing in the `fastai.optimizer` import chain
imports torchvision, so no stub is needed; the script checks that and records it. The commands:

    python -m venv --system-site-packages /tmp/fastai-venv
    /tmp/fastai-venv/bin/pip install matplotlib scipy pillow "plum-dispatch<2.10"
    /tmp/fastai-venv/bin/pip install --no-deps fastai==2.8.12 fastcore==2.2.41 \
        fastprogress==1.0.3 fasttransform==0.0.5
    /tmp/fastai-venv/bin/python tests/reference/make_fastai_reference.py

(run from the repository root; versions used: Python 3.11.7, torch 2.13.0+cpu, numpy 2.4.6,
fastai 2.8.12, fastcore 2.2.41; the JSON's "made_with" records them). Rerunning it rewrites the
JSON with identical numbers.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from torch_runs import param_names, torch, trajectory  # noqa: E402  (sets float64 as torch's default)

import fastai  # noqa: E402
import fastai.optimizer as fo  # noqa: E402

OUTPUT = HERE / "fastai_reference.json"
N_ROWS = 25
MIN_STEPS = 200


@dataclass(frozen=True)
class Problem:
    name: str
    model: str
    n_inputs: int
    hidden: int = 3

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(f"fastai {self.name}".encode()))
        x = rng.uniform(-2.0, 2.0, size=(N_ROWS, self.n_inputs))
        y = 1.5 * x.sum(axis=1) - 0.5 * np.abs(x[:, 0]) + 0.7 + rng.normal(0, 0.3, N_ROWS)
        return (x[:, 0] if self.n_inputs == 1 else x), y

    def names(self) -> list[str]:
        return param_names(self.model, self.n_inputs, self.hidden)


PROBLEMS = [
    Problem("linear", "linear", 1),
    Problem("linear2", "linear", 2),
    Problem("two_linear", "two_linear", 1),
    Problem("two_relu", "two_relu", 1),
    Problem("mlp3", "mlp", 2),
]
MINI_BATCHED = ("two_relu", "mlp3")


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


# Each configuration: rng -> (sheetsync settings, fastai constructor, fastai keyword arguments).
def sgd(rng):
    lr = log_uniform(rng, 1e-3, 2e-2)
    return {"optimizer": "sgd", "lr": lr}, "SGD", {"lr": lr}


def sgd_mom(rng):
    lr, mom = log_uniform(rng, 1e-3, 2e-2), float(rng.uniform(0.5, 0.9))
    return {"optimizer": "sgd", "lr": lr, "momentum": mom}, "SGD", {"lr": lr, "mom": mom}


def momentum_by_name(rng):
    lr = log_uniform(rng, 1e-3, 1e-2)
    return {"optimizer": "momentum", "lr": lr}, "SGD", {"lr": lr, "mom": 0.9}


def sgd_decoupled_wd(rng):
    lr, wd = log_uniform(rng, 1e-3, 2e-2), log_uniform(rng, 1e-3, 0.1)
    return {"optimizer": "sgd", "lr": lr, "weight_decay": wd}, "SGD", {"lr": lr, "wd": wd}


def sgd_mom_l2(rng):
    lr, mom, wd = log_uniform(rng, 1e-3, 2e-2), float(rng.uniform(0.5, 0.9)), log_uniform(rng, 1e-3, 0.1)
    settings = {"optimizer": "sgd", "lr": lr, "momentum": mom, "weight_decay": wd, "decouple_wd": False}
    return settings, "SGD", {"lr": lr, "mom": mom, "wd": wd, "decouple_wd": False}


def rmsprop(rng):
    lr, alpha = log_uniform(rng, 1e-4, 3e-3), float(rng.uniform(0.8, 0.999))
    return {"optimizer": "rmsprop", "lr": lr, "alpha": alpha}, "RMSProp", {"lr": lr, "sqr_mom": alpha}


def rmsprop_mom(rng):
    lr, alpha, mom = log_uniform(rng, 1e-4, 2e-3), float(rng.uniform(0.8, 0.999)), float(rng.uniform(0.3, 0.9))
    settings = {"optimizer": "rmsprop", "lr": lr, "alpha": alpha, "momentum": mom}
    return settings, "RMSProp", {"lr": lr, "sqr_mom": alpha, "mom": mom}


def rmsprop_eps_wd(rng):
    lr, alpha = log_uniform(rng, 1e-4, 3e-3), float(rng.uniform(0.8, 0.999))
    eps, wd = log_uniform(rng, 1e-10, 1e-5), log_uniform(rng, 1e-3, 0.1)
    settings = {"optimizer": "rmsprop", "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": wd}
    return settings, "RMSProp", {"lr": lr, "sqr_mom": alpha, "eps": eps, "wd": wd}


def adam_defaults(rng):
    lr = log_uniform(rng, 1e-3, 3e-2)
    return {"optimizer": "adam", "lr": lr}, "Adam", {"lr": lr}


def adam_custom(rng):
    lr, mom, sqr_mom = log_uniform(rng, 1e-3, 3e-2), float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.9, 0.9999))
    eps, wd = log_uniform(rng, 1e-10, 1e-4), log_uniform(rng, 1e-3, 0.1)
    settings = {"optimizer": "adam", "lr": lr, "beta1": mom, "beta2": sqr_mom, "eps": eps, "weight_decay": wd}
    return settings, "Adam", {"lr": lr, "mom": mom, "sqr_mom": sqr_mom, "eps": eps, "wd": wd}


def adam_l2(rng):
    lr, wd = log_uniform(rng, 1e-3, 3e-2), log_uniform(rng, 1e-3, 0.1)
    settings = {"optimizer": "adam", "lr": lr, "weight_decay": wd, "decouple_wd": False}
    return settings, "Adam", {"lr": lr, "wd": wd, "decouple_wd": False}


CONFIGS = [sgd, sgd_mom, momentum_by_name, sgd_decoupled_wd, sgd_mom_l2, rmsprop, rmsprop_mom, rmsprop_eps_wd,
           adam_defaults, adam_custom, adam_l2]


def start_values(problem: Problem, rng: np.random.Generator) -> dict[str, float]:
    """Random starting values; biases start positive so ReLU units begin alive."""
    return {n: float(rng.uniform(0.2, 1.0) if n[0] == "b" else rng.normal(0, 0.8)) for n in problem.names()}


def fastai_call(constructor: str, kwargs: dict) -> str:
    return f"fastai.optimizer.{constructor}(params, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def run_fastai(problem: Problem, constructor: str, kwargs: dict, init: dict, batch_size: int, epochs: int):
    x, y = problem.data()
    make = lambda ps: getattr(fo, constructor)(ps, **kwargs)  # noqa: E731
    return trajectory(problem.model, init, x, y, make, batch_size=batch_size, epochs=epochs, names=problem.names())


def make_problem(config, problem: Problem, batch_size: int) -> dict:
    """One reference problem; lr shrinks (by 4, recorded) until fastai's run stays in a sane range."""
    rng = np.random.default_rng(zlib.crc32(f"{config.__name__}-{problem.name}-{batch_size}".encode()))
    settings, constructor, kwargs = config(rng)
    init = start_values(problem, rng)
    epochs = math.ceil(MIN_STEPS / math.ceil(N_ROWS / batch_size))
    for _ in range(12):
        params = run_fastai(problem, constructor, kwargs, init, batch_size, epochs)
        if np.all(np.isfinite(params)) and np.max(np.abs(params)) < 1e3:
            break
        settings["lr"] = kwargs["lr"] = kwargs["lr"] / 4
    else:
        raise RuntimeError(f"no stable lr for {config.__name__} on {problem.name}")
    x, y = problem.data()
    return {
        "id": f"{config.__name__}-{problem.name}-bs{batch_size}",
        "fastai_call": fastai_call(constructor, kwargs),
        "fastai_ignored": ignored_arguments(constructor, kwargs),
        "model": problem.model,
        "hidden": problem.hidden if problem.model == "mlp" else None,
        "loss": "squared",
        "x": x.tolist(),
        "y": y.tolist(),
        "init": init,
        "settings": {"flavour": "fastai", **settings},
        "batch_size": batch_size,
        "epochs": epochs,
        "param_names": problem.names(),
        "trajectory": params.tolist(),
    }


def ignored_arguments(constructor: str, kwargs: dict) -> dict:
    """Arguments the fastai constructor accepted but did not put into its hyper-parameters, with
    the value it used instead (fastai 2.8.12's RMSProp drops `eps` and always uses 1e-8)."""
    hypers = getattr(fo, constructor)([torch.zeros(())], **kwargs).hypers[0]
    return {k: {"given": v, "used": hypers[k] if k in hypers else None}
            for k, v in kwargs.items() if k != "decouple_wd" and hypers.get(k) != v}


def made_with() -> dict:
    import fastcore

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "fastai": fastai.__version__,
        "fastcore": fastcore.__version__,
        "fastai.optimizer file": str(Path(fo.__file__).relative_to(Path(fastai.__file__).parent.parent)),
        "torchvision imported": any(m == "torchvision" or m.startswith("torchvision.") for m in sys.modules),
        "dtype": str(torch.get_default_dtype()),
        "command": "/tmp/fastai-venv/bin/python tests/reference/make_fastai_reference.py (see its docstring)",
    }


def main() -> None:
    assert not made_with()["torchvision imported"], "torchvision got imported; this script expects no stub"
    problems = [make_problem(config, problem, batch)
                for config in CONFIGS for problem in PROBLEMS
                for batch in ((1, 4) if problem.name in MINI_BATCHED else (1,))]
    document = {"made_with": made_with(), "problems": problems}
    OUTPUT.write_text(json.dumps(document, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {len(problems)} problems, {OUTPUT.stat().st_size / 1e6:.2f} MB, to {OUTPUT}")


if __name__ == "__main__":
    main()
