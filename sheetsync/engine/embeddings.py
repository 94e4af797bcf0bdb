"""Embedding tables of the `dot_product` model (collaborative filtering): ids, names, tables.

A rating row holds a user id and an item id; the model looks up the user's row of the user
table and the item's row of the item table (and, with `bias`, one bias per user and per item).
Parameters are named from the sheet's ids: user factors ``u<user>_<f>``, item factors
``m<item>_<f>``, biases ``bu<user>`` and ``bm<item>`` (f = 1..factors). Ids are sanitised to
letters, digits and ``_`` (`name_ids`); the mapping is kept so every output can show the id as
the sheet wrote it. See docs/embeddings.md.

Training (`engine.train`, the one compiled loop; `models._dot_product`, `loop.program.build_tables`)
is a torch model of dense nn.Embedding tables: each step, every table entry gets a gradient
(0 for the rows no rating of the batch names) and the optimizer steps every entry. So with
momentum, Adam, RMSProp, Adagrad or weight decay, rows the batch did not touch still move each
step, exactly as in torch; with plain SGD and no weight decay the update of a zero gradient is
the identity, and only the touched entries are visited (`Spec.sparse_update`, the same numbers).
graddesc applies its optimizers' quirks per entry; its macro optimizers (adagrad, adagrad_ann,
adam_ann, eve) are refused for tables. The epochs table's `rmse` is sqrt(Σ(pred - y)²/n) over all
ratings with the tables as they are at the epoch's end, the errors added in data order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np


def name_ids(ids: list[str]) -> list[str]:
    """Parameter-safe names for ids, in order, all distinct: '14' -> '14', 'Star Wars (1977)' ->
    'Star_Wars_1977'; a name already taken gets '_2', '_3', ... ."""
    names: list[str] = []
    taken: set[str] = set()
    for raw in ids:
        base = re.sub(r"[^0-9A-Za-z]+", "_", str(raw)).strip("_") or "id"
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names.append(name)
    return names


@dataclass(frozen=True)
class Ids:
    """The users and items of a ratings table, in the order their rows of the tables are kept
    (the crosstab's order, or first appearance in a long table). Raw ids as the sheet shows them."""

    users: tuple[str, ...]
    items: tuple[str, ...]

    # worked out once per Ids (a regex per id): every table of a run reads them
    @cached_property
    def user_names(self) -> tuple[str, ...]:
        return tuple(name_ids(list(self.users)))

    @cached_property
    def item_names(self) -> tuple[str, ...]:
        return tuple(name_ids(list(self.items)))


def param_names(ids: Ids, factors: int, bias: bool) -> list[str]:
    """Every parameter of the model, table by table: user factors (user by user, factor by
    factor), item factors, then user biases and item biases."""
    return list(_param_names(ids, factors, bias))


@lru_cache(maxsize=64)  # a run asks for them several times (job, init, state, tables)
def _param_names(ids: Ids, factors: int, bias: bool) -> tuple[str, ...]:
    fs = range(1, factors + 1)
    names = [f"u{u}_{f}" for u in ids.user_names for f in fs] + [f"m{i}_{f}" for i in ids.item_names for f in fs]
    if bias:
        names += [f"bu{u}" for u in ids.user_names] + [f"bm{i}" for i in ids.item_names]
    return tuple(names)


@dataclass(frozen=True)
class Tables:
    """The model's parameters as tables: what the factors and similar tabs show."""

    ids: Ids
    user_factors: np.ndarray  # (users, factors)
    item_factors: np.ndarray  # (items, factors)
    user_bias: np.ndarray | None  # (users,) or None without bias
    item_bias: np.ndarray | None
    y_range: tuple[float, float] | None = None

    @classmethod
    def from_params(cls, ids: Ids, params: dict[str, float], factors: int, bias: bool,
                    y_range: tuple[float, float] | None = None) -> "Tables":
        names = _param_names(ids, factors, bias)
        return cls.from_vector(ids, np.fromiter(map(params.__getitem__, names), np.float64, len(names)),
                               factors, bias, y_range)

    @classmethod
    def from_vector(cls, ids: Ids, values: np.ndarray, factors: int, bias: bool,
                    y_range: tuple[float, float] | None = None) -> "Tables":
        """The tables from every parameter's value in `param_names` order (the loop's P row)."""
        n_u, n_i = len(ids.users), len(ids.items)
        cut = np.cumsum([n_u * factors, n_i * factors, n_u if bias else 0])
        uf, mf, ub, mb = np.split(np.asarray(values, dtype=np.float64), cut)
        return cls(ids, uf.reshape(n_u, factors), mf.reshape(n_i, factors),
                   ub if bias else None, mb if bias else None, y_range)


# ---------------------------------------------------------------------------------------------
# The engine's side: checking indices, starting values, and reading a Result as tables

FASTAI_STD = 0.01  # fastai's Embedding: trunc_normal_(std=0.01)


def check_indices(X: np.ndarray, ids: Ids | None) -> Ids:
    """The ids for a ratings matrix X (n × 2 of 0-based user and item indices), checked: every
    index a whole number inside its table. Without ids the indices name themselves ("0", "1", ...)."""
    from ..errors import SettingError

    if X.shape[1] != 2:
        raise SettingError("data", f"dot_product reads two input columns (user, item), found {X.shape[1]}")
    if ids is None:
        top = np.maximum(X.max(axis=0), 0).astype(np.int64) + 1
        ids = Ids(tuple(str(k) for k in range(int(top[0]))), tuple(str(k) for k in range(int(top[1]))))
    if not isinstance(ids, Ids):
        raise SettingError("ids", f"expected an Ids(users, items), found {type(ids).__name__}")
    for col, (what, count) in enumerate((("user", len(ids.users)), ("item", len(ids.items)))):
        v = X[:, col]
        bad = np.flatnonzero((v != np.floor(v)) | (v < 0) | (v >= count))
        if len(bad):
            k = int(bad[0])
            raise SettingError("data", f"rating row {k + 1}: the {what} index {v[k]:g} is not one of "
                               f"0..{count - 1} (the {count} {what}s' rows, 0-based)")
    return ids


def initial_params(ids: Ids, experiment) -> dict[str, float]:
    """Starting values of every table entry (before `init` overrides any), drawn with
    numpy's default_rng(seed): user factors (user by user), then item factors.

    normal: fastai's trunc_normal_(std=0.01): a standard normal draw, fmod 2, times 0.01 (fastai
    also draws its bias embeddings this way; here biases start at 0, as the lab's contract says).
    uniform: [0, 1), Jeremy's sheet's RAND(). Biases start at 0."""
    F, bias = experiment.factors, experiment.bias
    rng = np.random.default_rng(experiment.seed)
    shape = ((len(ids.users) + len(ids.items)) * F,)
    if experiment.embedding_init == "uniform":
        draws = rng.random(shape)
    else:
        draws = np.fmod(rng.standard_normal(shape), 2.0) * FASTAI_STD
    names = param_names(ids, F, bias)
    values = dict(zip(names, draws.tolist()))
    if bias:
        values.update({q: 0.0 for q in names[len(draws):]})
    return values


def _tables_from(result, params: dict[str, float]) -> Tables:
    e = result.experiment
    return Tables.from_params(result.ids, params, e.factors, e.bias, e.y_range)


def tables_of(result) -> Tables:
    """The final tables of a dot_product Result."""
    return _tables_from(result, result.params)


def start_tables(result) -> Tables:
    """The tables before the Result's first step (the init, or the state it continued from)."""
    first = min(result.starts)
    return _tables_from(result, result.starts[first]["params"])


def start_rmse(result) -> float:
    """The RMSE over all ratings of `start_tables(result)` (the sheet's RMSE cell before training)."""
    return result.start_rmse


def _model(tables: Tables):
    from .models import build_model

    return build_model("dot_product", 2, factors=tables.user_factors.shape[1],
                       bias=tables.user_bias is not None, y_range=tables.y_range)


def _evaluate(e, env: dict):
    """An expression over arrays, operation for operation as the loop computes it; exp is libm's
    (math.exp per element, as C and numba call it: numpy's own exp may differ in the last bit)."""
    from .expr import OPS

    if e.op == "sym":
        return env[e.args[0]]
    if e.op == "const":
        return np.float64(e.args[0])
    args = [_evaluate(a, env) for a in e.args]
    if e.op in ("sigmoid", "exp"):
        value = OPS[e.op].value
        return np.array([value(v) for v in np.asarray(args[0], dtype=np.float64).tolist()])
    return OPS[e.op].array(*args)


def predict(tables: Tables, x) -> np.ndarray:
    """Predictions for the rating rows x (n × 2 of 0-based user and item indices) in the engine's
    exact arithmetic: the same operations in the same order as the training loop's pred cell."""
    X = np.asarray(x)
    users, items = X[:, 0].astype(np.int64), X[:, 1].astype(np.int64)
    model = _model(tables)
    env: dict = {}
    for f in range(tables.user_factors.shape[1]):
        env[f"u{f + 1}"] = tables.user_factors[users, f]
        env[f"m{f + 1}"] = tables.item_factors[items, f]
    if tables.user_bias is not None:
        env["bu"], env["bm"] = tables.user_bias[users], tables.item_bias[items]
    for name, e in model.intermediates:
        env[name] = _evaluate(e, env)
    return np.asarray(_evaluate(model.pred, env), dtype=np.float64)


def rmse(pred: np.ndarray, y) -> float:
    """sqrt(sum of (pred - y)² / n), the errors squared and added in data order from 0, as the
    training loop's end-of-epoch pass adds them."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    # add.accumulate adds strictly one after another (np.sum would add pairwise)
    total = float(np.add.accumulate(err * err)[-1]) if len(err) else 0.0
    return math.sqrt(total / len(err))
