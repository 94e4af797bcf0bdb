"""Reading the `data` tab as ratings, for `model: dot_product` (collaborative filtering).

When an experiment on the experiments tab has ``model: dot_product``, the data tab holds
ratings in one of two layouts, told apart by row 1:

- **long**: one rating per row under the headers ``user``, ``item`` and ``rating``
  (case, spaces and ``_`` ignored; ``userId`` for ``user``; ``movie``/``movieId`` for ``item``,
  as MovieLens' ratings.csv names them). The layout is long when row 1 holds a ``rating`` header,
  or both a user and an item header. Other columns (a ``timestamp``) are ignored; rows run from
  row 2 to the first row empty in all three columns.
- **crosstab** (Jeremy's ``collab_filter.xlsx``): user ids down column A from A2, item ids across
  row 1 from B1 (A1 may be blank or a label), each rating in its user's row and its item's
  column, a blank cell unrated. Items end at the last filled cell of row 1; users at the first
  row empty in column A and in every item column.

Ids may be numbers or text: a number shows as the sheet shows it (14.0 is "14"). The users and
items keep the table's order (the crosstab's, or first appearance in a long table), and the
ratings are read row by row, left to right: that order is the order of the training rows.

Every problem is reported at its cell: a rating that is not a number, an id missing or repeated
(in the crosstab's header row or column), a (user, item) pair rated twice in a long table, a user
(row) or item (column) of the crosstab without any rating, no ratings at all.

`user_factors_from` / `item_factors_from` name ranges of starting factors on another tab (users
one per row × factors; factors × one column per item, as Jeremy's sheet lays items out across);
`factor_tabs` says which tabs to read, `factor_init` turns them into `init` values.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import budgets
from ..a1 import A1Error, a1, parse_range
from ..backends.base import Snapshot
from ..errors import Problem
from ..settings import Experiment
from .cells import describe_non_number, is_blank, number_or_problem

if TYPE_CHECKING:
    from ..engine.embeddings import Ids

# Row 1 headers of the long layout, normalised (lower case, without spaces and "_").
USER_HEADERS = ("user", "userid")
ITEM_HEADERS = ("item", "itemid", "movie", "movieid")
RATING_HEADERS = ("rating",)
MAX_PROBLEMS = 200  # a whole column of text says the same thing 100,000 times


@dataclass
class Ratings:
    """Where each rating came from: the ids in table order, and per rating its cells."""

    ids: Ids
    layout: str  # "long" | "crosstab"
    cells: list[str]  # A1 of each rating
    user_cells: list[str]  # A1 of the id of each rating's user (crosstab: column A of its row)
    item_cells: list[str]  # ... of its item (crosstab: row 1 of its column)

    def fingerprint_bytes(self) -> bytes:
        """The ids (and layout) as bytes: renamed ids make different parameters."""
        return "\x1f".join([self.layout, *self.ids.users, "\x1e", *self.ids.items]).encode()


def is_ratings_sheet(snapshot: Snapshot, experiments_tab: str) -> bool:
    """Whether any experiment on the experiments tab asks for `model: dot_product` (a look at the
    `model` row before the experiments are parsed: the data tab's reading depends on it)."""
    rows = snapshot.values.get(experiments_tab) or []
    for row in rows[1:]:
        if row and re.sub(r"[\s_]+", "", str(row[0] or "")).lower() == "model":
            return any(isinstance(v, str) and v.strip().lower() == "dot_product" for v in row[1:])
    return False


def show_id(value) -> str | None:
    """An id as the sheet shows it ('14' for 14.0), or None when the cell cannot be an id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not np.isfinite(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        return value.strip() or None
    return None


def _id_problem(value, what: str) -> str:
    if is_blank(value):
        return f"missing {what} id"
    article = "an" if what == "item" else "a"
    found = (f"the logical value {str(value).upper()}" if isinstance(value, bool)
             else describe_non_number(value).split("found ")[-1])
    return f"expected {article} {what} id (a number or text), found {found}"


def _normal(header) -> str:
    return re.sub(r"[\s_]+", "", str(header or "")).lower()


def parse_ratings(rows: list[list], tab: str, problems: list[Problem], warnings: list[str]):
    """(x, y, Ratings) from the data tab's rows, or None with `problems` filled."""
    header = rows[0] if rows else []
    names = [_normal(h) for h in header]
    if any(n in RATING_HEADERS for n in names) or (any(n in USER_HEADERS for n in names)
                                                   and any(n in ITEM_HEADERS for n in names)):
        return _long(rows, tab, problems, warnings)
    return _crosstab(rows, tab, problems, warnings)


def _finish(users: list[str], items: list[str], pairs: list[tuple[int, int]], y: list[float], cells, ucells,
            icells, layout: str, tab: str, problems: list[Problem]):
    if not y and not problems:
        problems.append(Problem(a1(1, 1 if layout == "crosstab" else 0, tab), "no ratings at all: "
                                + ("put ratings in the cells, a user id down column A and an item id across row 1"
                                   if layout == "crosstab" else "put one rating per row below the headers")))
    elif len(y) < budgets.MIN_DATA_ROWS and not problems:
        problems.append(Problem(tab, f"expected at least {budgets.MIN_DATA_ROWS} ratings, found {len(y)}"))
    elif len(y) > budgets.MAX_DATA_ROWS:
        problems.append(Problem(tab, f"{len(y):,} ratings; the limit is {budgets.MAX_DATA_ROWS:,}"))
    if problems:
        return None
    from ..engine.embeddings import Ids  # rating data only: a run on other data does without it

    x = np.asarray(pairs, dtype=np.float64).reshape(len(pairs), 2)
    return x, np.asarray(y, dtype=np.float64), Ratings(Ids(tuple(users), tuple(items)), layout, cells, ucells, icells)


def _long(rows: list[list], tab: str, problems: list[Problem], warnings: list[str]):
    header = rows[0]
    columns: dict[str, int] = {}
    for col, raw in enumerate(header):
        n = _normal(raw)
        role = ("user" if n in USER_HEADERS else "item" if n in ITEM_HEADERS else
                "rating" if n in RATING_HEADERS else None)
        if role is None:
            continue  # a timestamp or the learner's notes
        if role in columns:
            problems.append(Problem(a1(0, col, tab), f"a second {role} column ({str(raw).strip()!r}; the first "
                                    f"is {a1(0, columns[role], tab)})"))
        else:
            columns[role] = col
    for role, synonyms in (("user", "userId"), ("item", "movie, movieId"), ("rating", "")):
        if role not in columns:
            also = f" (or {synonyms})" if synonyms else ""
            problems.append(Problem(a1(0, len(header), tab), f"missing header {role}{also}: ratings in the long "
                                    "layout need the headers user, item and rating in row 1"))
    if problems:
        return None
    uc, ic, rc = columns["user"], columns["item"], columns["rating"]

    def get(row, c):
        return row[c] if c < len(row) else None

    last = len(rows)
    for r in range(1, len(rows)):
        if all(is_blank(get(rows[r], c)) for c in (uc, ic, rc)):
            last = r
            break
    for r in range(last + 1, len(rows)):
        if any(not is_blank(get(rows[r], c)) for c in (uc, ic, rc)):
            warnings.append(f"{tab}: the ratings stop at the empty row {last + 1}; rows from {r + 1} on are ignored")
            break
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    seen: dict[tuple[int, int], int] = {}
    pairs, y, cells, ucells, icells = [], [], [], [], []
    found = 0
    for r in range(1, last):
        row = rows[r]
        u, i = show_id(get(row, uc)), show_id(get(row, ic))
        rating, problem = number_or_problem(get(row, rc))
        bad = [(c, _id_problem(get(row, c), role)) for c, role, v in ((uc, "user", u), (ic, "item", i)) if v is None]
        if problem:
            bad.append((rc, problem))
        if bad:
            for c, message in bad:
                if found < MAX_PROBLEMS:
                    problems.append(Problem(a1(r, c, tab), message))
                found += 1
            continue
        key = (users.setdefault(u, len(users)), items.setdefault(i, len(items)))
        if key in seen:
            if found < MAX_PROBLEMS:
                problems.append(Problem(a1(r, rc, tab), f"user {u} rated item {i} twice (also in "
                                        f"{a1(seen[key], rc, tab)}); keep one rating per user and item"))
            found += 1
            continue
        seen[key] = r
        pairs.append(key)
        y.append(rating)
        cells.append(a1(r, rc, tab))
        ucells.append(a1(r, uc, tab))
        icells.append(a1(r, ic, tab))
    if found > MAX_PROBLEMS:
        problems.append(Problem(tab, f"… and {found - MAX_PROBLEMS:,} more problems in the ratings"))
    return _finish(list(users), list(items), pairs, y, cells, ucells, icells, "long", tab, problems)


def _crosstab(rows: list[list], tab: str, problems: list[Problem], warnings: list[str]):
    header = rows[0]
    width = max((c + 1 for c, v in enumerate(header) if not is_blank(v)), default=0)
    if width < 2:
        problems.append(Problem(a1(0, 1, tab), "expected ratings: item ids across row 1 from B1 and user ids "
                                "down column A (the crosstab layout), or the headers user, item and rating "
                                "(one rating per row)"))
        return None
    items: list[str] = []
    item_at: dict[str, int] = {}
    for c in range(1, width):
        i = show_id(header[c])
        if i is None:
            problems.append(Problem(a1(0, c, tab), _id_problem(header[c], "item") + " (item ids run across row 1 "
                                    f"from B1 to {a1(0, width - 1)} without gaps)"))
        elif i in item_at:
            problems.append(Problem(a1(0, c, tab), f"item id {i} repeated (also in {a1(0, item_at[i] + 1, tab)})"))
        else:
            item_at[i] = c - 1
        items.append(i)

    def get(row, c):
        return row[c] if c < len(row) else None

    last = len(rows)
    for r in range(1, len(rows)):
        if all(is_blank(get(rows[r], c)) for c in range(width)):
            last = r
            break
    for r in range(last + 1, len(rows)):
        if any(not is_blank(get(rows[r], c)) for c in range(width)):
            warnings.append(f"{tab}: the ratings stop at the empty row {last + 1}; rows from {r + 1} on are ignored")
            break
    users: list[str] = []
    user_at: dict[str, int] = {}
    rated_items = np.zeros(width - 1, bool)
    pairs, y, cells, ucells, icells = [], [], [], [], []
    found = 0
    for r in range(1, last):
        row = rows[r]
        u = show_id(get(row, 0))
        if u is None:
            problems.append(Problem(a1(r, 0, tab), _id_problem(get(row, 0), "user") + " (user ids run down "
                                    "column A from A2; the ratings of this row need one)"))
        elif u in user_at:
            problems.append(Problem(a1(r, 0, tab), f"user id {u} repeated (also in {a1(user_at[u] + 1, 0, tab)})"))
            u = None
        else:
            user_at[u] = len(users)
            users.append(u)
        rated = 0
        for c in range(1, width):
            v = get(row, c)
            if is_blank(v):
                continue  # unrated
            rating, problem = number_or_problem(v)
            if problem:
                if found < MAX_PROBLEMS:
                    problems.append(Problem(a1(r, c, tab), problem))
                found += 1
                continue
            rated += 1
            rated_items[c - 1] = True
            if u is not None and items[c - 1] is not None:
                pairs.append((user_at[u], item_at[items[c - 1]]))
                y.append(rating)
                cells.append(a1(r, c, tab))
                ucells.append(a1(r, 0, tab))
                icells.append(a1(0, c, tab))
        if not rated and u is not None and not any(not is_blank(get(row, c)) for c in range(1, width)):
            problems.append(Problem(a1(r, 0, tab), f"user {u} has no ratings; give the row a rating or delete it"))
    if last > 1:
        for c in range(1, width):
            if not rated_items[c - 1] and items[c - 1] is not None and not any(
                    not is_blank(get(rows[r], c)) for r in range(1, last)):
                problems.append(Problem(a1(0, c, tab), f"item {items[c - 1]} has no ratings; give the column "
                                        "a rating or delete it"))
    if found > MAX_PROBLEMS:
        problems.append(Problem(tab, f"… and {found - MAX_PROBLEMS:,} more cells that are not numbers"))
    return _finish(users, [i for i in items if i is not None], pairs, y, cells, ucells, icells, "crosstab", tab,
                   problems)


# ---------------------------------------------------------------------------------------------
# starting factors from ranges


FACTOR_SETTINGS = ("user_factors_from", "item_factors_from")


def factor_tabs(experiments: list[Experiment]) -> list[str]:
    """The tabs the experiments' factor ranges sit on (a second read round fetches them)."""
    tabs: list[str] = []
    for exp in experiments:
        for key in FACTOR_SETTINGS:
            text = getattr(exp, key, None)
            if text:
                try:
                    tab = parse_range(text)[0].tab
                except A1Error:
                    continue  # reported by factor_init
                if tab and tab not in tabs:
                    tabs.append(tab)
    return tabs


def factor_init(exp: Experiment, ids: Ids, snapshot: Snapshot, where, problems: list[Problem]) -> Experiment:
    """`exp` with its factor ranges' values in `init` (an `init` cell of the experiment's own wins);
    problems at the range's cells (or at the setting's cell, `where(key)`, for the range itself)."""
    from ..engine import embeddings  # rating data only

    users, items, f = len(ids.users), len(ids.items), exp.factors
    names = embeddings.param_names(ids, f, False)
    init = {}
    for key, n_rows, n_cols, what, offset in (
            ("user_factors_from", users, f, f"{users} users (one per row) × {f} factors", 0),
            ("item_factors_from", f, items, f"{f} factors × {items} items (one column per item)", users * f)):
        text = getattr(exp, key, None)
        if not text:
            continue
        try:
            first, last = parse_range(text)
        except A1Error as e:
            problems.append(Problem(where(key), f"{exp.name}: {key}: {e}"))
            continue
        tab = first.tab
        info = snapshot.tab(tab) if tab else None
        if info is None:
            titles = [t.title for t in snapshot.tabs]
            problems.append(Problem(where(key), f"{exp.name}: {key}: no tab {tab!r} in the workbook"
                                    f"{'' if tab else ' (name it: tab!B2:F16)'}; tabs: {', '.join(titles[:12])}"))
            continue
        shape = (last.row - first.row + 1, last.col - first.col + 1)
        if shape != (n_rows, n_cols):
            problems.append(Problem(where(key), f"{exp.name}: {key}: {text} is {shape[0]} rows × {shape[1]} "
                                    f"columns; expected {n_rows} × {n_cols}: {what}"))
            continue
        rows = snapshot.values.get(tab) or []
        for r in range(n_rows):
            for c in range(n_cols):
                sr, sc = first.row - 1 + r, first.col + c
                v = rows[sr][sc] if sr < len(rows) and sc < len(rows[sr]) else None
                number, problem = number_or_problem(v)
                if problem:
                    problems.append(Problem(a1(sr, sc, tab), f"{exp.name}: {key}: {problem}"))
                    continue
                # users: row = user, column = factor; items: row = factor, column = item
                k = offset + (r * f + c if key == "user_factors_from" else c * f + r)
                init[names[k]] = number
    init.update(own_init(exp, ids))
    return exp.with_init(init)




def own_init(exp: Experiment, ids: Ids) -> dict[str, float]:
    """The experiment's `init` cells under the parameters' own names: setting names are read
    without case ('init uAnn_1' arrives as 'uann_1'), parameter names keep the ids' case."""
    from ..engine import embeddings  # rating data only

    by_lower = {p.lower(): p for p in embeddings.param_names(ids, exp.factors, exp.bias)}
    return {by_lower.get(k.lower(), k): v for k, v in exp.init.items()}


def init_problems(exp: Experiment, ids: Ids, where) -> list[Problem]:
    """`init` cells that name no parameter of the dot_product model."""
    from ..engine import embeddings  # rating data only
    from ..errors import closest

    params = embeddings.param_names(ids, exp.factors, exp.bias)
    known = {p.lower() for p in params}
    return [Problem(where(f"init {p}"), f"{exp.name}: the dot_product model has no parameter {p!r}; its "
                    f"parameters are {', '.join(params[:12])}, …{closest(p, params)}")
            for p in exp.init if p.lower() not in known]


def fingerprint(ratings: Ratings, x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256(ratings.fingerprint_bytes())
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()[:12]
