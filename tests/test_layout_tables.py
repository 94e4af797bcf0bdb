"""The layout's tables are numpy `Columns`, not DataFrames: a run imports no pandas. A table read
back from a sheet must be typed as the DataFrame of the same rows was (the type decides how a
cell is written again: 1 or 1.0, blank or text), so the old pandas path is kept here as the
oracle and random read-back histories, merged with a new run's epochs, must give the same
`Column`s, cell for cell and type for type."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from sheetsync.engine.result import Columns
from sheetsync.layout.compare import _loss_by_epoch
from sheetsync.layout.epochs import _stacked, epochs_so_far, merge_history, read_history
from sheetsync.layout.state import read_state
from sheetsync.layout.tables import frame_columns, read_table

# the oracle's own fillna("") on a float column is deprecated in pandas; it is what the old path did
pytestmark = pytest.mark.filterwarnings("ignore:'str' is not supported as a fill value")


# -- the pandas path as it was (layout/tables.py, epochs.py, compare.py, state.py before) ----------


def old_read_table(rows, header_row=0):
    if not rows or len(rows) <= header_row:
        return pd.DataFrame()
    header = []
    for v in rows[header_row]:
        if v is None or (isinstance(v, str) and not v.strip()):
            break
        header.append(str(v))
    body = []
    for row in rows[header_row + 1:]:
        if not row or row[0] is None or (isinstance(row[0], str) and not row[0].strip()):
            break
        body.append([row[i] if i < len(row) else None for i in range(len(header))])
    return pd.DataFrame(body, columns=header)


def old_merge_history(previous, new):
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    previous = previous.copy()
    for name in previous.columns:
        if name in new.columns and pd.api.types.is_numeric_dtype(new[name]):
            previous[name] = pd.to_numeric(previous[name], errors="coerce")
        elif name in new.columns:
            previous[name] = previous[name].fillna("").astype(str)
    merged = pd.concat([previous, new], ignore_index=True)
    columns = list(new.columns) + [c for c in previous.columns if c not in new.columns]
    return merged[columns]


def old_with_start(history, rmse):
    start = pd.DataFrame({"epoch": [0], "rmse": [rmse]})
    return pd.concat([start, history], ignore_index=True)[list(history.columns)]


def old_frame_columns(df):
    out = []
    for name in df.columns:
        values = df[name].to_numpy()
        if values.dtype == object:
            values = [_plain(v) for v in values]
        out.append((str(name), values))
    return out


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def old_loss_by_epoch(history):
    if history is None or history.empty or "epoch" not in history or "loss" not in history:
        return {}
    epoch = pd.to_numeric(history["epoch"], errors="coerce")
    loss = pd.to_numeric(history["loss"], errors="coerce")
    s = pd.Series(loss.to_numpy(), index=epoch.to_numpy()).dropna()
    s = s[~s.index.duplicated(keep="last")]
    return dict(zip(s.index.tolist(), s.tolist()))


def old_read_state(table):
    import json

    saved = {}
    if table is None or table.empty:
        return saved
    chunks = [c for c in table.columns if str(c).startswith("state json")]
    for _, row in table.iterrows():
        try:
            text = "".join(str(row[c]) for c in chunks if isinstance(row[c], str))
            name = str(row["experiment"])
            saved[name] = (json.loads(row["signature"]), str(row["settings hash"]), json.loads(text))
        except (KeyError, TypeError, ValueError):
            continue
    return saved


def old_epochs_so_far(history):
    if "epoch" not in history:
        return len(history)
    return int((pd.to_numeric(history["epoch"], errors="coerce") > 0).sum())


# -- what the writer sees of a column: numpy's kind (the fast numeric path) or a list, and each cell


def cells(values):
    if isinstance(values, np.ndarray):
        return values.dtype.kind, [_cell(v) for v in values.tolist()]
    return "list", [_cell(v) for v in values]


def _cell(v):
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")
    return (type(v).__name__, repr(v))


def written(columns):
    return [(c.header, cells(c.values)) for c in columns]


def written_old(pairs):
    return [(name, cells(values)) for name, values in pairs]


# -- random sheets: what a reader gives back for an epochs tab someone may have edited ------------

CELLS = [None, 0, 1, 7, -3, 2.5, 1e-5, 1e16, 0.1, "", "x", "1.5", "3", " 4 ", "inf", True, False, "dead a"]
NAMES = ["epoch", "loss", "a", "b", "lr", "dead", "accuracy", "rmse", "sqrt(sum err^2)", "notes"]


def random_rows(rng: random.Random):
    header = ["epoch"] + rng.sample(NAMES[1:], rng.randint(0, 5))
    n = rng.randint(0, 6)
    kinds = {h: rng.sample(CELLS, rng.randint(1, 4)) for h in header}
    body = []
    for i in range(n):
        row = [i + 1 if rng.random() < 0.8 else rng.choice([1.0, "7", 2.5])]  # a non-blank first cell
        row += [rng.choice(kinds[h]) for h in header[1:]]
        body.append(row[:rng.randint(len(row) - 1, len(row))] if rng.random() < 0.1 else row)
    return [["a note", None]] * rng.randint(0, 2) + [header] + body


def new_epochs(rng: random.Random, first: int):
    n = rng.randint(1, 4)
    table = {"epoch": np.arange(first, first + n, dtype=np.int64), "loss": np.array([rng.random() for _ in range(n)])}
    for name in rng.sample(["a", "b", "accuracy", "rmse"], rng.randint(0, 3)):
        table[name] = np.array([rng.choice([rng.random(), float("nan"), float("inf")]) for _ in range(n)])
    table["lr"] = np.full(n, 0.01)
    if rng.random() < 0.5:
        table["dead"] = [rng.choice(["", "a", "a, b"]) for _ in range(n)]
    return Columns(table)


@pytest.mark.parametrize("seed", range(400))
def test_a_history_read_back_and_merged_is_written_as_the_pandas_path_wrote_it(seed):
    rng = random.Random(seed)
    rows = random_rows(rng)
    new = new_epochs(rng, rng.randint(1, 9))
    old_back = next((old_read_table(rows, i) for i, r in enumerate(rows) if r and r[0] == "epoch"), pd.DataFrame())
    back = read_history(rows)
    assert written(frame_columns(back)) == written_old(old_frame_columns(old_back))
    merged, old_merged = merge_history(back, new), old_merge_history(old_back, new.frame())
    assert written(frame_columns(merged)) == written_old(old_frame_columns(old_merged))
    assert epochs_so_far(merged) == old_epochs_so_far(old_merged)
    assert _loss_by_epoch(merged) == old_loss_by_epoch(old_merged)
    start = _stacked([Columns({"epoch": np.array([0]), "rmse": np.array([0.5])}), merged], list(merged))
    assert written(frame_columns(start)) == written_old(old_frame_columns(old_with_start(old_merged, 0.5)))


def test_a_run_with_nothing_read_back_writes_its_own_epochs_unchanged():
    new = Columns({"epoch": np.arange(1, 4), "loss": np.array([3.0, 2.0, np.nan]), "dead": ["", "a", ""]})
    for previous in (None, Columns({}), read_history([["epoch", "loss"]])):
        assert written(frame_columns(merge_history(previous, new))) == written_old(old_frame_columns(new.frame()))


def test_booleans_and_text_join_a_run_the_way_pandas_joined_them():
    """The asymmetric cases pandas has: booleans before floats stay objects, before whole numbers
    become whole numbers; text before numbers becomes a number where it reads as one."""
    rows = [["epoch", "loss", "a", "b", "dead", "kept"], [1, True, True, True, 0.5, True], [2, False, False, "2", None, False]]
    new = Columns({"epoch": np.array([3]), "loss": np.array([0.5]), "a": np.array([4]), "b": np.array([4]),
                   "dead": ["b"]})
    old = old_merge_history(old_read_table(rows), new.frame())
    assert written(frame_columns(merge_history(read_table(rows), new))) == written_old(old_frame_columns(old))


def test_state_rows_read_back_as_the_pandas_path_read_them():
    rows = [["experiment", "signature", "settings hash", "state json 1", "state json 2"],
            ["a", '{"model": "x"}', "abc", '{"epoch": ', "3}"],
            ["b", "not json", "def", "{}", None],
            [7, '{"m": 1}', 123, '{"t": 1}', None]]
    got = {n: (s.signature, s.settings_hash, s.state) for n, s in read_state(read_table(rows)).items()}
    assert got == old_read_state(old_read_table(rows))
    assert set(got) == {"a", "7"} and got["a"][2] == {"epoch": 3} and got["7"][1] == "123"
