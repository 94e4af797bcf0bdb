"""`NAME similar`: what a trained `dot_product` model learned about its items.

For each item (the most rated first) its nearest items by cosine similarity of the item factors
(1: the factors point the same way, 0: unrelated, -1: opposite): items the same users rate
alike end up with factors pointing the same way, whatever the items are. Beside them, with
`bias`, the items with the largest and the smallest bias: rated higher (lower) than their
factors alone explain, whoever rates them. Items by their ids as the data tab writes them.
"""

from __future__ import annotations

import numpy as np

from ..a1 import similar_tab_name
from ..backends.base import Column, Table, TabPlan, Text
from ..engine.embeddings import Tables
from .factors import NEGATIVE, SIGNED, ZERO, EmbeddingView, fixed_scale, symmetric_bound, text_width

NEAREST = 5  # neighbours listed per item
MAX_ITEMS = 100  # items listed (the most rated); their neighbours come from every item
BIAS_ITEMS = 5  # items listed at each end of the bias ranking
TABLE_ROW = 2
SIMILAR = "63BE7B"  # green at similarity 1, white at 0, blue at -1
PADDED = "0.00_M"  # a number with an M's width of room on its right, so a title after it reads apart


def cosine_similarities(factors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """(rows, items) cosine similarity of the items `rows` (default: all) to every item, from the
    rows of `factors`; NaN where either item's factors are all zeros (they point nowhere)."""
    f = np.asarray(factors, dtype=np.float64)
    rows = np.arange(len(f)) if rows is None else np.asarray(rows, dtype=np.int64)
    norms = np.sqrt(np.einsum("if,if->i", f, f))
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = f / norms[:, None]
    return np.where((norms[rows, None] > 0) & (norms[None, :] > 0), unit[rows] @ unit.T, np.nan)


def nearest(factors: np.ndarray, k: int = NEAREST, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each item of `rows` (default: all) the (at most) k other items most similar to it, most
    similar first (ties: the earlier in the table), and their similarities: (rows, k) indices
    (-1: none) and similarities (NaN: none). Only the rows asked for are compared with every
    item, so a table of many thousand items costs rows × items, not items²."""
    rows = np.arange(len(factors)) if rows is None else np.asarray(rows, dtype=np.int64)
    sims = cosine_similarities(factors, rows)
    k = max(0, min(k, len(factors) - 1))
    index = np.full((len(rows), k), -1, dtype=np.int64)
    value = np.full((len(rows), k), np.nan)
    for i, item in enumerate(rows):
        s = sims[i].copy()
        s[item] = np.nan  # not its own neighbour
        order = [j for j in np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable") if np.isfinite(s[j])][:k]
        index[i, :len(order)] = order
        value[i, :len(order)] = s[order]
    return index, value


def bias_ends(bias: np.ndarray, k: int = BIAS_ITEMS) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the k largest biases (largest first) and of the k smallest (smallest first)."""
    order = np.argsort(-np.asarray(bias, dtype=np.float64), kind="stable")
    k = min(k, len(order))
    return order[:k], np.argsort(np.asarray(bias, dtype=np.float64), kind="stable")[:k]


def render_similar(name: str, tables: Tables, view: EmbeddingView, *, k: int = NEAREST,
                   max_items: int = MAX_ITEMS) -> TabPlan:
    """The tab of experiment `name` at `tables` (the run's final parameters)."""
    ids = tables.ids
    n = len(ids.items)
    counts = np.bincount(np.asarray(view.item, dtype=np.int64), minlength=n)
    listed = np.argsort(-counts, kind="stable")[:max_items]
    index, value = nearest(tables.item_factors, k, listed)  # row i: the listed item i's neighbours
    k = index.shape[1]
    tab = TabPlan(similar_tab_name(name), kind="similar", row_heights={0: 48.0})
    raw = list(ids.items)  # ids as text, as the sheet shows them: one alignment whatever they are
    width = max(text_width(ids.items[i] for i in listed), len("nearest 1") + 2.0)
    columns = [Column("item", [raw[i] for i in listed], "@", width),
               Column("ratings", counts[listed].astype(float), "0_M", 9)]
    for j in range(k):
        columns.append(Column(f"nearest {j + 1}", [raw[x] if x >= 0 else None for x in index[:, j]], "@", width))
        columns.append(Column("similarity", value[:, j], PADDED, 11))
    names = ids.item_names
    columns.append(Column("parameter", [f"m{names[i]}" for i in listed], "@",
                          max(text_width(f"m{names[i]}" for i in listed), 11.0),
                          note="The item's factors are m<item>_1 .. m<item>_F."))
    tab.tables.append(Table(columns, row=TABLE_ROW, col=0))
    for j in range(k):  # one fixed scale for every similarity column: -1 blue, 0 white, 1 green
        tab.color_scales.append(fixed_scale(TABLE_ROW + 1, 3 + 2 * j, len(listed), 1, (NEGATIVE, ZERO, SIMILAR),
                                            (-1.0, 0.0, 1.0)))
    sentence = (f"{name}: for each item, the items whose factors point the same way (cosine similarity of the "
                "item factors: 1 the same direction, 0 unrelated, -1 opposite). Items the same users rate alike "
                "end up close, though the model never saw what the items are.")
    if len(listed) < n:
        sentence += f" Listed: the {len(listed)} most rated of {n:,} items; neighbours from all of them."
    span = len(columns)
    if tables.item_bias is not None:
        col = len(columns) + 1
        top, bottom = bias_ends(tables.item_bias)
        tab.tables.append(Table([Column("largest item bias", [raw[i] for i in top], "@", max(width, 19)),
                                 Column("bias", tables.item_bias[top], "0.00", 8)], row=TABLE_ROW, col=col))
        below = TABLE_ROW + len(top) + 2
        tab.tables.append(Table([Column("smallest item bias", [raw[i] for i in bottom], "@", None),
                                 Column("bias", tables.item_bias[bottom], "0.00", None)], row=below, col=col))
        b = symmetric_bound(tables.item_bias)
        for r0, rows in ((TABLE_ROW + 1, len(top)), (below + 1, len(bottom))):
            tab.color_scales.append(fixed_scale(r0, col + 1, rows, 1, SIGNED, (-b, 0.0, b)))
        sentence += (" Right: the items rated higher (largest bias) and lower (smallest) than their factors "
                     "explain, whoever rates them.")
        span = col + 2
    tab.texts.append(Text(0, 0, sentence, wrap=True, span=min(span, 18)))
    return tab
