"""Running some experiments leaves every tab where it was (backends.order, Google side), in the
one-shot write and in the staged one."""

from __future__ import annotations

import pytest

from sheetsync.demo import demo_tabs
from sheetsync.runner import run
from sheets_support import KEY, SA_EMAIL


def seed(fake):
    book = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("data", "experiments", "notes"))
    for title, rows in demo_tabs().items():
        book.by_title(title).fill(rows)
    return book


def titles(fake):
    return [s.title for s in fake.books[KEY].sheets]


@pytest.mark.parametrize("limit", [None, 60_000])  # one request, or staging tabs and a swap
def test_one_experiment_keeps_every_tab_in_its_place(fake, make_backend, limit):
    seed(fake)
    kwargs = {"payload_limit": limit} if limit else {}
    run(KEY, backend=make_backend(**kwargs))
    before = titles(fake)
    assert before[:3] == ["data", "experiments", "notes"] and before[3] == "basic steps"
    run(KEY, backend=make_backend(**kwargs), experiments=["basic"])  # was: moved to the end
    assert titles(fake) == before
    run(KEY, backend=make_backend(**kwargs), experiments=["relu", "momentum"], action="reset")
    assert titles(fake) == before
    assert ("values.batchUpdate" in [c.kind for c in fake.api_calls]) == bool(limit)  # staged, or not


def test_new_tabs_go_beside_their_neighbours_and_a_moved_tab_stays(fake, make_backend):
    seed(fake)
    run(KEY, backend=make_backend(), experiments=["basic"])
    book = fake.books[KEY]
    sheets = book.sheets
    sheets.insert(0, sheets.pop([s.title for s in sheets].index("basic epochs")))  # the learner moves it
    book.reindex()
    run(KEY, backend=make_backend(), experiments=["basic", "adam"])
    after = titles(fake)
    assert after[:4] == ["basic epochs", "data", "experiments", "notes"]
    basic = [t for t in after[4:] if t.startswith("basic ")]  # steps, map, … as the first run left them
    adam = [t for t in after[4:] if t.startswith("adam ")]
    assert after[4:] == basic + adam + ["compare", "runs", "sheetsync state"]
    assert adam[:2] == ["adam steps", "adam epochs"]
