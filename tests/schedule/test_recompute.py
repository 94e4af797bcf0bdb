"""Recomputation through both executors (a thread pool; RQ with a real redis-server): changed
sheets recomputed, unchanged skipped, a second delivery a duplicate, a failing sheet retried
with backoff and never in the way of the others, a roster's leaderboard written back."""

from __future__ import annotations

import time

import pytest

import schedule_fleet as fleet
from schedule_sim import lab_tabs
from sheetsync.schedule.dispatch import Dispatcher
from sheetsync.schedule.executors import RQExecutor, ThreadExecutor, build_context
from sheetsync.schedule.roster import LEADERBOARD_TAB
from sheetsync.schedule.store import Schedule
from sheetsync.schedule.work import MAX_ATTEMPTS, SheetJob

KEY = "-sheet-key-0123456789abcdefgh"  # member sheets of a roster must look like Google keys
A, B, C = SHEETS = ["lab-a" + KEY, "lab-b" + KEY, "lab-c" + KEY]


class Clock:
    """Starts at the real time: RQ workers stamp retries with their own clock."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


class Harness:
    """One executor kind behind one interface: submit jobs, run everything due at `now`."""

    def __init__(self, kind, tmp_path, redis_url=None):
        self.kind, self.clock = kind, Clock()
        self.config = {"store": str(tmp_path / "schedules.sqlite3"), "backend_factory": "schedule_fleet:open_sheet"}
        if kind == "rq":
            self.config["redis_url"] = redis_url
            self.executor = RQExecutor(self.config)
        else:
            self.executor = ThreadExecutor(build_context(self.config, clock=self.clock), threads=3, clock=self.clock)
        self.store = build_context(self.config).store

    def submit(self, *jobs):
        for job in jobs:
            self.executor.submit(job)

    def run_due(self, now=None):
        self.executor.pump(self.clock.now if now is None else now)
        if self.kind == "rq":
            fleet.PromptWorker([self.executor.queue], connection=self.executor.redis).work(burst=True)
        else:
            while not self.executor.idle():
                time.sleep(0.005)

    def close(self):
        if self.kind == "threads":
            self.executor.shutdown()

    def statuses(self, slot):
        return {o.target: o.status for o in self.store.outcomes() if o.slot == slot}


@pytest.fixture(params=["threads", "rq"])
def harness(request, tmp_path):
    fleet.FLEET.sheets.clear()
    fleet.FLEET.writes.clear()
    fleet.FLEET.fail.clear()
    for i, name in enumerate(SHEETS):
        fleet.FLEET.add(name, lab_tabs(i))
    redis_url = request.getfixturevalue("redis_client") and request.getfixturevalue("redis_url") \
        if request.param == "rq" else None
    h = Harness(request.param, tmp_path, redis_url)
    yield h
    h.close()


def slot_jobs(slot, force=False):
    return [SheetJob(t, slot, "s1", force) for t in SHEETS]


def test_changed_sheets_are_recomputed_and_unchanged_ones_skipped(harness):
    harness.submit(*slot_jobs(1.0))
    harness.run_due()
    assert harness.statuses(1.0) == dict.fromkeys(SHEETS, "recomputed")
    fleet.FLEET.edit(B, 2, 1, 42)
    harness.submit(*slot_jobs(2.0))
    harness.run_due()
    assert harness.statuses(2.0) == {A: "skipped", B: "recomputed", C: "skipped"}
    assert sorted(t for _, t in fleet.FLEET.writes) == [A, B, B, C]
    steps = fleet.FLEET.sheets[B].grids["runs"]
    assert len([r for r in steps[1:] if any(r)]) == 2  # the sheet's own run log has both runs


def test_a_second_delivery_of_a_slot_is_a_duplicate_and_writes_nothing(harness):
    harness.submit(*slot_jobs(1.0))
    harness.run_due()
    writes = len(fleet.FLEET.writes)
    harness.submit(SheetJob(A, 1.0, "s1", force=True))  # RQ redelivery, or a racing run-now
    harness.run_due()
    assert [o.status for o in harness.store.outcomes(A)] == ["recomputed", "duplicate"]
    assert len(fleet.FLEET.writes) == writes


def test_a_failing_sheet_is_retried_with_backoff_and_never_holds_up_the_others(harness):
    fleet.FLEET.fail.add(B)
    harness.submit(*slot_jobs(1.0))
    harness.run_due()
    assert harness.statuses(1.0) == {A: "recomputed", B: "retrying", C: "recomputed"}
    harness.run_due(harness.clock.now + 1)  # not yet: the retry waits its backoff
    assert [o.status for o in harness.store.outcomes(B)] == ["retrying"]
    fleet.FLEET.fail.clear()
    harness.run_due(harness.clock.now + 10_000)
    assert [(o.status, o.attempts) for o in harness.store.outcomes(B)] == [("retrying", 1), ("recomputed", 2)]


def test_retries_are_bounded(harness):
    fleet.FLEET.fail.add(A)
    harness.submit(SheetJob(A, 1.0, "s1"))
    for hop in range(MAX_ATTEMPTS + 1):
        harness.run_due(harness.clock.now + 10_000 * (hop + 1))
    statuses = [o.status for o in harness.store.outcomes(A)]
    assert statuses == ["retrying"] * (MAX_ATTEMPTS - 1) + ["failed"]
    assert "503" in harness.store.outcomes(A)[-1].message


def test_a_roster_gets_a_leaderboard_of_its_members(harness):
    fleet.FLEET.add("organiser", {"roster": [["member sheet"], [A], [C], [""], [A]]})
    harness.store.add(Schedule("", "roster", ["organiser"], every=3600, roster_tab="roster",
                               created=harness.clock.now))
    dispatcher = Dispatcher(harness.store, harness.executor, open_backend=fleet.open_sheet)
    fired = dispatcher.tick(harness.clock.now)
    assert [j.target for j in fired] == [A, C], (harness.store.list(), harness.clock.now, harness.store.outcomes())
    harness.run_due(harness.clock.now + 3600)  # the second member's spread start
    assert {o.target: o.status for o in harness.store.outcomes()} == {A: "recomputed", C: "recomputed"}
    dispatcher.tick(harness.clock.now + 61)  # the trigger process notices the new outcomes
    board = fleet.FLEET.sheets["organiser"].grids[LEADERBOARD_TAB]
    assert board[0] == ["member", "experiment", "final loss", "flavour", "status", "last run", "link"]
    assert sorted(r[0] for r in board[1:]) == ["lab-a-sheet-", "lab-c-sheet-"]
    assert all(r[6].startswith("https://docs.google.com/spreadsheets/d/lab-") for r in board[1:])
    assert all(r[1] == "basic" and r[3] == "graddesc" and r[4] == "ok" and r[2] > 0 for r in board[1:]), board
    assert "roster" in fleet.FLEET.sheets["organiser"].grids  # the user's tab is untouched
