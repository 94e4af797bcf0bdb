"""Where `recompute` runs: inline (CLI run-now, simulations), a thread pool (embedded default),
or RQ workers (a Redis URL configured).

Every executor holds jobs until their ``not_before`` (the dispatcher spreads a slot's sheets
over the interval; a transient failure comes back after its backoff) and starts the due ones
on `pump(now)`. In-process executors keep that queue in memory; `RQExecutor` keeps it in a
Redis sorted set, so a retry scheduled by a worker on another machine is seen by the trigger
process. RQ's own ``Retry`` covers a worker killed mid-run: its job is abandoned, found by
the started-job registry's cleanup, and delivered again (the claim and the lock make that
safe).

Workers rebuild their `Context` from a plain config dict (`build_context`):
``store`` (SQLite path), ``locks`` (lock folder, embedded), ``redis_url``, ``lock_ttl``
(seconds a dead worker's Redis lock outlives it, default 30), ``backend_factory``
(``"module:function"``, ``(target, credentials) -> backend``; tests use it), ``rates``.
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from .coordination import FileLocks, PacedBuckets, RedisBuckets, RedisLocks, RedisWorkState
from .store import ScheduleStore
from .work import Context, SheetJob, Transient, recompute

QUEUE_NAME = "sheetsync-recompute"
DELAYED_KEY = "sheetsync:delayed"


# -- context -----------------------------------------------------------------------------------


def build_context(config: dict, *, clock: Callable[[], float] = time.time, bucket=None) -> Context:
    store = ScheduleStore(config["store"])
    redis = connect(config["redis_url"]) if config.get("redis_url") else None
    if redis is not None:
        locks, state = RedisLocks(redis, ttl=float(config.get("lock_ttl", 30))), RedisWorkState(redis)
        bucket = bucket or RedisBuckets(redis, config.get("rates"))
    else:
        locks = FileLocks(config.get("locks") or os.path.join(os.path.dirname(os.path.abspath(config["store"])), "locks"))
        state = store
        bucket = bucket or PacedBuckets(config.get("rates"))  # every job of this context draws from it
    return Context(store, state, locks, opener(config.get("backend_factory"), bucket), clock)


def connect(url: str):
    import redis

    return redis.Redis.from_url(url)


def opener(factory: str | None, bucket) -> Callable[[str, str | None], object]:
    if factory:
        module, _, name = factory.partition(":")
        return getattr(importlib.import_module(module), name)

    def open_any(target: str, credentials: str | None):
        from sheetsync.backends import is_local, open_backend

        if is_local(target) or bucket is None:
            return open_backend(target, credentials)
        from sheetsync.backends.google import GoogleBackend

        return GoogleBackend.open(target, credentials, bucket=bucket)

    return open_any


# -- in-process executors --------------------------------------------------------------------


class QueueingExecutor:
    """Jobs wait in a heap until due; `start` runs a due job (subclasses say where)."""

    def __init__(self, context: Context, clock: Callable[[], float] = time.time):
        self.context, self.clock = context, clock
        self._heap: list[tuple[float, int, SheetJob]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}

    def submit(self, job: SheetJob) -> None:
        with self._lock:
            heapq.heappush(self._heap, (job.not_before, next(self._seq), job))
            self._pending[job.target] = self._pending.get(job.target, 0) + 1

    def is_pending(self, target: str) -> bool:
        with self._lock:
            return self._pending.get(target, 0) > 0

    def pump(self, now: float) -> int:
        due = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
        for job in due:
            self.start(job)
        return len(due)

    def next_due(self) -> float | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def start(self, job: SheetJob) -> None:
        raise NotImplementedError

    def execute(self, job: SheetJob) -> None:
        try:
            recompute(job, self.context)
        except Transient as t:
            self.submit(replace(job, attempt=job.attempt + 1, not_before=self.clock() + t.delay))
        finally:
            with self._lock:
                self._pending[job.target] -= 1


class InlineExecutor(QueueingExecutor):
    """Runs each due job in the caller's thread (the CLI's run-now; simulated clocks)."""

    def start(self, job: SheetJob) -> None:
        self.execute(job)


class ThreadExecutor(QueueingExecutor):
    """The embedded default: due jobs run on a small thread pool."""

    def __init__(self, context: Context, threads: int = 4, clock: Callable[[], float] = time.time):
        super().__init__(context, clock)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sheetsync-schedule")
        self._running: set = set()

    def start(self, job: SheetJob) -> None:
        future = self.pool.submit(self.execute, job)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future) -> None:
        with self._lock:
            self._running.discard(future)

    def idle(self) -> bool:
        with self._lock:
            return not self._running

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


# -- RQ ----------------------------------------------------------------------------------------


class RQExecutor:
    """Due jobs go to an RQ queue; the waiting ones sit in a Redis sorted set."""

    def __init__(self, config: dict, redis=None, queue_name: str = QUEUE_NAME, retries: int = 2):
        from rq import Queue

        self.config = config
        self.redis = redis or connect(config["redis_url"])
        self.queue = Queue(queue_name, connection=self.redis)
        self.retries = retries

    def submit(self, job: SheetJob) -> None:
        self.redis.zadd(DELAYED_KEY, {json.dumps(job.to_dict(), sort_keys=True): job.not_before})

    def is_pending(self, target: str) -> bool:
        return False  # duplicates are harmless (claims, hashes); no cross-machine bookkeeping

    def pump(self, now: float) -> int:
        from rq import Retry

        moved = 0
        for raw in self.redis.zrangebyscore(DELAYED_KEY, "-inf", now):
            if not self.redis.zrem(DELAYED_KEY, raw):
                continue  # another trigger process took it (there should be none: leader lock)
            self.queue.enqueue(run_rq_job, json.loads(raw), self.config, retry=Retry(max=self.retries),
                               job_timeout=900, result_ttl=3600, failure_ttl=86400)
            moved += 1
        return moved

    def next_due(self) -> float | None:
        first = self.redis.zrange(DELAYED_KEY, 0, 0, withscores=True)
        return first[0][1] if first else None


def run_rq_job(job: dict, config: dict) -> dict:
    """The function RQ workers run: one sheet, one slot. A transient failure goes back to the
    delayed set with its backoff; the worker is free for the next sheet at once."""
    context = build_context(config)
    sheet_job = SheetJob(**job)
    try:
        return recompute(sheet_job, context).to_dict()
    except Transient as t:
        retry = replace(sheet_job, attempt=sheet_job.attempt + 1, not_before=time.time() + t.delay)
        connect(config["redis_url"]).zadd(DELAYED_KEY, {json.dumps(retry.to_dict(), sort_keys=True): retry.not_before})
        return {"status": "retrying", "message": str(t)}
