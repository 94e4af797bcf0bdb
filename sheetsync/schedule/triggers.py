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


class TriggerError(ValueError):
    """A schedule's timing cannot be understood; the message says what was expected."""


def make_trigger(every: int | None, cron: str | None, start: float):
    if (every is None) == (cron is None):
        raise TriggerError("give exactly one of an interval (every, seconds) or a cron expression")
    if every is not None:
        if int(every) < MIN_INTERVAL:
            raise TriggerError(f"the interval must be at least {MIN_INTERVAL} seconds, not {every}")
        # whole seconds: a slot is never a rounding error after the moment it was created at
        return IntervalTrigger(seconds=int(every), start_date=to_dt(math.floor(start)), timezone=timezone.utc)
    try:
        return CronTrigger.from_crontab(cron, timezone=timezone.utc)
    except ValueError as e:
        raise TriggerError(f"cron: {e} (expected five fields, e.g. '*/15 * * * *')") from None


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
