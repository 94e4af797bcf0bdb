"""The `dot_product` model as a PyTorch user writes it, trained by torch.optim (or any optimizer
with `zero_grad()` and `step()`, such as fastai's): the reference the embedding exactness tests
compare sheetsync with.

The model is fastai's `EmbeddingDotBias` (fastai/collab.py) in float64 on the CPU:

    res = (u_weight(users) * i_weight(items)).sum(1) + u_bias(users).squeeze() + i_bias(items).squeeze()
    pred = torch.sigmoid(res) * (high - low) + low        # only with y_range (fastai's sigmoid_range)

with dense `nn.Embedding` tables (sparse=False: every step's gradient is a whole table, zero in
the rows the batch did not touch, so optimizers with state or weight decay move every row each
step) and, with `bias=False`, the same without the two bias tables (the fastai book's
`DotProduct`). The loss is `nn.MSELoss()` (mean over the batch); rows go in order, `batch_size`
at a time (0 = all rows), no shuffling; `opt.zero_grad(); loss.backward(); opt.step()`.

`reference_run(...)` returns a `Reference`: `steps`, a DataFrame with the columns of sheetsync's
`result.steps` for this model (the contract in docs/embeddings.md):

    epoch, step, row, user, item, y, u1..uF, m1..mF, [bu, bm], pred, err, loss,
    de/du1.., de/dm1.., [de/dbu, de/dbm], new u1.., new m1.., [new bu, new bm]

(u.., m.., bu, bm: the row's user's and item's table rows at the start of its step; de/d..: the
row's share of the batch gradient, i.e. the gradient reaching that row's looked-up vectors before
the embedding backward adds the rows into the table gradient; new ..: those table rows after the
step, on every row of the step), plus the whole tables after every step, the step losses, and the
RMSE over all ratings at the end of each epoch. `err` is pred - y, `loss` err**2 (per row).

Nothing here imports sheetsync, so tests/reference/make_fastai_embedding_reference.py can use it
from fastai's throw-away virtualenv.

Try it:  PYTHONPATH=tests/reference python tests/engine/embed_torch.py
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

try:
    from torch_runs import batches, torch_optimizer
except ImportError:  # run as a script from the repository root
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
    from torch_runs import batches, torch_optimizer

torch.set_default_dtype(torch.float64)


@dataclass(frozen=True)
class Start:
    """The tables before the first step: user factors (U, F), item factors (I, F), biases (U,), (I,)
    or None for a model without bias."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray | None = None
    item_bias: np.ndarray | None = None

    @property
    def bias(self) -> bool:
        return self.user_bias is not None


class DotProduct(nn.Module):
    """fastai's EmbeddingDotBias forward, written out (and without the bias tables when bias is off)."""

    def __init__(self, n_users: int, n_items: int, factors: int, bias: bool, y_range=None):
        super().__init__()
        self.y_range = y_range
        self.u_weight, self.i_weight = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        self.u_bias = nn.Embedding(n_users, 1) if bias else None
        self.i_bias = nn.Embedding(n_items, 1) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        res = (self.u_weight(users) * self.i_weight(items)).sum(1)
        if self.u_bias is not None:
            res = res + self.u_bias(users).squeeze() + self.i_bias(items).squeeze()
        if self.y_range is None:
            return res
        return torch.sigmoid(res) * (self.y_range[1] - self.y_range[0]) + self.y_range[0]


def load_start(model: nn.Module, start: Start) -> None:
    """Copy the start tables into a model with fastai's attribute names (ours or fastai's own)."""
    with torch.no_grad():
        model.u_weight.weight.copy_(torch.as_tensor(start.user_factors))
        model.i_weight.weight.copy_(torch.as_tensor(start.item_factors))
        if start.bias:
            model.u_bias.weight.copy_(torch.as_tensor(start.user_bias).reshape(-1, 1))
            model.i_bias.weight.copy_(torch.as_tensor(start.item_bias).reshape(-1, 1))


def tables(model: nn.Module) -> tuple[np.ndarray, ...]:
    """(user factors, item factors[, user bias, item bias]) as numpy copies."""
    out = [model.u_weight.weight.detach().numpy().copy(), model.i_weight.weight.detach().numpy().copy()]
    if getattr(model, "u_bias", None) is not None:
        out += [model.u_bias.weight.detach().numpy()[:, 0].copy(), model.i_bias.weight.detach().numpy()[:, 0].copy()]
    return tuple(out)


def step_columns(factors: int, bias: bool) -> list[str]:
    """The columns of sheetsync's steps table for dot_product (the contract)."""
    fs = range(1, factors + 1)
    slots = [f"u{f}" for f in fs] + [f"m{f}" for f in fs] + (["bu", "bm"] if bias else [])
    return (["epoch", "step", "row", "user", "item", "y"] + slots + ["pred", "err", "loss"]
            + [f"de/d{s}" for s in slots] + [f"new {s}" for s in slots])


