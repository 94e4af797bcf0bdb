"""Embedding tables of the `dot_product` model (collaborative filtering): ids, names, tables.

A rating row holds a user id and an item id; the model looks up the user's row of the user
table and the item's row of the item table (and, with `bias`, one bias per user and per item).
Parameters are named from the sheet's ids: user factors ``u<user>_<f>``, item factors
``m<item>_<f>``, biases ``bu<user>`` and ``bm<item>`` (f = 1..factors). Ids are sanitised to
letters, digits and ``_`` (`name_ids`); the mapping is kept so every output can show the id as
the sheet wrote it. See docs/embeddings.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

    @property
    def user_names(self) -> list[str]:
        return name_ids(list(self.users))

    @property
    def item_names(self) -> list[str]:
        return name_ids(list(self.items))


def param_names(ids: Ids, factors: int, bias: bool) -> list[str]:
    """Every parameter of the model, table by table: user factors (user by user, factor by
    factor), item factors, then user biases and item biases."""
    fs = range(1, factors + 1)
    names = [f"u{u}_{f}" for u in ids.user_names for f in fs] + [f"m{i}_{f}" for i in ids.item_names for f in fs]
    if bias:
        names += [f"bu{u}" for u in ids.user_names] + [f"bm{i}" for i in ids.item_names]
    return names


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
        fs = range(1, factors + 1)
        uf = np.array([[params[f"u{u}_{f}"] for f in fs] for u in ids.user_names], dtype=np.float64)
        mf = np.array([[params[f"m{i}_{f}"] for f in fs] for i in ids.item_names], dtype=np.float64)
        ub = np.array([params[f"bu{u}"] for u in ids.user_names]) if bias else None
        mb = np.array([params[f"bm{i}"] for i in ids.item_names]) if bias else None
        return cls(ids, uf.reshape(len(ids.users), factors), mf.reshape(len(ids.items), factors), ub, mb, y_range)
