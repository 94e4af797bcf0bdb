"""Reference trajectories computed the way a PyTorch user would: autograd plus a real optimizer.

Each sheetsync model is re-written here as a plain torch loss over separate scalar parameter
tensors (one 0-d float64 tensor per named parameter), and trained with the ordinary loop

    opt.zero_grad(); loss = batch_loss(...); loss.backward(); opt.step()

over rows in order, `batch_size` rows per step (the last batch of an epoch may be shorter), the
batch loss being the mean of the rows' losses. `trajectory(...)` returns the parameters after
every step, which the engine tests compare with sheetsync's `new <p>` columns.

Nothing here imports sheetsync, so `make_fastai_reference.py` can reuse it from a separate
virtualenv. Torch runs in float64 on the CPU (its single-tensor optimizer code path, the one
torch picks by default for CPU tensors).

Try it:  python tests/reference/torch_runs.py      (prints a short SGD and Adam trajectory)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

MODELS = ("linear", "two_linear", "two_relu", "mlp")


# ---------------------------------------------------------------------------------------------
# Models: parameter names and forward passes, written as a user would write them in torch.


def param_names(model: str, n_inputs: int = 1, hidden: int = 2) -> list[str]:
    """sheetsync's parameter names for a model (see sheetsync's docs; compared by name)."""
    if model == "linear":
        slopes = ["a"] if n_inputs == 1 else [f"a{i}" for i in range(1, n_inputs + 1)]
        return slopes + ["b"]
    if model in ("two_linear", "two_relu"):
        return ["a", "b", "c", "d"]
    if model == "mlp":
        names = [f"a{h}_{i}" for h in range(1, hidden + 1) for i in range(1, n_inputs + 1)]
        names += [f"b{h}" for h in range(1, hidden + 1)]
        names += [f"c{h}" for h in range(1, hidden + 1)]
        return names + ["d"]
    raise ValueError(f"unknown model {model!r}")


def forward(model: str, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Predictions for a batch. `x` has shape (rows,) for one input or (rows, k) for k inputs."""
    columns = [x] if x.ndim == 1 else [x[:, i] for i in range(x.shape[1])]
    if model == "linear":
        if len(columns) == 1:
            return p["a"] * columns[0] + p["b"]
        return _weighted_sum([p[f"a{i}"] for i in range(1, len(columns) + 1)], columns) + p["b"]
    if model == "two_linear":
        return p["c"] * (p["a"] * columns[0] + p["b"]) + p["d"]
    if model == "two_relu":
        return p["c"] * torch.relu(p["a"] * columns[0] + p["b"]) + p["d"]
    if model == "mlp":
        return _mlp_forward(p, columns)
    raise ValueError(f"unknown model {model!r}")


def _mlp_forward(p: dict[str, torch.Tensor], columns: list[torch.Tensor]) -> torch.Tensor:
    """a{h}_{i}: input i -> hidden unit h; b{h}: its bias; c{h}: hidden h -> output; d: output bias."""
    hidden = sum(1 for name in p if name.startswith("c"))
    units = range(1, hidden + 1)
    relus = [torch.relu(_weighted_sum([p[f"a{h}_{i}"] for i in range(1, len(columns) + 1)], columns)
                        + p[f"b{h}"]) for h in units]
    return _weighted_sum([p[f"c{h}"] for h in units], relus) + p["d"]


def _weighted_sum(weights: list[torch.Tensor], terms: list[torch.Tensor]) -> torch.Tensor:
    """w1*t1 + w2*t2 + ... summed left to right, as written by hand."""
    total = weights[0] * terms[0]
    for w, t in zip(weights[1:], terms[1:]):
        total = total + w * t
    return total


def batch_loss(model: str, p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
               loss: str = "squared") -> torch.Tensor:
    """The mean over the batch of each row's loss: (pred - y)^2 or |pred - y|."""
    err = forward(model, p, xb) - yb
    per_row = err ** 2 if loss == "squared" else err.abs()
    return per_row.mean()


