"""`NAME factors`: Jeremy's picture of a trained `dot_product` model (collab_filter.xlsx, `dotprod`).

The item factors run across the top (one row per factor, one column per item, the item ids
under them), the user factors down the side (one row per user, the user ids beside them), and
in the middle each user's predicted rating of each item: the user's row of factors times the
item's column (plus the user's and the item's bias, through fastai's sigmoid_range with
`y_range`). Below, in the same columns, the actual ratings (blank: not rated). The outermost
column and row name the parameters (`u14`: the user 14's factors are u14_1 .. u14_F, bias
bu14), so every id maps to its parameters on sight.

Colours: factors and biases blue below 0, white at 0, red above, on one symmetric scale so a
factor's sign reads at a glance; predictions and actual ratings red (low) to green (high) on
the same fixed scale (the ratings' range), so a prediction and its rating compare by colour.

Formula mode: each prediction cell is Jeremy's own `MMULT(user row, item column)` (+ bias
cells, through the sigmoid), each rated cell reads its rating's cell on the data tab, and the
RMSE cell is computed from the two blocks. (`SUMPRODUCT` of a row and a column is a #VALUE!
in Excel and LibreOffice: the shapes differ; MMULT multiplies them as the picture does.) The
factor and bias cells hold the run's final values: they are the cells Jeremy's Solver changes,
and the steps tab has no column per parameter to link them to.

Large tables are capped (`MAX_SHOWN` users and items with the most ratings), and the tab says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..a1 import col_letter, factors_tab_name, parse_cell
from ..backends.base import ColorScale, Column, Table, TabPlan, Text
from ..engine import embeddings
from ..engine.embeddings import Ids, Tables
from .map import to_r1c1

MAX_SHOWN = 30  # users and items drawn at most: the picture stays readable and small
TOP = 4  # 0-based row of the items' parameter-name row, under the sentence and the RMSE cells
NUMBER_WIDTH = 6.5  # characters: "-0.00" and a margin
MAX_ITEM_WIDTH = 11.0  # an item column holding a title's longest word, at most
FACTOR_FORMAT = "0.00"
# blue below 0, white at 0, red above (factors, biases); pale yellow low to green high (ratings)
NEGATIVE, ZERO, POSITIVE = "5A8AC6", "FFFFFF", "F8696B"
SIGNED = (NEGATIVE, ZERO, POSITIVE)
RATINGS = ("FFF2CC", "C6E0B4", "63BE7B")  # pale yellow to green: red stays the factors'
CORNER = "user ↓ item →"  # over the user ids, beside the item ids


@dataclass(frozen=True)
class EmbeddingView:
    """What the factors and similar tabs need of a ratings table beside the Result: the ids and
    every rating with its place in the tables and (for formula mode and the map) on the data tab."""

    ids: Ids
    user: np.ndarray  # (n,) int: each rating's user index, the row of the user table (x[:, 0])
    item: np.ndarray  # (n,) int: each rating's item index (x[:, 1])
    rating: np.ndarray  # (n,) float (y)
    cells: tuple[str, ...] | None = None  # each rating's cell on the data tab, with its tab ("data!C5")

    @property
    def x(self) -> np.ndarray:
        return np.stack([np.asarray(self.user, dtype=np.int64), np.asarray(self.item, dtype=np.int64)], axis=1)


def predict(tables: Tables, x: np.ndarray) -> np.ndarray:
    """Predictions in the engine's own arithmetic, so the tab's numbers are the run's."""
    return np.asarray(embeddings.predict(tables, x), dtype=np.float64)


def rmse(tables: Tables, view: EmbeddingView) -> float:
    err = predict(tables, view.x) - np.asarray(view.rating, dtype=np.float64)
    return float(np.sqrt(np.mean(err * err))) if len(err) else float("nan")


def most_rated(index: np.ndarray, n: int, cap: int) -> np.ndarray:
    """The (at most) `cap` indices of 0..n-1 with the most ratings, in table order (ties: the
    earlier in the table)."""
    counts = np.bincount(np.asarray(index, dtype=np.int64), minlength=n)
    if n <= cap:
        return np.arange(n)
    chosen = np.argsort(-counts, kind="stable")[:cap]
    return np.sort(chosen)


