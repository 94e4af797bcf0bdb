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


def test_a_classifier_lands_in_google_sheets_with_its_boundary(fake, make_backend):
    """The outputs lab's toy (logistic and focal on two inputs) through the Google backend: the
    boundary tab's grid, its colour scale and its scatter, and the accuracy column, as the
    .xlsx backend writes them."""
    from sheetsync.labs.outputs import input_tabs

    book = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("data", "experiments"))
    tabs = input_tabs()
    for title in ("data", "experiments"):
        book.by_title(title).fill(tabs[title])
    report = run(KEY, backend=make_backend())
    assert "toy boundary" in report.tabs_written and "toy epochs" in report.tabs_written
    (toy,) = [e for e in report.experiments if e.name == "toy"]
    assert toy.accuracy is not None and 0.9 < toy.accuracy <= 1.0
    sheet = fake.books[KEY].by_title("toy boundary")
    rules = [r for r in sheet.rules if "gradientRule" in r]
    assert rules, "the grid's colour scale"
    points = rules[0]["gradientRule"]  # probabilities on fixed points: white at p = 0.5
    assert [(points[k]["type"], points[k]["value"]) for k in ("minpoint", "midpoint", "maxpoint")] == \
        [("NUMBER", "0.0"), ("NUMBER", "0.5"), ("NUMBER", "1.0")]
    charts = [c for c in sheet.charts if c["spec"].get("basicChart", {}).get("chartType") == "SCATTER"]
    assert charts, "the data by class over the grid's axes"
    rows = make_backend().read(["toy epochs"]).values["toy epochs"]
    header = next(r for r in rows if r and "accuracy" in r)
    assert header[:3] == ["epoch", "loss", "accuracy"]
