"""`sheetsync state`: a hidden tab holding where each experiment stopped, so any machine can
press Run again and continue exactly there.

One row per experiment: its name, the signature its state belongs to (model, optimizer,
flavour, parameters, data hash), a hash of data and settings, and the `State` as JSON, split
over several cells when it is longer than a cell holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..a1 import MAX_COLUMNS, STATE_TAB
from ..errors import SheetsyncError
from ..backends.base import Column, Table, TabPlan
from ..engine.result import Columns
from .tables import as_array

CHUNK = 30_000  # a cell holds at most 32,767 characters (Excel; Google Sheets: 50,000)
FIXED = ["experiment", "signature", "settings hash"]


@dataclass
class SavedState:
    """An experiment's saved state as the state tab holds it."""

    experiment: str
    signature: dict
    settings_hash: str
    state: dict  # State.to_dict()


def signature(experiment, param_names: list[str], data_hash: str) -> dict:
    """What a saved state must match to be continued from; anything else changing means Reset."""
    return {"model": experiment.model, "optimizer": experiment.optimizer, "flavour": experiment.flavour,
            "params": list(param_names), "data": data_hash}


def settings_hash(experiment, data_hash: str) -> str:
    text = json.dumps({"settings": experiment.settings(), "data": data_hash}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def render_state(saved: dict[str, SavedState]) -> TabPlan:
    texts = {name: json.dumps(s.state, sort_keys=True) for name, s in saved.items()}
    n_chunks = max([1] + [-(-len(t) // CHUNK) for t in texts.values()])
    if len(FIXED) + n_chunks > MAX_COLUMNS:  # a dot_product state grows with users × items × factors
        name = max(texts, key=lambda n: len(texts[n]))
        raise SheetsyncError(f"{name}: its saved state is {len(texts[name]):,} characters, more than the "
                             f"{STATE_TAB!r} tab's {MAX_COLUMNS - len(FIXED):,} cells of {CHUNK:,} hold; "
                             "train fewer users, items or factors")
    names = list(saved)
    columns = [Column("experiment", names, "@", 20),
               Column("signature", [json.dumps(saved[n].signature, sort_keys=True) for n in names], "@", 40),
               Column("settings hash", [saved[n].settings_hash for n in names], "@", 14)]
    for k in range(n_chunks):
        part = [texts[n][k * CHUNK:(k + 1) * CHUNK] or None for n in names]
        columns.append(Column(f"state json {k + 1}", part, "@", 60))
    return TabPlan(STATE_TAB, [Table(columns)], frozen_rows=1, hidden=True, kind="state")


def read_state(table: Columns | None) -> dict[str, SavedState]:
    """The rows of a state tab read back; rows that do not parse are dropped (then: Reset)."""
    saved = {}
    if table is None or not len(table):
        return saved
    chunks = [c for c in table if str(c).startswith("state json")]
    cells = {c: as_array(v).tolist() for c, v in table.items()}
    for k in range(len(table)):
        row = {c: v[k] for c, v in cells.items()}
        try:
            text = "".join(str(row[c]) for c in chunks if isinstance(row[c], str))
            name = str(row["experiment"])
            saved[name] = SavedState(name, json.loads(row["signature"]), str(row["settings hash"]),
                                     json.loads(text))
        except (KeyError, TypeError, ValueError):
            continue
    return saved
