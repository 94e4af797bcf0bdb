"""The whole run (read, parse, train, render, write) against the fake: request counts per run."""

from __future__ import annotations

from sheetsync.demo import demo_tabs
from sheetsync.runner import run
from sheets_support import KEY, SA_EMAIL


def seed(fake):
    book = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("data", "experiments"))
    for title, rows in demo_tabs().items():
        book.by_title(title).fill(rows)
    return book


def test_every_run_of_the_demo_is_three_requests(fake, make_backend):
    seed(fake)
    first = run(KEY, backend=make_backend())
    assert [c.kind for c in fake.api_calls] == ["get", "get", "batchUpdate"]
    n = len(fake.api_calls)
    second = run(KEY, backend=make_backend())  # continues from the saved state: reads it back
    assert [c.kind for c in fake.api_calls[n:]] == ["get", "get", "batchUpdate"]
    assert set(second.tabs_written) == set(first.tabs_written)
    titles = [s.title for s in fake.books[KEY].sheets]
    assert titles[:2] == ["data", "experiments"] and "basic steps" in titles and "compare" in titles


def test_the_demo_numbers_land_in_the_sheet(fake, make_backend):
    seed(fake)
    run(KEY, backend=make_backend())
    snap = make_backend().read(["basic steps"])
    rows = snap.values["basic steps"]
    header = next(r for r in rows if r and "pred" in r)
    first_step = rows[rows.index(header) + 1]
    values = dict(zip(header, first_step))
    assert values["pred"] == 15 and values["loss"] == 1849  # graddesc.xlsm, first SGD step
