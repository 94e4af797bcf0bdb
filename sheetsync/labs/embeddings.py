"""The embeddings lab (`sheetsync demo --lab embeddings`): collaborative filtering, as fast.ai's
`collab_filter.xlsx` teaches it, trained by sheetsync in place of Excel's Solver.

The ratings are generated, not downloaded (see docs/embeddings.md, "The ratings"): 15 users rate
15 films of three genres (5 action, 5 romance, 5 animation) on MovieLens's scale, 0.5 to 5 in
half stars, about a fifth of the cells left blank. Each user has a hidden taste for each genre
(normal, std 1), a generosity (std 0.3) and each film a quality (std 0.3):

    rating = 3 + TASTE * taste[user, genre] + generosity[user] + quality[film] + noise (std 0.3)

rounded to the half star and clipped to 0.5…5, all drawn from numpy's PCG64 seeded with `seed`
(default 0), so the same call gives the same ratings on every machine. The titles are real films;
the ratings are invented. Nothing in the ratings names the genres: the factors have to find them.

The workbook has the tabs a learner of the course knows:

- `data`: the crosstab, user ids down column A, film titles across row 1, blanks unrated;
- `dotprod`: Jeremy's sheet, cell for cell (for 15 users, 15 films, 5 factors exactly his
  addresses): the ratings, starting factors in [0, 1) (his `RAND()`, here seeded), the
  predictions as his `MMULT` formulas and his RMSE cell `SQRT(SUMXMY2(…)/COUNT(…))`;
- `experiments`: `sgd` trains from dotprod's starting cells (`user_factors_from`,
  `item_factors_from`) with per-user and per-film biases; `adam` starts from fastai's
  initialisation (normal, std 0.01) and squeezes its predictions into 0…5.5 (`y_range`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
TASTE, GENEROSITY, QUALITY, NOISE = 1.0, 0.3, 0.3, 0.3
BLANK = 0.2  # share of the crosstab left unrated
MIN_RATINGS = 5  # per user and per film: every row and column of the crosstab has something to learn from
N_USERS = 15
FACTORS = 5

# The films across the top of `data`, genres interleaved so the columns give nothing away.
FILMS = [
    ("Die Hard (1988)", "action"),
    ("Casablanca (1942)", "romance"),
    ("Toy Story (1995)", "animation"),
    ("The Matrix (1999)", "action"),
    ("Notting Hill (1999)", "romance"),
    ("Spirited Away (2001)", "animation"),
    ("Aliens (1986)", "action"),
    ("Before Sunrise (1995)", "romance"),
    ("The Lion King (1994)", "animation"),
    ("Terminator 2 (1991)", "action"),
    ("Pride & Prejudice (2005)", "romance"),
    ("Finding Nemo (2003)", "animation"),
    ("Mad Max: Fury Road (2015)", "action"),
    ("When Harry Met Sally (1989)", "romance"),
    ("Up (2009)", "animation"),
]
GENRES = ("action", "romance", "animation")
TITLES = [title for title, _ in FILMS]
USERS = list(range(1, N_USERS + 1))

DATA, DOTPROD, EXPERIMENTS = "data", "dotprod", "experiments"
RUNS = [(DATA, EXPERIMENTS)]

WHAT_TO_LOOK_AT = (
    "Open it in Excel or LibreOffice: 'dotprod' is fast.ai's collab_filter sheet, its starting factors "
    "and its RMSE cell (what Solver would minimise); 'sgd steps' is one row per rating: the user's and the "
    "film's factors before the step, the prediction, the gradients, the factors after; 'sgd epochs' charts "
    "the RMSE falling; 'sgd factors' is the sheet's picture trained (film factors across the top, user "
    "factors down the side, the predictions over the actual ratings). 'adam' trains the same ratings from "
    "fastai's start, its predictions squeezed into 0..5.5 (y_range); 'adam similar' lists each film's "
    "nearest films: the three genres, found from the ratings alone. See docs/embeddings.md.")


def ratings(seed: int = SEED, users: int = N_USERS) -> tuple[np.ndarray, np.ndarray]:
    """(R, taste): R (users × films) in half stars, NaN where unrated; taste (users × genres) hidden."""
    rng = np.random.default_rng(seed)
    genre = np.array([GENRES.index(g) for _, g in FILMS])
    taste = rng.normal(0, 1, (users, len(GENRES)))
    generosity = rng.normal(0, GENEROSITY, (users, 1))
    quality = rng.normal(0, QUALITY, (1, len(FILMS)))
    noise = rng.normal(0, NOISE, (users, len(FILMS)))
    raw = 3 + TASTE * taste[:, genre] + generosity + quality + noise
    R = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    blank = rng.random(R.shape) < BLANK
    # Never leave a user or a film with fewer than MIN_RATINGS ratings: give back its first blanks.
    for line in [*blank, *blank.T]:  # each user's row, then each film's column (views into blank)
        for j in np.flatnonzero(line)[:max(MIN_RATINGS - int(np.sum(~line)), 0)]:
            line[j] = False
    R[blank] = np.nan
    return R, taste


def data_rows(R: np.ndarray, users=USERS, items=TITLES) -> list[list]:
    """The `data` tab: Jeremy's crosstab, user ids down column A, item ids across row 1, blanks unrated."""
    return [["userId", *items]] + [[u, *(None if np.isnan(v) else float(v) for v in row)]
                                   for u, row in zip(users, R)]