@dataclass
class Reference:
    steps: pd.DataFrame
    tables: list[tuple[np.ndarray, ...]] = field(default_factory=list)  # after every step
    step_loss: list[float] = field(default_factory=list)  # the batch's mean loss, per step
    epoch_rmse: list[float] = field(default_factory=list)  # all ratings, params at the epoch's end
    start_rmse: float = float("nan")

    @property
    def final(self) -> tuple[np.ndarray, ...]:
        return self.tables[-1]


def rmse(model: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> float:
    """What Jeremy's sheet's RMSE cell shows: sqrt of the mean squared error over all ratings."""
    with torch.no_grad():
        return float(torch.sqrt(nn.functional.mse_loss(model(X), Y)))


def _slots(tables: tuple[np.ndarray, ...], user: int, item: int) -> list[float]:
    """A rating's entries of the tables: its user's factors, its item's, then the two biases."""
    biases = (tables[2][user], tables[3][item]) if len(tables) == 4 else ()
    return [*tables[0][user], *tables[1][item], *biases]


def _keeper(looked_up: dict, key: str):
    """A forward hook that keeps an embedding's output, and its gradient when one is computed."""
    def hook(_module, _inputs, out):
        if out.requires_grad:
            out.retain_grad()
            looked_up[key] = out
    return hook


def reference_run(x: np.ndarray, y: np.ndarray, start: Start, *, optimizer: str = "sgd", hp: dict | None = None,
                  y_range: tuple[float, float] | None = None, batch_size: int = 1, epochs: int = 1,
                  make_optimizer: Callable[[list[torch.Tensor]], object] | None = None,
                  model: nn.Module | None = None) -> Reference:
    """Train the model from `start` and record every step (see the module docstring).

    x: (n, 2) 0-based (user row, item row); hp: sheetsync setting names without `optimizer`
    (torch_runs.torch_optimizer maps them to torch.optim's keywords); `make_optimizer(params)`:
    another optimizer (fastai's); `model`: another module with fastai's attribute names
    (fastai's own EmbeddingDotBias), else `DotProduct`.
    """
    X = torch.as_tensor(np.asarray(x, dtype=np.int64).reshape(-1, 2))
    Y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    n_users, factors = start.user_factors.shape
    if model is None:
        model = DotProduct(n_users, start.item_factors.shape[0], factors, start.bias, y_range)
    model = model.to(torch.float64)
    load_start(model, start)
    params = list(model.parameters())
    opt = make_optimizer(params) if make_optimizer else torch_optimizer(optimizer, params, dict(hp or {}))

    # The looked-up rows (each embedding's output) keep their gradients: the per-row shares.
    looked_up: dict[str, torch.Tensor] = {}
    lookups = {"u": model.u_weight, "m": model.i_weight}
    if start.bias:
        lookups.update(bu=model.u_bias, bm=model.i_bias)
    for key, module in lookups.items():
        module.register_forward_hook(_keeper(looked_up, key))

    ref = Reference(pd.DataFrame(), start_rmse=rmse(model, X, Y))
    rows: list[list[float]] = []
    step = 0
    for epoch in range(1, epochs + 1):
        for batch in batches(len(Y), batch_size):
            step += 1
            before = tables(model)
            opt.zero_grad()
            pred = model(X[batch])
            loss = nn.MSELoss()(pred, Y[batch])
            loss.backward()
            opt.step()
            after = tables(model)
            ref.tables.append(after)
            ref.step_loss.append(float(loss.detach()))
            grads = {k: v.grad.detach().numpy().reshape(len(pred), -1) for k, v in looked_up.items()}
            p = pred.detach().numpy().reshape(-1)
            for j, r in enumerate(range(batch.start, batch.stop)):
                u, i = int(X[r, 0]), int(X[r, 1])
                err = p[j] - float(Y[r])
                grad = [*grads["u"][j], *grads["m"][j], *((grads["bu"][j][0], grads["bm"][j][0]) if start.bias else ())]
                rows.append([epoch, step, r + 1, u, i, float(Y[r]), *_slots(before, u, i), p[j], err, err * err,
                             *grad, *_slots(after, u, i)])
        ref.epoch_rmse.append(rmse(model, X, Y))
    ref.steps = pd.DataFrame(rows, columns=step_columns(factors, start.bias))
    return ref


def random_ratings(rng: np.random.Generator, n_users: int, n_items: int, n_ratings: int,
                   low: float = 0.5, high: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs in random order, ratings on MovieLens' half-star scale."""
    pairs = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    x = np.stack([pairs // n_items, pairs % n_items], axis=1).astype(np.int64)
    y = rng.integers(int(low * 2), int(high * 2) + 1, size=n_ratings) / 2.0
    return x, y


def random_start(rng: np.random.Generator, n_users: int, n_items: int, factors: int, bias: bool,
                 scale: float = 0.5) -> Start:
    """Start tables large enough that the factors matter from the first step (fastai's std 0.01
    would leave every prediction near the biases for the few steps a test runs)."""
    uf, mf = rng.normal(0, scale, (n_users, factors)), rng.normal(0, scale, (n_items, factors))
    if not bias:
        return Start(uf, mf)
    return Start(uf, mf, rng.normal(0, scale, n_users), rng.normal(0, scale, n_items))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    xs, ys = random_ratings(rng, 4, 3, 6)
    ref = reference_run(xs, ys, random_start(rng, 4, 3, 2, True), optimizer="adam", hp={"lr": 0.05},
                        y_range=(0, 5.5), batch_size=2, epochs=2)
    pd.set_option("display.width", 250)
    print(ref.steps.round(4).to_string())
    print("rmse per epoch", ref.epoch_rmse)


# ---------------------------------------------------------------------------------------------
# Comparing sheetsync's numbers with a Reference (numpy only: the tests that import sheetsync
# call these with its steps table and tables).

RTOL = 1e-12
KEYS = ["epoch", "step", "row", "user", "item", "y"]  # must be equal, not close


def _gap_message(label: str, where: str, ours: float, theirs: float) -> str:
    gap = abs(ours - theirs) / max(abs(theirs), 1e-300)
    return f"{label}: {where}: sheetsync {ours!r} vs reference {theirs!r}, relative gap {gap:.3e}"


def close(ours: np.ndarray, theirs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Within RTOL relative, with tests/engine/exactness.py's zero-crossing allowance: RTOL x the
    largest magnitude the compared quantity takes in the run (a value made by cancelling two of
    that size carries their absolute error). `groups` labels which values are one quantity (one
    user's or one item's entries down a steps column); None: all of them are."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = np.zeros_like(theirs)
    labels = np.zeros(theirs.shape, dtype=np.int64) if groups is None else np.asarray(groups)
    for label in np.unique(labels):
        at = labels == label
        scale[at] = np.max(np.abs(theirs[at]))
    return np.abs(ours - theirs) <= RTOL * np.abs(theirs) + RTOL * scale


def _entity(column: str, steps: pd.DataFrame) -> np.ndarray | None:
    """Whose entry a steps column holds: the row's user (u.., bu), its item (m.., bm), or None."""
    slot = column.split("/d")[-1].split(" ")[-1]  # 'de/du1' -> 'u1', 'new bm' -> 'bm'
    if slot.startswith(("u", "bu")):
        return steps["user"].to_numpy()
    if slot.startswith(("m", "bm")):
        return steps["item"].to_numpy()
    return None


def steps_mismatches(ours: pd.DataFrame, ref: pd.DataFrame, label: str = "") -> list[str]:
    """Every way sheetsync's steps table differs from the reference's (empty: they agree). Rows
    are matched in order; `new ..` columns are compared where sheetsync filled them and must be
    filled at least on each step's last row."""
    problems = []
    missing = [c for c in ref.columns if c not in ours.columns]
    if missing:
        return [f"{label}: steps lacks columns {missing} (has {list(ours.columns)})"]
    if len(ours) != len(ref):
        return [f"{label}: steps has {len(ours)} rows, reference {len(ref)}"]
    for c in KEYS:
        a, b = ours[c].to_numpy(dtype=np.float64), ref[c].to_numpy(dtype=np.float64)
        if not np.array_equal(a, b):
            r = int(np.argmax(a != b))
            problems.append(f"{label}: column {c} differs first at steps row {r}: {a[r]!r} vs {b[r]!r}")
    last_of_step = ref["step"].ne(ref["step"].shift(-1)).to_numpy()  # steps are numbered on across epochs
    for c in ref.columns[len(KEYS):]:
        a, b = ours[c].to_numpy(dtype=np.float64), ref[c].to_numpy(dtype=np.float64)
        compared = np.ones(len(a), dtype=bool)
        if c.startswith("new "):
            if np.isnan(a[last_of_step]).any():
                problems.append(f"{label}: column {c} is empty on the last row of a step")
            compared = ~np.isnan(a)
        bad = compared & ~close(a, b, _entity(c, ref))
        if bad.any():
            r = int(np.argmax(bad))
            row = ref.iloc[r]
            where = f"column {c!r}, epoch {int(row.epoch)} step {int(row.step)} row {int(row.row)}"
            problems.append(_gap_message(label, where, float(a[r]), float(b[r]))
                            + f" ({int(bad.sum())} of {int(compared.sum())} values in the column differ)")
    return problems


def tables_mismatches(ours: Sequence[np.ndarray | None], theirs: Sequence[np.ndarray], label: str = "") -> list[str]:
    """(user factors, item factors[, user bias, item bias]) against the reference's."""
    names = ["user_factors", "item_factors", "user_bias", "item_bias"]
    problems = []
    ours = [t for t in ours if t is not None]
    if len(ours) != len(theirs):
        return [f"{label}: {len(ours)} tables, reference {len(theirs)}"]
    for name, a, b in zip(names, ours, theirs):
        a = np.asarray(a, dtype=np.float64)
        if a.shape != b.shape:
            problems.append(f"{label}: {name} has shape {a.shape}, reference {b.shape}")
            continue
        rows = np.broadcast_to(np.arange(len(b)).reshape(-1, *[1] * (b.ndim - 1)), b.shape)
        bad = ~close(a, b, rows)  # one quantity per table row (a user's, an item's)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            problems.append(_gap_message(label, f"{name}{list(at)}", float(a[at]), float(b[at]))
                            + f" ({int(bad.sum())} of {a.size} differ)")
    return problems
