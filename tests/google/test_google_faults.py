"""Fault injection at every request of a run, and staging above the payload limit.

Each case runs the same job twice from the same starting sheet: once cleanly (the expected
result), once with one fault injected at request k. The faulted run must converge to exactly
the clean result, and the user's own tabs must be identical before and after.
"""

from __future__ import annotations

import json

import pytest

from fake_sheets import clone
from sheets_plans import demo_plan
from sheetsync.backends.google import STAGING_KEY
from sheetsync.errors import BackendError
from sheets_support import state, user_tabs

FAULTS = ["429", "500", "503", "timeout", "reset"]
SMALL = 8_000  # a payload limit that makes the demo plan go through staging in 6 writes


def visible(st: dict) -> dict:
    """The tabs a user sees, each with its place among them (staging tabs sit hidden beside the
    tabs they will replace, so raw indices count them)."""
    shown = {t: dict(v) for t, v in st.items() if not any(k == STAGING_KEY for k, _ in v["marks"])}
    for rank, t in enumerate(sorted(shown, key=lambda t: shown[t]["index"])):
        shown[t]["index"] = rank
    return shown


def job(backend, plan_rows=40):
    backend.read(["data"])
    backend.apply(demo_plan(("A", "B"), n_rows=plan_rows))


REFERENCE: dict[int, tuple] = {}  # payload limit -> (sheet after a first run, expected state)


def reference(fake, book, backend) -> tuple:
    """A sheet that already holds a run (so the next must replace owned tabs) and the state a
    clean second run leaves; computed once per payload limit, the tests start from copies."""
    if backend.payload_limit not in REFERENCE:
        key = book.spreadsheet_id
        job(backend)
        start = clone(fake.books[key])
        job(backend)
        REFERENCE[backend.payload_limit] = (start, state(fake.books[key]))
    return REFERENCE[backend.payload_limit]


def clean_then_faulted(fake, book, backend, sleeps, k: int, kind: str) -> tuple[dict, dict]:
    """(expected state, state after the faulted run); also checks the user's tabs."""
    key = book.spreadsheet_id
    start, expected = reference(fake, book, backend)
    fake.books[key] = clone(start)
    users_before = user_tabs(start)
    fake.fail_at(len(fake.api_calls) + k, kind)
    sleeps.clear()
    job(backend)
    after = fake.books[key]
    assert user_tabs(after) == users_before
    assert not fake.faults, "the fault was never triggered"
    assert sleeps, "a retry must have waited"
    if kind == "429":
        assert 7.0 in sleeps  # Retry-After honoured
    return expected, state(after)


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_one_shot_run_converges_whatever_fails(fake, book, backend, sleeps, k, kind):
    expected, after = clean_then_faulted(fake, book, backend, sleeps, k, kind)
    assert after == expected


def test_staged_run_request_count(make_backend, fake, book):
    backend = make_backend(payload_limit=SMALL)
    job(backend)
    writes = [c for c in fake.api_calls if c.kind in ("batchUpdate", "values.batchUpdate")]
    assert len(fake.api_calls) == 2 + len(writes) == STAGED_REQUESTS
    assert all(c.bytes_in <= SMALL for c in writes)
    # formats and headers by batchUpdate, plain values by values.batchUpdate (RAW), then the swap
    assert [c.kind for c in writes] == ["batchUpdate"] * 2 + ["values.batchUpdate"] * 3 + ["batchUpdate"]
    assert all(c.body["valueInputOption"] == "RAW" for c in writes if c.kind == "values.batchUpdate")


STAGED_REQUESTS = 8


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("k", range(1, STAGED_REQUESTS + 1))
def test_staged_run_converges_whatever_fails(make_backend, fake, book, sleeps, k, kind):
    backend = make_backend(payload_limit=SMALL)
    expected, after = clean_then_faulted(fake, book, backend, sleeps, k, kind)
    assert after == expected


def test_staging_lands_the_same_cells_as_one_request(make_backend, fake, book):
    key = book.spreadsheet_id
    start = clone(fake.books[key])
    job(make_backend())
    one_shot = state(fake.books[key])
    fake.books[key] = start
    job(make_backend(payload_limit=SMALL))
    staged = state(fake.books[key])
    assert staged == one_shot
    assert not any(k == STAGING_KEY for m in fake.books[key].metadata.values() for k in [m["metadataKey"]])


def test_staging_tabs_are_hidden_and_marked_until_the_swap(make_backend, fake, book):
    backend = make_backend(payload_limit=SMALL)
    job(backend)
    first = fake.api_calls[2].body["requests"]
    adds = [r["addSheet"]["properties"] for r in first if "addSheet" in r]
    assert adds and all(p["hidden"] and p["title"].startswith("sheetsync staging") for p in adds)
    marks = [r["createDeveloperMetadata"]["developerMetadata"] for r in first if "createDeveloperMetadata" in r]
    assert {m["metadataKey"] for m in marks} == {STAGING_KEY}
    final = fake.api_calls[-1].body["requests"]
    kinds = [next(iter(r)) for r in final]
    assert "updateCells" not in kinds and "addSheet" not in kinds
    assert kinds.count("updateSheetProperties") == len(adds)


def test_a_failure_before_the_swap_leaves_the_visible_sheet_unchanged_and_the_next_run_cleans_up(
        make_backend, fake, book):
    backend = make_backend(payload_limit=SMALL)
    job(backend)
    key = book.spreadsheet_id
    before = visible(state(fake.books[key]))
    n = len(fake.api_calls)
    for k in range(n + 4, n + 4 + 6):  # the 2nd staging request fails every time
        fake.fail_at(k, "503")
    with pytest.raises(BackendError, match="unavailable"):
        job(backend)
    after = state(fake.books[key])
    assert visible(after) == before
    leftovers = [t for t in after if t not in before]
    assert leftovers and all(after[t]["hidden"] for t in leftovers)
    job(backend)  # the next run removes them in its final request
    final = state(fake.books[key])
    assert set(final) == set(before)
    assert not any(t.startswith("sheetsync staging") for t in final)


def test_persistent_failure_of_a_one_shot_write_changes_nothing(backend, fake, book):
    job(backend)
    key = book.spreadsheet_id
    before = clone(fake.books[key].snapshot())
    n = len(fake.api_calls)
    for k in range(n + 3, n + 3 + 6):
        fake.fail_at(k, "500")
    with pytest.raises(BackendError, match=r"HTTP 500.*6 attempts"):
        job(backend)
    assert fake.books[key].snapshot() == before


def test_every_staged_body_stays_under_the_limit(make_backend, fake, book):
    job(make_backend(payload_limit=SMALL), plan_rows=400)
    writes = [c for c in fake.api_calls if c.kind in ("batchUpdate", "values.batchUpdate")]
    assert len(writes) > 5 and max(c.bytes_in for c in writes) <= SMALL
    assert json.dumps([c.body for c in writes]).count('"addSheet"') == 6
