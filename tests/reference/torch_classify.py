"""Classifier reference trajectories, computed the way a PyTorch user writes them: torch modules
(nn.Linear, nn.ReLU) in float64, the torch losses, and a torch.optim step per batch.

- ``logistic``: ``nn.Linear(k, 1)``, loss on its one logit z;
- ``softmax``: ``nn.Linear(k, K)``, ``F.cross_entropy`` on the K logits;
- ``mlp``: ``nn.Linear(k, H)``, ``nn.ReLU``, ``nn.Linear(H, 1 or K)``.

Losses: ``bce`` = ``F.binary_cross_entropy_with_logits``; ``focal`` = torchvision's
``sigmoid_focal_loss`` (torchvision is not installed here; its definition is written out below,
mean-reduced); ``cross_entropy`` = ``F.cross_entropy``; ``squared`` / ``absolute`` =
``F.mse_loss`` / ``F.l1_loss`` of ``sigmoid(z)``. ``log_base="10"`` divides the batch loss by
``math.log(10)``, as a user reproducing the fast.ai sheets' ``LOG`` would.

sheetsync's parameter names map onto the modules' tensors (`slots`): a{k}_{i} is
``weight[k-1, i-1]`` of the (first) Linear, b{k} its ``bias[k-1]``; mlp's c{k}_{h} and d{k} are
the second Linear's. Nothing here imports sheetsync.

Try it:  python tests/reference/torch_classify.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_runs import batches, torch_optimizer  # noqa: E402

torch.set_default_dtype(torch.float64)

LN10 = math.log(10.0)


def focal_loss(z: torch.Tensor, y: torch.Tensor, gamma: float, alpha: float | None) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss(z, y, alpha, gamma, reduction="mean"), alpha None = no
    weighting (torchvision's alpha < 0)."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha is not None:
        alpha_t = alpha * y + (1 - alpha) * (1 - y)
        loss = alpha_t * loss
    return loss.mean()


def batch_loss(out: torch.Tensor, y: torch.Tensor, loss: str, log_base: str = "e", gamma: float = 2.0,
               alpha: float | None = None) -> torch.Tensor:
    if loss == "cross_entropy":
        value = F.cross_entropy(out, y.long())
    else:
        z = out[:, 0]
        if loss == "bce":
            value = F.binary_cross_entropy_with_logits(z, y)
        elif loss == "focal":
            value = focal_loss(z, y, gamma, alpha)
        elif loss == "squared":
            return F.mse_loss(torch.sigmoid(z), y)
        elif loss == "absolute":
            return F.l1_loss(torch.sigmoid(z), y)
        else:
            raise ValueError(loss)
    return value / LN10 if log_base == "10" else value


def build(model: str, n_inputs: int, classes: int = 2, hidden: int = 2, output: str = "sigmoid"):
    """The torch module and sheetsync's parameter name -> (tensor, index) slots."""
    head = {"logistic": "sigmoid", "softmax": "softmax"}.get(model, output)
    k_out = classes if head == "softmax" else 1
    slots: dict[str, tuple[torch.Tensor, tuple[int, int] | int]] = {}
    if model in ("logistic", "softmax"):
        lin = nn.Linear(n_inputs, k_out)
        for k in range(1, k_out + 1):
            for i in range(1, n_inputs + 1):
                if model == "logistic":
                    name = "a" if n_inputs == 1 else f"a{i}"
                else:
                    name = f"a{k}" if n_inputs == 1 else f"a{k}_{i}"
                slots[name] = (lin.weight, (k - 1, i - 1))
            slots["b" if model == "logistic" else f"b{k}"] = (lin.bias, k - 1)
        return lin, slots
    first, second = nn.Linear(n_inputs, hidden), nn.Linear(hidden, k_out)
    for h in range(1, hidden + 1):
        for i in range(1, n_inputs + 1):
            slots[f"a{h}_{i}"] = (first.weight, (h - 1, i - 1))
        slots[f"b{h}"] = (first.bias, h - 1)
    for k in range(1, k_out + 1):
        for h in range(1, hidden + 1):
            slots[f"c{h}" if k_out == 1 else f"c{k}_{h}"] = (second.weight, (k - 1, h - 1))
        slots["d" if k_out == 1 else f"d{k}"] = (second.bias, k - 1)
    return nn.Sequential(first, nn.ReLU(), second), slots


def trajectory(model: str, optimizer: str, hp: dict, init: dict[str, float], x: np.ndarray, y: np.ndarray, *,
               loss: str, names: list[str], batch_size: int = 1, epochs: int = 1, classes: int = 2,
               hidden: int = 2, output: str = "sigmoid", log_base: str = "e", gamma: float = 2.0,
               alpha: float | None = None, make_optimizer=None) -> np.ndarray:
    """Parameters after every step, (steps, len(names)), in `names` order; `make_optimizer(params)`:
    another optimizer than torch.optim's (fastai's)."""
    X = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(len(y), -1))
    Y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    module, slots = build(model, X.shape[1], classes, hidden, output)
    with torch.no_grad():
        for name, value in init.items():
            tensor, index = slots[name]
            tensor[index] = value
    params = list(module.parameters())
    opt = make_optimizer(params) if make_optimizer else torch_optimizer(optimizer, params, hp)
    rows = []
    for _ in range(epochs):
        for batch in batches(len(Y), batch_size):
            opt.zero_grad()
            batch_loss(module(X[batch]), Y[batch], loss, log_base, gamma, alpha).backward()
            opt.step()
            rows.append([float(slots[n][0].detach()[slots[n][1]]) for n in names])
    return np.array(rows, dtype=np.float64)


if __name__ == "__main__":
    xs = np.array([[0.5, -1.0], [1.5, 0.3], [-0.7, 0.2], [0.1, 0.9]])
    ys = np.array([1.0, 1.0, 0.0, 0.0])
    start = {"a1": 0.1, "a2": -0.2, "b": 0.0}
    print(trajectory("logistic", "sgd", {"lr": 0.5}, start, xs, ys, loss="bce", names=list(start), epochs=3)[-1])
