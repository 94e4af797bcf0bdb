"""The trigger side: which schedules are due, which sheets they mean, and when each may start.

`Dispatcher.tick(now)` — called every second or so by exactly one process (`Scheduler` holds
the leader lock) — fires the due schedules (and run-now requests), expands lists and rosters
into sheets, checks the quota can carry the schedule, and hands the executor one job per sheet
with a ``not_before`` spread evenly over most of the interval, so 1,000 sheets every hour do
not all ask Google at once. Scheduled jobs only dispatch: no sheet is read here except a
roster's member list, and no math runs here.

Quota arithmetic (Google targets; local workbooks cost nothing): checking a sheet takes 2
requests, recomputing it 3 (`work.py`). A schedule of N sheets every P seconds needs
``3 N · 60 / P`` requests a minute at worst, against 300 per project and 60 per user
(the credentials a schedule runs with). When that does not fit, the schedule still runs —
the token bucket paces it — but it cannot keep its interval; the schedule's ``warning`` says
so and by how much, and a sheet still queued from the last slot is not queued twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from typing import Callable

from sheetsync.backends import is_local
from sheetsync.backends.retry import DEFAULT_RATES

from .coordination import RENEW, paced_rates
from .roster import DEFAULT_ROSTER_TAB, leaderboard_plan, member_targets
from .store import Outcome, Schedule, ScheduleStore
from .triggers import first_fire, make_trigger, next_fire, period
from .work import SheetJob

log = logging.getLogger(__name__)

REQUESTS_TO_RECOMPUTE = 3
SPREAD = 0.8  # share of the interval a slot's sheets are spread over; the rest absorbs retries
LEADERBOARD_EVERY = 60.0  # seconds between two leaderboard writes of one roster


def quota_warning(schedule: Schedule, n_sheets: int, every: float,
                  rates: dict[str, float] = DEFAULT_RATES) -> str | None:
    """Why this schedule cannot be met within the Sheets quota, or None when it can."""
    if n_sheets == 0 or every == float("inf"):
        return None
    need = REQUESTS_TO_RECOMPUTE * n_sheets * 60.0 / every
    allowed = min(rates["project"], rates["user"])  # one schedule runs as one user
    if need <= allowed:
        return None
    minutes = REQUESTS_TO_RECOMPUTE * n_sheets / allowed
    return (f"cannot be met within the quota: {n_sheets} sheets every {every / 60:g} min at "
            f"{REQUESTS_TO_RECOMPUTE} requests each need {need:.0f} requests/min, but one user may make "
            f"{rates['user']:g} and the project {rates['project']:g}; a round takes about {minutes:.0f} min. "
            f"Use an interval of at least {minutes:.0f} min, or split the sheets among several credentials")


def fleet_warning(schedules: list[tuple[Schedule, int, float]], rates: dict[str, float] = DEFAULT_RATES) -> str | None:
    """All schedules together against the project quota."""
    need = sum(REQUESTS_TO_RECOMPUTE * n * 60.0 / every for _, n, every in schedules if every != float("inf"))
    if need <= rates["project"]:
        return None
    return (f"all schedules together need {need:.0f} requests/min, more than the project's "
            f"{rates['project']:g}: rounds will run late")


class Dispatcher:
    def __init__(self, store: ScheduleStore, executor, *, open_backend: Callable | None = None,
                 rates: dict[str, float] | None = None, spread: float = SPREAD):
        self.store, self.executor, self.spread = store, executor, spread
        self.rates = dict(DEFAULT_RATES, **(rates or {}))
        self.open_backend = open_backend or _open_backend
        self._written: dict[str, float] = {}  # roster schedule id -> when its leaderboard was written
        self._shown: dict[str, tuple] = {}  # roster schedule id -> the member outcomes it shows
        self._members: dict[str, list[str]] = {}  # roster schedule id -> members at its last fire

    def tick(self, now: float | None = None) -> list[SheetJob]:
        now = time.time() if now is None else now
        jobs: list[SheetJob] = []
        for schedule in self.store.list():
            jobs += self._tick_one(schedule, now)
        self.executor.pump(now)
        self.refresh_leaderboards(now)
        return jobs

    def _tick_one(self, schedule: Schedule, now: float) -> list[SheetJob]:
        trigger = make_trigger(schedule.every, schedule.cron, schedule.created)
        jobs: list[SheetJob] = []
        if schedule.run_now is not None:
            jobs += self.fire(schedule, schedule.run_now, 0.0, force=True)[0]
            self.store.clear_run_now(schedule.id, schedule.run_now)
        if schedule.next_fire is None:  # new: its first fire time (an interval starts at once)
            schedule.next_fire = first_fire(trigger, schedule.every, schedule.created, now)
            self.store.set_fire(schedule.id, None, schedule.next_fire, schedule.warning)
        if schedule.next_fire is not None and schedule.next_fire <= now:
            every = period(trigger, schedule.next_fire)
            fired, warning = self.fire(schedule, schedule.next_fire, every)
            following = next_fire(trigger, schedule.next_fire, max(now, schedule.next_fire + 1e-3))
            self.store.set_fire(schedule.id, schedule.next_fire, following, warning)
            jobs += fired
        return jobs

    def fire(self, schedule: Schedule, slot: float, every: float,
             force: bool = False) -> tuple[list[SheetJob], str | None]:
        """One job per sheet of `schedule` for `slot`, spread over `spread` of the interval;
        and the quota warning, if the schedule cannot be kept."""
        try:
            targets = self.targets(schedule)
        except Exception as e:  # noqa: BLE001 - an unreadable roster is an outcome, not a crash
            self.store.record(Outcome(schedule.targets[0], slot, "failed", schedule.id,
                                      message=f"could not read the roster: {e}"[:2000], finished=time.time()))
            return [], schedule.warning
        if schedule.kind == "roster":
            self._members[schedule.id] = targets
        remote = [t for t in targets if not is_local(t)]
        warning = quota_warning(schedule, len(remote), every, self.rates) if every else None
        gap = self._gap(len(targets), len(remote), every)
        jobs = []
        for i, target in enumerate(targets):
            if not force and self.executor.is_pending(target):
                continue  # still queued from the last slot: the schedule is behind, do not pile up
            job = SheetJob(target, slot, schedule.id, force or schedule.force, schedule_credentials(schedule),
                           not_before=slot + i * gap)
            self.executor.submit(job)
            jobs.append(job)
        return jobs, warning

    def _gap(self, n: int, n_remote: int, every: float) -> float:
        """Seconds between two sheets' starts: even over the spread window, but never faster
        than the quota lets one user go (so the bucket rarely has to hold a worker back)."""
        if n == 0 or every in (0.0, float("inf")):
            return 0.0
        even = self.spread * every / n
        paced, _ = paced_rates(self.rates)  # what the buckets actually let through
        pace = REQUESTS_TO_RECOMPUTE * 60.0 / min(paced["user"], paced["project"]) if n_remote else 0.0
        return max(even, pace) if n_remote else even

    def targets(self, schedule: Schedule) -> list[str]:
        if schedule.kind != "roster":
            return list(schedule.targets)
        organiser = schedule.targets[0]
        tab = schedule.roster_tab or DEFAULT_ROSTER_TAB
        snapshot = self.open_backend(organiser, schedule_credentials(schedule)).read([tab])
        members = member_targets(snapshot.values.get(tab, []), organiser)
        if schedule.members is None:
            return members
        unconfirmed = [m for m in members if m not in schedule.members]
        if unconfirmed:  # added to the tab since its owner registered it: not checked, not run
            log.warning("roster schedule %s: %d member(s) not confirmed by its owner are left out "
                        "(register the roster again to confirm them)", schedule.id, len(unconfirmed))
        return [m for m in members if m in schedule.members]

    def refresh_leaderboards(self, now: float) -> None:
        """Rewrite a roster's leaderboard when a member has a new outcome (at most once a minute)."""
        for schedule in self.store.list():
            if schedule.kind == "roster":
                self._refresh(schedule, now)

    def _refresh(self, schedule: Schedule, now: float) -> None:
        written = self._written.get(schedule.id)
        if written is not None and now - written < LEADERBOARD_EVERY:
            return
        members = self._members.get(schedule.id)
        if not members:
            return  # not fired since this process started: nothing of ours to show yet
        try:
            last = {t: self.store.last_outcome(t) for t in members}
            news = tuple((t, o.finished, o.status) if o else None for t, o in last.items())
            if all(n is None for n in news) or news == self._shown.get(schedule.id):
                return  # nothing new (or nothing yet): no request spent
            organiser = self.open_backend(schedule.targets[0], schedule_credentials(schedule))
            organiser.apply(leaderboard_plan(members, last))
            self._written[schedule.id], self._shown[schedule.id] = now, news
        except Exception as e:  # noqa: BLE001 - the leaderboard must never stop the schedule
            log.warning("leaderboard of schedule %s not written: %s", schedule.id, e)


