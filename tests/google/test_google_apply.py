"""Writing: one atomic request, the plan lands whole, the user's tabs are never touched."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from sheets_plans import demo_plan, steps_tab
from sheets_support import model, user_tabs
from sheetsync.backends.base import Plan, TabPlan, Text
from sheetsync.backends.google import OWNED_KEY
from sheetsync.errors import BackendError, OwnershipError


def run(backend, plan):
    backend.read(["data"])
    backend.apply(plan)


@pytest.mark.parametrize("names, rows", [(("A",), 10), (("A", "B", "C", "D", "E"), 300)])
def test_a_run_is_three_requests_whatever_the_size(backend, fake, book, names, rows):
    run(backend, demo_plan(names, n_rows=rows))
    assert [c.kind for c in fake.api_calls] == ["get", "get", "batchUpdate"]
    assert fake.token_requests == 1


def test_the_plan_lands_with_types_formats_and_layout(backend, fake, book):
    plan = demo_plan(("A",), n_rows=20)
    run(backend, plan)
    m = model(fake, book)
    assert [s.title for s in m.sheets] == ["data", "notes", "A steps", "A epochs", "compare", "state"]
    steps = m.by_title("A steps")
    assert steps.grid == {"rowCount": 21, "columnCount": 13, "frozenRowCount": 1}
    header = steps.cells[(0, 12)]
    assert header["userEnteredValue"] == {"stringValue": "loss"}
    assert header["userEnteredFormat"]["textFormat"]["bold"] is True
    assert header["note"] == "squared error of the step"
    expected = plan.tabs[0].tables[0].columns[2].values  # numpy floats round-trip exactly
    got = np.array([steps.cells[(r, 2)]["userEnteredValue"]["numberValue"] for r in range(1, 21)])
    assert np.array_equal(got, expected)
    assert steps.cells[(1, 1)]["userEnteredValue"] == {"numberValue": 1}  # integers stay integers
    assert steps.cells[(1, 8)]["userEnteredFormat"]["numberFormat"] == {"type": "NUMBER", "pattern": "0.000000"}
    assert "userEnteredFormat" not in steps.cells[(1, 4)]  # "General" is Sheets' default
    assert steps.column_px[0] == 54 and steps.column_px[4] == 89
    compare = m.by_title("compare")
    assert compare.cells[(1, 1)]["userEnteredValue"] == {"formulaValue": "=MIN('A epochs'!B2:B6)"}
    assert compare.cells[(2, 0)]["userEnteredFormat"]["numberFormat"]["type"] == "PERCENT"
    assert compare.cells[(2, 0)]["note"] == "share of steps"
    assert m.by_title("state").props["hidden"] is True
    epochs = m.by_title("A epochs")
    assert epochs.cells[(5, 1)]["userEnteredFormat"]["backgroundColorStyle"]["rgbColor"] == {
        "red": 1.0, "green": 199 / 255, "blue": 206 / 255}
    assert epochs.cells[(5, 0)]["note"] == "diverged here"


def test_nan_and_infinities_are_never_sent(backend, fake, book):
    plan = demo_plan(("A",), n_rows=10)
    plan.tabs[0].tables[0].columns[2].values[3] = np.inf
    plan.tabs[0].tables[0].columns[3].values[4] = -np.inf
    plan.tabs.append(TabPlan("odd", texts=[Text(0, 0, float("nan"))]))
    run(backend, plan)
    sent = [c for c in fake.api_calls if c.kind == "batchUpdate"]
    raw = json.dumps([c.body for c in sent])
    assert "NaN" not in raw and "Infinity" not in raw
    m = model(fake, book)
    assert (4, 2) not in m.by_title("A steps").cells and (5, 3) not in m.by_title("A steps").cells
    assert "userEnteredValue" not in m.by_title("A epochs").cells[(5, 1)]  # filled, but blank
    assert m.by_title("odd").cells == {}


def test_charts_land_on_the_new_tabs_with_their_ranges(backend, fake, book):
    run(backend, demo_plan(("A", "B"), n_rows=10))
    m = model(fake, book)
    ids = {s.title: s.sheet_id for s in m.sheets}
    (loss_chart,) = m.by_title("A epochs").charts
    basic = loss_chart["spec"]["basicChart"]
    assert basic["chartType"] == "LINE" and basic["headerCount"] == 1
    (series,) = basic["series"]
    assert series["series"]["sourceRange"]["sources"] == [
        {"sheetId": ids["A epochs"], "startRowIndex": 0, "endRowIndex": 6, "startColumnIndex": 1, "endColumnIndex": 2}]
    assert basic["domains"][0]["domain"]["sourceRange"]["sources"][0]["sheetId"] == ids["A epochs"]
    assert loss_chart["position"]["overlayPosition"]["anchorCell"] == {"sheetId": ids["A epochs"], "rowIndex": 1, "columnIndex": 5}
    (compare_chart,) = m.by_title("compare").charts
    sources = [s["series"]["sourceRange"]["sources"][0]["sheetId"] for s in compare_chart["spec"]["basicChart"]["series"]]
    assert compare_chart["spec"]["basicChart"]["chartType"] == "SCATTER"
    assert sources == [ids["A epochs"], ids["B epochs"]]


def test_every_owned_tab_carries_the_mark(backend, fake, book):
    plan = demo_plan(("A",), n_rows=5)
    run(backend, plan)
    m = model(fake, book)
    marks = {m.sheet(d["location"]["sheetId"]).title: d for d in m.metadata.values()}
    assert set(marks) == {t.name for t in plan.tabs}
    for tab in plan.tabs:
        mark = marks[tab.name]
        assert mark["metadataKey"] == OWNED_KEY and mark["visibility"] == "DOCUMENT"
        assert json.loads(mark["metadataValue"])["kind"] == tab.kind
    assert {t.title for t in backend.read([]).tabs if t.owned} == {t.name for t in plan.tabs}


def test_a_second_run_replaces_the_owned_tabs_and_leaves_the_users_alone(backend, fake, book):
    before = user_tabs(model(fake, book))
    run(backend, demo_plan(("A",), n_rows=5))
    first_ids = {s.title: s.sheet_id for s in model(fake, book).sheets}
    run(backend, demo_plan(("A",), n_rows=8))
    m = model(fake, book)
    assert [s.title for s in m.sheets] == ["data", "notes", "A steps", "A epochs", "compare", "state"]
    assert m.by_title("A steps").grid["rowCount"] == 9
    assert all(m.by_title(t).sheet_id != first_ids[t] for t in ("A steps", "compare"))
    assert len(m.metadata) == 4  # the old marks went with the old tabs
    assert user_tabs(m) == before
    body = fake.api_calls[-1].body["requests"]
    assert [next(iter(r)) for r in body[:4]] == ["deleteSheet"] * 4 and "addSheet" in body[4]


def test_other_owned_tabs_are_kept_and_remove_deletes_owned_tabs(backend, fake, book):
    run(backend, demo_plan(("A", "B"), n_rows=5))
    run(backend, Plan(tabs=[steps_tab("A", 3)], remove=["B steps"]))
    titles = [s.title for s in model(fake, book).sheets]
    assert "B steps" not in titles and "B epochs" in titles and "A steps" in titles


@pytest.mark.parametrize("plan", [
    Plan(tabs=[TabPlan("notes", texts=[Text(0, 0, "mine now")])]),
    Plan(tabs=[TabPlan("NOTES", texts=[Text(0, 0, "mine now")])]),  # Sheets titles ignore case
    Plan(remove=["data"]),
])
def test_a_users_tab_is_never_overwritten_or_removed(backend, fake, book, plan):
    before = copy.deepcopy(model(fake, book).snapshot())
    backend.read(["data"])
    with pytest.raises(OwnershipError, match="not created by sheetsync"):
        backend.apply(plan)
    assert [c.kind for c in fake.api_calls] == ["get", "get"]  # refused before any write
    assert model(fake, book).snapshot() == before


def test_ownership_is_checked_even_without_a_prior_read(backend, fake, book):
    with pytest.raises(OwnershipError):
        backend.apply(Plan(tabs=[TabPlan("data")]))
    assert [c.kind for c in fake.api_calls] == ["get"]


def test_a_rejected_batch_changes_nothing(backend, fake, book):
    run(backend, demo_plan(("A",), n_rows=5))
    before = model(fake, book).snapshot()
    plan = demo_plan(("A",), n_rows=5)
    plan.tabs[-1].texts.append(Text(3, 0, "x" * 50_001))  # Google refuses cells over 50,000 chars
    n = len(fake.api_calls)
    with pytest.raises(BackendError, match="50000 characters"):
        run(backend, plan)
    assert model(fake, book).snapshot() == before
    assert [c.kind for c in fake.api_calls[n:]] == ["get", "get", "batchUpdate"]  # not worth a retry


def test_an_empty_plan_writes_nothing(backend, fake, book):
    backend.read(["data"])
    backend.apply(Plan())
    assert [c.kind for c in fake.api_calls] == ["get", "get"]


def test_tabs_changed_since_the_read_are_looked_at_again(backend, fake, book):
    run(backend, demo_plan(("A",), n_rows=5))
    backend.read(["data"])
    m = model(fake, book)
    gone = m.by_title("compare")
    m.sheets.remove(gone)  # someone deleted an owned tab between our read and our write
    m.reindex()
    backend.apply(demo_plan(("A",), n_rows=6))
    kinds = [c.kind for c in fake.api_calls[-4:]]
    assert kinds == ["get", "batchUpdate", "get", "batchUpdate"]
    assert fake.api_calls[-3].status == 400
    assert model(fake, book).by_title("compare") is not None


def test_a_plan_naming_a_tab_twice_is_refused(backend, book):
    with pytest.raises(BackendError, match="twice"):
        backend.apply(Plan(tabs=[TabPlan("x"), TabPlan("X")]))


def test_a_chart_on_a_missing_tab_is_refused_before_writing(backend, fake, book):
    from sheetsync.backends.base import Chart, RangeRef, Series
    plan = Plan(tabs=[TabPlan("c", charts=[Chart("line", "t", [Series("s", RangeRef("nowhere", 0, 0, 3, 1))])])])
    with pytest.raises(BackendError, match="nowhere"):
        backend.apply(plan)
    assert all(c.kind != "batchUpdate" for c in fake.api_calls)
