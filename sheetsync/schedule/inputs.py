"""The inputs hash: has anything the runner would parse changed since the last recomputation?

Computed from one read round of the data and experiments tabs. When the sheet parses, the hash
covers exactly what the runner trains on (`Dataset.fingerprint` and each experiment's settings
through `settings_hash`), so a reformatted cell or a note changes nothing. When it does not
parse, the raw cells are hashed: a broken sheet is run once (the runner writes the problems to
its run log) and then left alone until someone edits it.
"""

from __future__ import annotations

import hashlib
import json

from sheetsync.backends.base import Snapshot
from sheetsync.errors import InputError
from sheetsync.layout.state import settings_hash
from sheetsync.parse import DATA_TAB, EXPERIMENTS_TAB, parse_inputs

INPUT_TABS = (DATA_TAB, EXPERIMENTS_TAB)


def inputs_hash(snapshot: Snapshot) -> str:
    try:
        inputs = parse_inputs(snapshot)
    except InputError:
        return "raw:" + _digest(json.dumps([snapshot.values.get(t) for t in INPUT_TABS], default=repr))
    data = inputs.dataset.fingerprint()
    parts = [data] + [f"{e.name}={settings_hash(e, data)}" for e in inputs.experiments]
    return _digest("|".join(parts))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flavours(snapshot: Snapshot) -> dict[str, str]:
    """Each experiment's optimizer flavour, for the leaderboard ({} when the sheet does not parse)."""
    try:
        return {e.name: e.flavour for e in parse_inputs(snapshot).experiments}
    except InputError:
        return {}
