"""When a schedule fires: APScheduler 3's triggers, used as pure fire-time calculators.

A schedule says ``every`` (seconds) or ``cron`` (a five-field crontab line, UTC). We keep the
schedules in our own SQLite table (`store.py`) rather than APScheduler's SQLAlchemyJobStore:
the jobs are plain data (targets, not pickled callables), the CLI, the HTTP API and the trigger
process all read the same table, and SQLAlchemy stays out of the dependencies. APScheduler
still does the calendar arithmetic (DST-free UTC, cron edge cases), through `next_fire`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

MIN_INTERVAL = 60  # seconds; the quota makes anything faster pointless for a fleet
MAX_INTERVAL = 31 * 86400  # seconds; the CLI and the HTTP API alike


class TriggerError(ValueError):
    """A schedule's timing cannot be understood; the message says what was expected."""


def make_trigger(every: int | None, cron: str | None, start: float):
    """The trigger of a schedule, or `TriggerError` saying what was expected. The one check of
    a schedule's timing, for the CLI and the HTTP API alike: an interval from 1 minute to 31
    days, a cron line that parses *and* fires at least once (``0 0 31 2 *`` never does)."""
    if (every is None) == (cron is None):
        raise TriggerError("give exactly one of an interval (every, seconds) or a cron expression")
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int):
            raise TriggerError(f"the interval must be a whole number of seconds, not {every!r}")
        if not MIN_INTERVAL <= every <= MAX_INTERVAL:
            raise TriggerError(f"the interval must be from {MIN_INTERVAL} seconds (1m) to {MAX_INTERVAL} "
                               f"seconds (31d), not {every}")
        # whole seconds: a slot is never a rounding error after the moment it was created at
        return IntervalTrigger(seconds=every, start_date=to_dt(math.floor(start)), timezone=timezone.utc)
    try:
        trigger = CronTrigger.from_crontab(cron, timezone=timezone.utc)
    except (ValueError, TypeError, OverflowError) as e:
        raise TriggerError(f"cron: {e} (expected five fields, e.g. '*/15 * * * *')") from None
    if next_fire(trigger, None, start) is None:
        raise TriggerError(f"cron: {cron!r} never fires (no such date, e.g. 31 February); "
                           "check the day and month fields")
    return trigger


def next_fire(trigger, previous: float | None, now: float) -> float | None:
    """APScheduler's rule: the next fire time after `previous` that is not before `now`
    (missed slots are skipped, never replayed in a burst)."""
    fire = trigger.get_next_fire_time(to_dt(previous) if previous is not None else None, to_dt(now))
    return fire.timestamp() if fire is not None else None


def first_fire(trigger, every: int | None, created: float, now: float) -> float | None:
    """A new interval schedule fires at once (its first slot is its creation, in whole
    seconds); a cron schedule waits for its first time."""
    if every is not None:
        return float(math.floor(created))
    return next_fire(trigger, None, now)


def period(trigger, now: float) -> float:
    """The shortest gap between two of the next few fire times: what the quota must sustain."""
    times, t = [], now
    previous = None
    for _ in range(6):
        fire = next_fire(trigger, previous, t)
        if fire is None:
            break
        times.append(fire)
        previous, t = fire, fire + 1e-6
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return min(gaps) if gaps else float("inf")


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