def uniform_factors(users: int, items: int, factors: int = FACTORS, seed: int = SEED):
    """Starting factors as Jeremy's sheet draws them (`RAND()`: uniform in [0, 1)), seeded:
    (users × factors, factors × items), the shapes of his two blocks."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the ratings' draws stay put
    return rng.random((users, factors)), rng.random((factors, items))


class DotprodLayout:
    """Where Jeremy's `dotprod` sheet keeps each block, for any number of users, items, factors
    (15, 15, 5 give his addresses: ratings H2:V16, item factors H19:V23, user factors B25:F39,
    predictions H25:V39, RMSE V41). Rows and columns 1-based, as A1 addresses are."""

    def __init__(self, users: int, items: int, factors: int):
        self.users, self.items, self.factors = users, items, factors
        self.id_col = factors + 2  # user ids right of the user factors (B:F for 5 factors, ids in G)
        self.first_item_col = self.id_col + 1
        self.last_item_col = self.id_col + items
        self.ratings_row = 2
        self.item_factors_row = users + 4  # two blank rows below the ratings
        self.pred_row = self.item_factors_row + factors + 1  # below the item factors and the ids row
        self.rmse_row = self.pred_row + users + 1

    def _range(self, r0, c0, r1, c1, tab=None) -> str:
        from ..a1 import col_letter

        ref = f"{col_letter(c0 - 1)}{r0}:{col_letter(c1 - 1)}{r1}"
        return f"{tab}!{ref}" if tab else ref

    def ratings(self, tab=None) -> str:
        return self._range(self.ratings_row, self.first_item_col, self.ratings_row + self.users - 1,
                           self.last_item_col, tab)

    def item_factors(self, tab=None) -> str:
        return self._range(self.item_factors_row, self.first_item_col,
                           self.item_factors_row + self.factors - 1, self.last_item_col, tab)

    def user_factors(self, tab=None) -> str:
        return self._range(self.pred_row, 2, self.pred_row + self.users - 1, self.factors + 1, tab)

    def predictions(self, tab=None) -> str:
        return self._range(self.pred_row, self.first_item_col, self.pred_row + self.users - 1,
                           self.last_item_col, tab)

    def rmse_cell(self) -> str:
        from ..a1 import col_letter

        return f"{col_letter(self.last_item_col - 1)}{self.rmse_row}"


def dotprod_rows(R: np.ndarray, users, items, U: np.ndarray, M: np.ndarray) -> list[list]:
    """Jeremy's `dotprod` sheet as rows: ratings R (NaN blank), user factors U (users × factors),
    item factors M (factors × items), his prediction formulas (0 where unrated) and RMSE cell."""
    from ..a1 import col_letter

    n_users, n_items = R.shape
    L = DotprodLayout(n_users, n_items, U.shape[1])
    rows: list[list] = [[None] * L.last_item_col for _ in range(L.rmse_row)]

    def put(r, c, v):  # 1-based, like the addresses
        rows[r - 1][c - 1] = v

    put(1, L.id_col, "movieId")
    put(2, L.id_col - 1, "userId")
    for j, item in enumerate(items):
        put(1, L.first_item_col + j, item)
        put(L.item_factors_row + L.factors, L.first_item_col + j, item)
    for i, user in enumerate(users):
        put(L.ratings_row + i, L.id_col, user)
        put(L.pred_row + i, L.id_col, user)
        for j in range(n_items):
            if not np.isnan(R[i, j]):
                put(L.ratings_row + i, L.first_item_col + j, float(R[i, j]))
    put(L.item_factors_row + L.factors - 1, L.id_col, "movieId")
    put(L.item_factors_row + L.factors, L.id_col - 1, "userId")
    for f in range(L.factors):
        for j in range(n_items):
            put(L.item_factors_row + f, L.first_item_col + j, float(M[f, j]))
        for i in range(n_users):
            put(L.pred_row + i, 2 + f, float(U[i, f]))
    first_f, last_f = col_letter(1), col_letter(L.factors)  # B … F
    top, bottom = L.item_factors_row, L.item_factors_row + L.factors - 1
    for i in range(n_users):
        r = L.pred_row + i
        for j in range(n_items):
            c = col_letter(L.first_item_col + j - 1)
            put(r, L.first_item_col + j,
                f'=IF({c}{L.ratings_row + i}="",0,MMULT(${first_f}{r}:${last_f}{r},{c}${top}:{c}${bottom}))')
    actual, predicted = L.ratings(), L.predictions()
    put(L.rmse_row, L.last_item_col - 1, "RMSE")
    put(L.rmse_row, L.last_item_col, f"=SQRT(SUMXMY2({actual},{predicted})/COUNT({actual}))")
    notes = ["Starting factors: uniform in [0, 1),", "like RAND(), seeded. sheetsync trains",
             "from them in place of Solver.", "Ratings: a copy of the data tab's."]
    for k, note in enumerate(notes[:L.factors]):  # short, as his: the factors start at column H
        put(L.item_factors_row + k, 2, note)
    return rows


def experiments_rows(layout: DotprodLayout) -> list[list]:
    return [
        ["setting", "sgd", "adam"],
        ["model", "dot_product", "dot_product"],
        ["flavour", "pytorch", "pytorch"],
        ["optimizer", "sgd", "adam"],
        ["lr", 0.02, 0.01],  # sgd: 0.05 makes the shuffled epochs' loss bounce; both find the genres
        ["batch_size", 1, 1],
        ["shuffle", True, True],
        ["epochs", 20, 10],
        ["factors", layout.factors, layout.factors],
        ["bias", True, True],
        ["y_range", None, "0, 5.5"],
        ["embedding_init", "uniform", "normal"],
        ["user_factors_from", layout.user_factors(DOTPROD), None],
        ["item_factors_from", layout.item_factors(DOTPROD), None],
    ]


def input_tabs(seed: int = SEED) -> dict[str, list[list]]:
    """The lab's tabs, as rows of values (and dotprod's formulas)."""
    R, _ = ratings(seed)
    U, M = uniform_factors(len(USERS), len(TITLES), FACTORS, seed)
    layout = DotprodLayout(len(USERS), len(TITLES), FACTORS)
    return {DATA: data_rows(R),
            EXPERIMENTS: experiments_rows(layout),
            DOTPROD: dotprod_rows(R, USERS, TITLES, U, M)}


def write_embeddings_lab(path: str | Path) -> Path:
    """A new workbook with the lab's tabs (the run adds its own after them)."""
    from ..backends.xlsx import XlsxBackend

    path = Path(path)
    XlsxBackend.create(str(path), input_tabs())
    return path
