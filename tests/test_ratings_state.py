"""The saved state of a dot_product run (a table of parameters: hundreds of names, and the
optimizer's state for each) survives the state tab's cell limits, or fails clearly."""

import numpy as np
import pytest

from sheetsync import Experiment, train
from sheetsync.engine import State
from sheetsync.engine.embeddings import Ids
from sheetsync.errors import SheetsyncError
from sheetsync.layout import state as state_tab
from sheetsync.layout.state import SavedState, read_state, render_state
from sheetsync.layout.tables import read_table


def adam_on_a_grid(users, items):
    rng = np.random.default_rng(0)
    x = np.array([(u, i) for u in range(users) for i in range(items)], float)
    y = rng.integers(1, 11, len(x)) / 2.0
    ids = Ids(tuple(f"user {u}" for u in range(users)), tuple(f"Film {i} (19{50 + i})" for i in range(items)))
    return train(Experiment("cf", model="dot_product", flavour="pytorch", optimizer="adam", factors=5, epochs=2),
                 x, y, ids=ids)


def test_a_table_state_round_trips_through_cells_no_longer_than_a_cell_holds():
    result = adam_on_a_grid(30, 30)
    assert len(result.state.params) == 30 * 5 * 2 + 60
    saved = {"cf": SavedState("cf", {"params": result.param_names}, "h", result.state.to_dict())}
    tab = render_state(saved)
    chunks = [c for c in tab.tables[0].columns if c.header.startswith("state json")]
    assert len(chunks) >= 2  # adam's two moments per entry: more than one cell's worth
    longest = max(len(v) for c in tab.tables[0].columns for v in c.values if isinstance(v, str))
    assert longest <= state_tab.CHUNK <= 32_767
    grid = [[c.header for c in tab.tables[0].columns]] + [[c.values[0] for c in tab.tables[0].columns]]
    back = read_state(read_table(grid))["cf"]
    assert State.from_dict(back.state) == result.state
    assert back.signature["params"] == result.param_names


def test_a_state_no_tab_can_hold_fails_with_a_clear_error(monkeypatch):
    result = adam_on_a_grid(4, 3)
    monkeypatch.setattr(state_tab, "MAX_COLUMNS", 12)  # what 16,384 columns of 30,000 characters are
    monkeypatch.setattr(state_tab, "CHUNK", 100)  # to a table of millions of entries
    saved = {"cf": SavedState("cf", {}, "h", result.state.to_dict())}
    with pytest.raises(SheetsyncError, match=r"cf: its saved state is [\d,]+ characters, more than the "
                                             r"'sheetsync state' tab's"):
        render_state(saved)
