"""1,000 sheets through a simulated day of schedules, inside the Sheets quota.

Ten schedules of 100 sheets each, every two hours, each schedule running as its own user; the
sheets were recomputed yesterday (their hashes are known); 150 edits land at random moments;
at 12:17 four organisers press run-now (1,200 requests wanted at once: 4x the project's minute,
5x each user's). The fleet is in memory with Google's request pattern (schedule_sim.py); the
clock is simulated, so a day takes seconds. Checked: no sliding minute beyond 300 requests
for the project or 60 for any user; one outcome per sheet per slot (none lost, none twice);
every edit recomputed at the sheet's next check, within one interval; nothing else recomputed.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from schedule_sim import SimSheets, lab_tabs, max_in_window
from sheetsync.schedule.coordination import FileLocks, PacedBuckets, RedisBuckets, RedisLocks, RedisWorkState
from sheetsync.schedule.dispatch import Dispatcher
from sheetsync.schedule.executors import InlineExecutor
from sheetsync.schedule.inputs import INPUT_TABS, inputs_hash
from sheetsync.schedule.store import Schedule, ScheduleStore
from sheetsync.schedule.work import Context

PER_SCHEDULE, HOUR, DAY, EVERY = 100, 3600.0, 86400.0, 7200.0
# (schedules, simulated seconds, schedules pressing run-now, edits): the Redis variant is
# smaller because each bucket take is a round trip to a real server.
SCENARIOS = {"local": (10, DAY, 4, 150), "redis": (2, DAY / 2, 2, 40)}


def build(coordination, clock, tmp_path, redis_client=None):
    if coordination == "redis":
        bucket = RedisBuckets(redis_client, clock=clock, sleep=clock.sleep)
        locks, state = RedisLocks(redis_client, sleep=clock.sleep), RedisWorkState(redis_client)
    else:
        bucket = PacedBuckets(clock=clock, sleep=clock.sleep)
        locks, state = FileLocks(str(tmp_path / "locks")), None
    fleet = SimSheets(clock, bucket)
    store = ScheduleStore(str(tmp_path / "schedules.sqlite3"))
    context = Context(store, state or store, locks, fleet.open, clock)
    executor = InlineExecutor(context, clock)
    return fleet, context, executor, Dispatcher(store, executor, open_backend=fleet.open)


def register(fleet, context, n_schedules, start):
    """The fleet as yesterday left it: every sheet's inputs hash already recorded."""
    for s in range(n_schedules):
        targets = [f"sheet-{s}-{i:03d}" for i in range(PER_SCHEDULE)]
        for i, t in enumerate(targets):
            fleet.add(t, lab_tabs(s * PER_SCHEDULE + i))
            context.state.set_hash(t, inputs_hash(fleet.sheets[t].read(list(INPUT_TABS))))
        context.store.add(Schedule("", "list", targets, every=int(EVERY), owner=f"group{s}",
                                   credentials=f"user{s}", created=start))


def drive(clock, dispatcher, executor, store, until, edits):
    """Advance the simulated clock event by event: schedule fires, due jobs, edits."""
    while clock.now < until:
        while edits and edits[0][0] <= clock.now:
            edits.pop(0)[1]()
        dispatcher.tick(clock.now)
        upcoming = [executor.next_due(), edits[0][0] if edits else None]
        upcoming += [s.next_fire for s in store.list()]
        nxt = min([t for t in upcoming if t is not None], default=until)
        clock.advance_to(min(nxt, until))  # never back: overdue work runs at the next tick


@pytest.mark.parametrize("coordination", ["local", "redis"])
def test_a_day_of_schedules_for_a_thousand_sheets(coordination, clock, tmp_path, request):
    redis_client = request.getfixturevalue("redis_client") if coordination == "redis" else None
    n_schedules, length, pressing, n_edits = SCENARIOS[coordination]
    fleet, context, executor, dispatcher = build(coordination, clock, tmp_path, redis_client)
    store, start = context.store, clock.now
    register(fleet, context, n_schedules, start)
    rng = random.Random(7)
    targets = sorted(fleet.sheets)
    edit_log: list[tuple[float, str]] = []

    def edit(target, value):
        def apply():
            fleet.edit(target, 1, 1, value)
            edit_log.append((clock.now, target))
        return apply

    edits = sorted(((start + rng.uniform(0, length - 2 * EVERY), i), edit(rng.choice(targets), 100 + i))
                   for i in range(n_edits))
    edits = [(t, f) for (t, _), f in edits]
    press = start + length / 2 + 17 * 60
    drive(clock, dispatcher, executor, store, press, edits)
    for schedule in store.list()[:pressing]:
        store.request_run(schedule.id, clock.now)
    drive(clock, dispatcher, executor, store, start + length, edits)

    outcomes = store.outcomes()
    check_quota(fleet, n_schedules * PER_SCHEDULE * 2 * (length // EVERY - 1))
    check_one_outcome_per_sheet_and_slot(outcomes, store)
    check_edits_recomputed_within_an_interval(outcomes, edit_log)
    check_nothing_else_recomputed(outcomes, edit_log, press, pressing)


def check_quota(fleet, at_least):
    assert len(fleet.requests) >= at_least  # the day did happen: every sheet checked every slot
    assert max_in_window([t for t, _, _ in fleet.requests]) <= 300
    by_user = defaultdict(list)
    for t, user, _ in fleet.requests:
        by_user[user].append(t)
    assert max(max_in_window(times) for times in by_user.values()) <= 60


def check_one_outcome_per_sheet_and_slot(outcomes, store):
    per = Counter((o.target, o.slot) for o in outcomes)
    assert max(per.values()) == 1  # none twice
    slots = Counter((o.schedule_id, o.slot) for o in outcomes)
    assert set(slots.values()) == {PER_SCHEDULE}  # none lost: every slot reached all its sheets
    fired = {(s.id, s.last_fire) for s in store.list()}
    assert fired <= set(slots)
    assert not [o for o in outcomes if o.status in ("failed", "retrying", "duplicate")]


def check_edits_recomputed_within_an_interval(outcomes, edit_log):
    by_target = defaultdict(list)
    for o in outcomes:
        by_target[o.target].append(o)
    for when, target in edit_log:
        after = [o for o in by_target[target] if o.finished >= when]
        assert after, f"{target} edited at {when} was never checked again"
        first = min(after, key=lambda o: o.finished)
        assert first.status == "recomputed", (target, first)
        assert first.finished - when <= EVERY + 60  # its next check, one interval later at most


def check_nothing_else_recomputed(outcomes, edit_log, press, pressing):
    """Recomputed: the run-now (forced) and the first check after an edit; nothing else."""
    edited = defaultdict(list)
    for when, target in edit_log:
        edited[target].append(when)
    last_run: dict[str, float] = {}
    for o in sorted(outcomes, key=lambda o: o.finished):
        if o.status != "recomputed":
            continue
        forced = o.slot == press
        since = last_run.get(o.target, float("-inf"))
        assert forced or any(since <= w <= o.finished for w in edited[o.target]), o
        last_run[o.target] = o.finished
    assert sum(o.slot == press and o.status == "recomputed" for o in outcomes) == pressing * PER_SCHEDULE
    recomputed = sum(o.status == "recomputed" for o in outcomes)
    assert recomputed <= pressing * PER_SCHEDULE + len(edit_log)
    assert sum(o.status == "skipped" for o in outcomes) == len(outcomes) - recomputed