# ---------------------------------------------------------------------------------------------
# Optimizers: sheetsync's pytorch-flavour settings -> the torch.optim constructor call.


def torch_optimizer(optimizer: str, params: Sequence[torch.Tensor], hp: dict) -> torch.optim.Optimizer:
    """`torch.optim.<X>(params, ...)` from sheetsync setting names; settings not in `hp` take
    torch's own keyword defaults (so a test can also check that sheetsync's defaults are torch's)."""
    pick = lambda *names: {n: hp[n] for n in names if n in hp}  # noqa: E731
    lr = {"lr": hp["lr"]} if "lr" in hp else {}
    if optimizer in ("sgd", "momentum", "nesterov"):
        kw = pick("momentum", "dampening", "weight_decay", "nesterov")
        if optimizer in ("momentum", "nesterov"):
            kw.setdefault("momentum", 0.9)
        if optimizer == "nesterov":
            kw["nesterov"] = True
        return torch.optim.SGD(params, **lr, **kw)
    if optimizer == "adagrad":
        return torch.optim.Adagrad(params, **lr, **pick("lr_decay", "weight_decay",
                                                       "initial_accumulator_value", "eps"))
    if optimizer == "rmsprop":
        return torch.optim.RMSprop(params, **lr, **pick("alpha", "eps", "weight_decay", "momentum",
                                                       "centered"))
    if optimizer in ("adam", "adamw"):
        kw = pick("eps", "weight_decay", "amsgrad")
        if "beta1" in hp or "beta2" in hp:
            kw["betas"] = (hp.get("beta1", 0.9), hp.get("beta2", 0.999))
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        return cls(params, **lr, **kw)
    raise ValueError(f"no torch optimizer for {optimizer!r}")


# ---------------------------------------------------------------------------------------------
# The training loop.

OptimizerFactory = Callable[[list[torch.Tensor]], object]  # anything with zero_grad() and step()


def batches(n_rows: int, batch_size: int) -> list[slice]:
    """Rows in order, `batch_size` at a time (0 = all rows); the last batch may be shorter."""
    size = n_rows if batch_size in (0, None) else batch_size
    return [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


def trajectory(model: str, init: dict[str, float], x: np.ndarray, y: np.ndarray, make_optimizer:
               OptimizerFactory, *, batch_size: int = 1, epochs: int = 1, loss: str = "squared",
               names: Sequence[str] | None = None) -> np.ndarray:
    """Parameters after every step, shape (steps, len(names)), columns in `names` order."""
    names = list(names or init)
    params = {n: torch.tensor(float(init[n]), requires_grad=True) for n in names}
    opt = make_optimizer([params[n] for n in names])
    xt, yt = torch.as_tensor(np.asarray(x, dtype=np.float64)), torch.as_tensor(np.asarray(y, dtype=np.float64))
    rows = []
    for _ in range(epochs):
        for batch in batches(len(yt), batch_size):
            opt.zero_grad()
            batch_loss(model, params, xt[batch], yt[batch], loss).backward()
            opt.step()
            rows.append([params[n].item() for n in names])
    return np.array(rows, dtype=np.float64)


def torch_trajectory(model: str, optimizer: str, hp: dict, init: dict[str, float], x: np.ndarray,
                     y: np.ndarray, **loop) -> np.ndarray:
    """`trajectory` with `torch.optim` built from sheetsync setting names (see torch_optimizer)."""
    return trajectory(model, init, x, y, lambda ps: torch_optimizer(optimizer, ps, hp), **loop)


if __name__ == "__main__":
    xs = np.array([14.0, 86, 28, 51, 28])
    ys = 2 * xs + 30
    start = {"a": 1.0, "b": 1.0}
    print("sgd  ", torch_trajectory("linear", "sgd", {"lr": 1e-4}, start, xs, ys)[-1])
    print("adam ", torch_trajectory("linear", "adam", {"lr": 0.1}, start, xs, ys, epochs=3)[-1])