@dataclass(frozen=True)
class Geometry:
    """Where everything sits on the tab (0-based rows and columns)."""

    factors: int
    bias: bool
    n_users: int  # shown
    n_items: int

    @property
    def c_bias(self) -> int:  # the users' bias column (when bias)
        return 1

    @property
    def c_f0(self) -> int:  # the first user-factor column
        return 1 + self.bias

    @property
    def c_id(self) -> int:  # the user ids (and the item rows' labels)
        return self.c_f0 + self.factors

    @property
    def c_i0(self) -> int:  # the first item column
        return self.c_id + 1

    @property
    def r_bias(self) -> int:  # the items' bias row (when bias)
        return TOP + 1

    @property
    def r_f0(self) -> int:  # the first item-factor row
        return TOP + 1 + self.bias

    @property
    def r_id(self) -> int:  # the item ids over the predictions (the main table's header)
        return self.r_f0 + self.factors

    @property
    def r_u0(self) -> int:  # the first user's row
        return self.r_id + 1

    @property
    def r_actual_id(self) -> int:  # the item ids over the actual ratings
        return self.r_u0 + self.n_users + 2

    @property
    def r_a0(self) -> int:
        return self.r_actual_id + 1

    def block(self, r0: int) -> str:
        """The users × items block starting at row r0, as A1 (no tab)."""
        return (f"{col_letter(self.c_i0)}{r0 + 1}:{col_letter(self.c_i0 + self.n_items - 1)}"
                f"{r0 + self.n_users}")

    @property
    def predictions(self) -> str:
        return self.block(self.r_u0)

    @property
    def actual(self) -> str:
        return self.block(self.r_a0)

    RMSE_NOW = (2, 4)  # (row, col) of the RMSE cell computed from the two blocks
    RMSE_START = (1, 4)


def prediction_formula(g: Geometry, i: int, j: int, y_range: tuple[float, float] | None) -> str:
    """The formula of the prediction of shown user i for shown item j (0-based in the blocks)."""
    r = g.r_u0 + i + 1  # 1-based sheet row
    c = col_letter(g.c_i0 + j)
    dot = (f"MMULT(${col_letter(g.c_f0)}{r}:${col_letter(g.c_f0 + g.factors - 1)}{r},"
           f"{c}${g.r_f0 + 1}:{c}${g.r_f0 + g.factors})")
    if g.bias:
        dot += f"+${col_letter(g.c_bias)}{r}+{c}${g.r_bias + 1}"
    if y_range is None:
        return "=" + dot
    low, high = (float(v) for v in y_range)
    return f"=1/(1+EXP(-({dot})))*({high!r}-{low!r})+{low!r}"


def rmse_formula(g: Geometry) -> str:
    """RMSE over the rated cells. Jeremy's sheet writes SQRT(SUMXMY2(actual, predicted)/COUNT(actual))
    and sets unrated predictions to 0; here every prediction is shown, and LibreOffice counts a
    blank beside a number as 0 in SUMXMY2 (Excel skips the pair), so the sum keeps rated cells
    explicitly and every spreadsheet agrees."""
    a, p = g.actual, g.predictions
    return f"=SQRT(SUMPRODUCT(ISNUMBER({a})*({a}-{p})^2)/COUNT({a}))"