def schedule_credentials(schedule: Schedule) -> str | None:
    """The service-account file the schedule runs as (None: the scheduler's default
    credentials). Set by whoever runs the scheduler, never taken from an HTTP caller."""
    return schedule.credentials


def _open_backend(target: str, credentials: str | None):
    from sheetsync.backends import open_backend

    return open_backend(target, credentials)


# -- exactly one trigger process -----------------------------------------------------------


class LeaderLock:
    """Held by at most one process: an fcntl lock on a file next to the store (one machine),
    or a Redis key with expiry renewed while alive (several machines)."""

    def __init__(self, path: str | None = None, redis=None, ttl: float = 15.0, name: str = "sheetsync:leader"):
        self.path, self.redis, self.ttl, self.name = path, redis, ttl, name
        self._fd: int | None = None
        self._token = f"{os.getpid()}:{time.time()}"

    def acquire(self) -> bool:
        """True while this process is the leader (call it every tick: it renews the lease)."""
        if self.redis is not None:
            return self._acquire_redis()
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
        return True

    def _acquire_redis(self) -> bool:
        px = int(self.ttl * 1000)
        if self.redis.set(self.name, self._token, nx=True, px=px):
            return True
        return bool(self.redis.eval(RENEW, 1, self.name, self._token, px))  # ours: renew, atomically

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.redis is not None:
            held = self.redis.get(self.name)
            if held is not None and held.decode() == self._token:
                self.redis.delete(self.name)


class Scheduler:
    """The trigger loop: tick while leader, idle otherwise (gunicorn workers all run one;
    only the leader dispatches)."""

    def __init__(self, dispatcher: Dispatcher, leader: LeaderLock, *, every: float = 1.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.dispatcher, self.leader, self.every, self.clock, self.sleep = dispatcher, leader, every, clock, sleep

    def step(self) -> bool:
        if not self.leader.acquire():
            return False
        self.dispatcher.tick(self.clock())
        return True

    def run(self, stop: Callable[[], bool]) -> None:
        try:
            while not stop():
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - a bad tick is logged; the loop lives on
                    log.exception("scheduler tick failed")
                self.sleep(self.every)
        finally:
            self.leader.release()