def render_factors(name: str, tables: Tables, view: EmbeddingView, *, start_rmse: float | None = None,
                   formulas: bool = False, epochs: int | None = None, cap: int = MAX_SHOWN) -> TabPlan:
    """The tab of experiment `name` at `tables` (the run's final parameters). `start_rmse`: the
    RMSE before the run's first step; `formulas`: formula mode; `epochs`: epochs run so far."""
    users = most_rated(view.user, len(tables.ids.users), cap)
    items = most_rated(view.item, len(tables.ids.items), cap)
    bias = tables.user_bias is not None
    F = tables.user_factors.shape[1]
    g = Geometry(F, bias, len(users), len(items))
    tab = TabPlan(factors_tab_name(name), kind="factors", row_heights={0: 60.0})  # the sentence: 3 lines
    ids = tables.ids
    all_users, all_items = ids.user_names, ids.item_names  # each a pass over every id: once
    user_names = [all_users[u] for u in users]
    item_names = [all_items[i] for i in items]

    # item ids longer than a number (film titles) wrap in columns as wide as their longest word
    words = [len(w) for item in items for w in str(ids.items[item]).split()]
    wrap_ids = any(len(str(ids.items[item])) > NUMBER_WIDTH for item in items)
    item_width = min(max(NUMBER_WIDTH, max(words, default=0) + 1.5), MAX_ITEM_WIDTH) if wrap_ids else NUMBER_WIDTH

    # the middle: every shown user's prediction of every shown item
    grid_x = np.stack([np.repeat(users, len(items)), np.tile(items, len(users))], axis=1)
    grid = predict(tables, grid_x).reshape(len(users), len(items))
    uf = tables.user_factors[users]
    columns = [Column("parameter", [f"u{n}" for n in user_names], "@",
                      max(text_width(f"u{n}" for n in user_names), len("parameter") + 2),
                      note="User k's parameters: its factors uk_1 .. uk_F in this row"
                           + (", its bias buk" if bias else "") + ".")]
    if bias:
        columns.append(Column("bias", tables.user_bias[users], FACTOR_FORMAT, NUMBER_WIDTH, note="The user's bias."))
    columns += [Column(f"f{f + 1}", uf[:, f], FACTOR_FORMAT, NUMBER_WIDTH, note=f"The users' factor {f + 1}.")
                for f in range(F)]
    columns.append(Column(CORNER, [shown_id(u) for u in (ids.users[k] for k in users)], "General",
                          max(text_width(ids.users[k] for k in users), len(CORNER) + 1),
                          note="User ids down this column, item ids along this row, as the data tab writes them."))
    for j, item in enumerate(items):
        fs = [prediction_formula(g, i, j, tables.y_range) for i in range(len(users))] if formulas else None
        columns.append(Column(str(ids.items[item]), grid[:, j], FACTOR_FORMAT, item_width, fs))
    tab.tables.append(Table(columns, row=g.r_id, col=0))
    if wrap_ids:  # titles: wrapped over their columns, in rows tall enough for three lines
        lines = min(3, -(-max(len(n) + 1 for n in item_names) // int(item_width)))
        tab.row_heights[TOP] = 13.0 * lines + 2  # the parameter names: broken where the column ends
        for r in (g.r_id, g.r_actual_id):
            tab.row_heights[r] = 45.0
            tab.texts += [Text(r, g.c_i0 + j, str(ids.items[item]), bold=True, wrap=True) for j, item in enumerate(items)]

    # the top: the items' parameter names, biases and factors over their columns
    tab.texts.append(Text(TOP, g.c_id, "parameter", bold=True,
                          note="Item k's parameters: its factors mk_1 .. mk_F in this column"
                               + (", its bias bmk" if bias else "") + "."))
    if bias:
        tab.texts.append(Text(g.r_bias, g.c_id, "item bias", bold=True))
    for f in range(F):
        tab.texts.append(Text(g.r_f0 + f, g.c_id, f"factor {f + 1}", bold=True))
    for j, item in enumerate(items):
        c = g.c_i0 + j
        tab.texts.append(Text(TOP, c, f"m{item_names[j]}", bold=True, wrap=wrap_ids))
        if bias:
            tab.texts.append(Text(g.r_bias, c, float(tables.item_bias[item]), number_format=FACTOR_FORMAT))
        for f in range(F):
            tab.texts.append(Text(g.r_f0 + f, c, float(tables.item_factors[item, f]), number_format=FACTOR_FORMAT))

    # below: the actual ratings in the same grid (blank: not rated)
    actual, sources = _actual_grid(view, users, items)
    tab.texts.append(Text(g.r_actual_id - 1, g.c_id, "Actual ratings (blank: not rated), in the same columns as the "
                          "predictions above" + (": each cell reads its rating on the data tab." if formulas and
                                                 view.cells else "."), bold=True))
    acolumns = [Column(CORNER, [shown_id(ids.users[k]) for k in users], "General", None)]
    for j, item in enumerate(items):
        fs = None
        if formulas and view.cells:
            fs = [("=" + sources[i][j]) if sources[i][j] else None for i in range(len(users))]
        acolumns.append(Column(str(ids.items[item]), [None if np.isnan(v) else float(v) for v in actual[:, j]],
                               "General", None, fs))
    tab.tables.append(Table(acolumns, row=g.r_actual_id, col=g.c_id))

    _colour(tab, g, tables, users, items, view)
    _top_texts(tab, name, g, tables, view, users, items, grid, actual, start_rmse, formulas, epochs)
    return tab


def _actual_grid(view: EmbeddingView, users: np.ndarray, items: np.ndarray):
    """The shown users × items of actual ratings (NaN: not rated) and each cell's data-tab source."""
    row_of = np.full(int(max(users.max(initial=0), np.max(view.user, initial=0))) + 1, -1)
    col_of = np.full(int(max(items.max(initial=0), np.max(view.item, initial=0))) + 1, -1)
    row_of[users], col_of[items] = np.arange(len(users)), np.arange(len(items))
    i, j = row_of[np.asarray(view.user, dtype=np.int64)], col_of[np.asarray(view.item, dtype=np.int64)]
    shown = np.flatnonzero((i >= 0) & (j >= 0))  # the ratings inside the picture
    actual = np.full((len(users), len(items)), np.nan)
    actual[i[shown], j[shown]] = np.asarray(view.rating, dtype=np.float64)[shown]
    sources: list[list[str | None]] = [[None] * len(items) for _ in users]
    if view.cells:
        for k in shown:
            sources[i[k]][j[k]] = _reference(view.cells[k])
    return actual, sources


def _reference(cell: str) -> str:
    """A data cell as a formula reference: its tab quoted where it must be ('my data'!C5)."""
    return str(parse_cell(cell, need_tab=True))


def _colour(tab: TabPlan, g: Geometry, tables: Tables, users, items, view: EmbeddingView) -> None:
    F, U, I = g.factors, len(users), len(items)
    m = symmetric_bound(np.concatenate([tables.user_factors[users].ravel(), tables.item_factors[items].ravel()]))
    tab.color_scales.append(fixed_scale(g.r_u0, g.c_f0, U, F, SIGNED, (-m, 0.0, m)))
    tab.color_scales.append(fixed_scale(g.r_f0, g.c_i0, F, I, SIGNED, (-m, 0.0, m)))
    if g.bias:
        b = symmetric_bound(np.concatenate([tables.user_bias[users], tables.item_bias[items]]))
        tab.color_scales.append(fixed_scale(g.r_u0, g.c_bias, U, 1, SIGNED, (-b, 0.0, b)))
        tab.color_scales.append(fixed_scale(g.r_bias, g.c_i0, 1, I, SIGNED, (-b, 0.0, b)))
    ratings = np.asarray(view.rating, dtype=np.float64)
    low, high = (float(ratings.min()), float(ratings.max())) if len(ratings) else (0.0, 1.0)
    if high <= low:
        low, high = low - 1.0, high + 1.0
    points = (low, (low + high) / 2, high)
    for r0 in (g.r_u0, g.r_a0):  # one fixed scale: a prediction and its rating compare by colour
        tab.color_scales.append(fixed_scale(r0, g.c_i0, U, I, RATINGS, points))


def fixed_scale(row: int, col: int, n_rows: int, n_cols: int, colours: tuple[str, str, str],
                values: tuple[float, float, float]) -> ColorScale:
    """A colour scale whose three colours sit at fixed `values` (not the block's min/median/max),
    so the same colour means the same number wherever the scale is used."""
    (low, mid, high), (lv, mv, hv) = colours, values
    return ColorScale(row, col, n_rows, n_cols, low=low, mid=mid, high=high, low_value=lv, mid_value=mv, high_value=hv)


def symmetric_bound(values: np.ndarray) -> float:
    """The largest |value| (1 when there is none): a signed scale runs from minus it to it."""
    finite = np.abs(values[np.isfinite(values)])
    m = float(finite.max()) if len(finite) else 0.0
    return m if m > 0 else 1.0


def _top_texts(tab, name, g: Geometry, tables: Tables, view, users, items, grid, actual, start_rmse,
               formulas: bool, epochs: int | None) -> None:
    ids = tables.ids
    bias = g.bias
    what = "the user's row of factors times the item's column of factors"
    if bias:
        what += ", plus the user's bias and the item's bias"
    if tables.y_range is not None:
        what += f", through sigmoid_range({_num(tables.y_range[0])}, {_num(tables.y_range[1])})"
    sentence = (f"{name}: each predicted rating in the middle is {what}. Training moves the factors until the "
                "predictions agree with the actual ratings below them; the RMSE measures how far apart they "
                "are. Factors and biases: blue below 0, red above; ratings: pale yellow low, green high. "
                + _naming(ids, users, bias))
    capped = len(users) < len(ids.users) or len(items) < len(ids.items)
    if capped:
        sentence += (f" Shown: the {len(users)} users and {len(items)} items with the most ratings, of "
                     f"{len(ids.users):,} users and {len(ids.items):,} items.")
    span = max(g.c_i0 + g.n_items, 12)
    tab.texts.append(Text(0, 0, sentence, wrap=True, span=min(span, 26)))
    r_now, c_val = Geometry.RMSE_NOW
    r_start = Geometry.RMSE_START[0]
    tab.texts.append(Text(r_start, 0, "RMSE at the start", bold=True, span=c_val))
    tab.texts.append(Text(r_start, c_val, _finite(start_rmse), number_format="0.0000",
                          note="Over every rating, with the factors before this Run's first step."))
    shown = ~np.isnan(actual)
    err = actual[shown] - grid[shown]
    rmse_shown = float(np.sqrt(np.mean(err * err))) if err.size else None
    label = "RMSE now" + (f" (after epoch {epochs})" if epochs else "")
    if capped:
        tab.texts.append(Text(r_now, 0, label, bold=True, span=c_val))
        tab.texts.append(Text(r_now, c_val, _finite(rmse(tables, view)), number_format="0.0000",
                              note="Over every rating, not only those shown."))
        tab.texts.append(Text(r_now, c_val + 2, "of the ratings shown", bold=True, span=3))
        tab.texts.append(Text(r_now, c_val + 5, _finite(rmse_shown), number_format="0.0000",
                              formula=rmse_formula(g) if formulas else None))
    else:
        tab.texts.append(Text(r_now, 0, label, bold=True, span=c_val))
        tab.texts.append(Text(r_now, c_val, _finite(rmse_shown), number_format="0.0000",
                              formula=rmse_formula(g) if formulas else None,
                              note="sqrt(mean((actual - predicted)²)) over the rated cells: what Jeremy's "
                                   "sheet has Solver minimise."))


def factors_map_rows(name: str, tables: Tables, view: EmbeddingView, formulas: bool,
                     data_tab: str | None = None, cap: int = MAX_SHOWN) -> list[dict]:
    """The factors tab's rows for `NAME map` (its columns: tab, column, cells, formula (A1),
    formula (R1C1), precedents, dependents, boundary rows)."""
    users = most_rated(view.user, len(tables.ids.users), cap)
    items = most_rated(view.item, len(tables.ids.items), cap)
    g = Geometry(tables.user_factors.shape[1], tables.user_bias is not None, len(users), len(items))
    tab = factors_tab_name(name)
    f = prediction_formula(g, 0, 0, tables.y_range)
    cf0, cfl = col_letter(g.c_f0), col_letter(g.c_f0 + g.factors - 1)
    prec = (f"the user's factors (its row, {cf0}:{cfl}); the item's factors (its column, rows "
            f"{g.r_f0 + 1}-{g.r_f0 + g.factors})")
    if g.bias:
        prec += f"; the user's bias (column {col_letter(g.c_bias)}); the item's bias (row {g.r_bias + 1})"
    rows = [_map_row(tab, "prediction", g.predictions, f if formulas else None, g.r_u0 + 1, g.c_i0, prec,
                     "the RMSE cell; the actual rating in the same column below")]
    _, sources = _actual_grid(view, users, items)
    first = next((s for line in sources for s in line if s), None)
    rows.append(_map_row(tab, "actual rating", g.actual, None if not (formulas and first) else "=" + first,
                         g.r_a0 + 1, g.c_i0, f"the rating's cell on {data_tab or 'the data tab'}",
                         "the RMSE cell"))
    r, c = Geometry.RMSE_NOW
    rows.append(_map_row(tab, "RMSE", f"{col_letter(c)}{r + 1}", rmse_formula(g) if formulas else None, r + 1, c,
                         f"the predictions ({g.predictions}); the actual ratings ({g.actual})", ""))
    factor_cells = (f"{col_letter(g.c_f0)}{g.r_u0 + 1}:{cfl}{g.r_u0 + g.n_users}, "
                    f"{col_letter(g.c_i0)}{g.r_f0 + 1}:{col_letter(g.c_i0 + g.n_items - 1)}{g.r_f0 + g.factors}")
    rows.append(_map_row(tab, "factors", factor_cells, None, 0, 0,
                         "the Run's final parameters (u<user>_<f> across a user's row, m<item>_<f> down an "
                         "item's column)", "the predictions"))
    return rows


def _map_row(tab: str, column: str, cells: str, formula: str | None, row: int, col: int, precedents: str,
             dependents: str) -> dict:
    return {"tab": tab, "column": column, "cells": cells, "formula (A1)": formula or "(a number)",
            "formula (R1C1)": to_r1c1(formula, row, col) if formula else "", "precedents": precedents,
            "dependents": dependents, "boundary rows": ""}


def _naming(ids: Ids, users: np.ndarray, bias: bool) -> str:
    """How to read the parameter names, on the first user shown: "u14 is user 14's row (…)"."""
    name, raw = f"u{ids.user_names[users[0]]}", ids.users[users[0]]
    return (f"Column A and row {TOP + 1} name the parameters: {name} is user {raw}'s row ({name}_1, {name}_2, …"
            + (f", b{name}" if bias else "") + "); m… an item's column.")


def _finite(v: float | None):
    return float(v) if v is not None and np.isfinite(v) else None


def _num(v: float) -> str:
    return f"{float(v):g}"


def shown_id(v):
    """An id as the data tab wrote it: a number stays a number."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in str(v) else f


def text_width(texts) -> float:
    return float(min(max([len(str(t)) for t in texts] + [6]) + 2, 24))


# ---------------------------------------------------------------------------------------------
# Trace: a prediction's precedents, read back from the tab itself


def read_geometry(rows: list[list]) -> Geometry | None:
    """The tab's geometry from its cells read back (the corner cell over the user ids finds it)."""
    for r, row in enumerate(rows[: TOP + 200]):
        if CORNER in row and r > TOP:
            c_id = row.index(CORNER)
            bias = len(row) > 1 and row[1] == "bias"
            factors = c_id - 1 - bias
            n_items = next((k for k, v in enumerate(row[c_id + 1:]) if v in (None, "")), len(row) - c_id - 1)
            n_users = 0
            while r + 1 + n_users < len(rows) and len(rows[r + 1 + n_users]) > c_id \
                    and rows[r + 1 + n_users][c_id] not in (None, ""):
                n_users += 1
            g = Geometry(factors, bias, n_users, n_items)
            return g if (g.r_id, g.c_id) == (r, c_id) else None
    return None


def trace_cell(tab: str, rows: list[list], row: int, col: int,
               data_cell: Callable[[object, object], str | None] | None = None) -> dict:
    """The precedents of a prediction or an actual rating of `NAME factors` (0-based row, col), as
    `trace` prints them: a prediction comes from its user's factors (and bias) and its item's,
    beside it the actual rating, which comes from its cell on the data tab (`data_cell(user id,
    item id)`, when known). Raises ValueError for any other cell."""
    g = read_geometry(rows)
    if g is None:
        raise ValueError(f"'{tab}' does not hold the factors picture (no '{CORNER}' cell): run the sheet again")

    def cell(r: int, c: int) -> object:
        return rows[r][c] if r < len(rows) and c < len(rows[r]) else None

    def node(r: int, c: int, label: str, kind: str = "value", children=None) -> dict:
        d = {"cell": f"'{tab}'!{col_letter(c)}{r + 1}", "label": label, "value": cell(r, c), "kind": kind}
        if children:
            d["children"] = children
        return d

    in_block = g.c_i0 <= col < g.c_i0 + g.n_items
    if in_block and g.r_u0 <= row < g.r_u0 + g.n_users:
        i = row - g.r_u0
        user, item = str(cell(g.r_u0 + i, 0))[1:], str(cell(TOP, col))[1:]  # "u14" -> "14", "m27" -> "27"
        children = [node(row, g.c_f0 + f, f"u{user}_{f + 1}") for f in range(g.factors)]
        children += [node(g.r_f0 + f, col, f"m{item}_{f + 1}") for f in range(g.factors)]
        if g.bias:
            children += [node(row, g.c_bias, f"bu{user}"), node(g.r_bias, col, f"bm{item}")]
        if cell(g.r_a0 + i, col) not in (None, ""):
            children.append(_actual(node, g, i, col, cell, data_cell))
        return node(row, col, f"prediction of user {cell(row, g.c_id)} for item {cell(g.r_id, col)}", "line", children)
    if in_block and g.r_a0 <= row < g.r_a0 + g.n_users and cell(row, col) not in (None, ""):
        return _actual(node, g, row - g.r_a0, col, cell, data_cell)
    raise ValueError(f"'{tab}'!{col_letter(col)}{row + 1}: a trace of the factors tab starts from a predicted "
                     f"rating ({g.predictions}) or an actual one ({g.actual})")


def _actual(node, g: Geometry, i: int, col: int, cell, data_cell) -> dict:
    user, item = cell(g.r_a0 + i, g.c_id), cell(g.r_actual_id, col)
    source = data_cell(user, item) if data_cell else None
    children = [{"cell": source, "label": "rating", "value": cell(g.r_a0 + i, col), "kind": "data"}] if source else []
    return node(g.r_a0 + i, col, f"actual rating of user {user} for item {item}", "line", children)
