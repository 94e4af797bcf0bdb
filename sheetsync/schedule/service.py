"""Wiring for the entry points: the trigger process (`sheetsync scheduler`, or the server's
embedded thread), and the CLI's add/list/remove/run-now over the same store.

Without Redis the trigger process runs the jobs too, on a thread pool, and its leader lock is a
file lock beside the store. With a Redis URL it only dispatches: jobs go to RQ workers
(``rq worker -w sheetsync.schedule.worker.Worker -c sheetsync.schedule.rq_settings --url URL``,
any number, on any machine that can open the store path) and the leader lock is a Redis key.
"""

from __future__ import annotations

import os
import time

from .dispatch import Dispatcher, LeaderLock, Scheduler
from .executors import RQExecutor, ThreadExecutor, build_context, connect
from .store import ScheduleStore


def config_for(store_path: str, redis_url: str | None = None) -> dict:
    config = {"store": os.path.abspath(store_path)}
    if redis_url:
        config["redis_url"] = redis_url
    return config


def build_scheduler(store_path: str, *, redis_url: str | None = None, threads: int = 4,
                    tick: float = 1.0) -> Scheduler:
    config = config_for(store_path, redis_url)
    context = build_context(config)
    if redis_url:
        executor = RQExecutor(config)
        leader = LeaderLock(redis=connect(redis_url))
    else:
        executor = ThreadExecutor(context, threads=threads)
        leader = LeaderLock(path=os.path.abspath(store_path) + ".leader")
    dispatcher = Dispatcher(context.store, executor, open_backend=context.open_backend)
    return Scheduler(dispatcher, leader, every=tick)


def run_now_here(store: ScheduleStore, schedule_id: str, *, threads: int = 4) -> list:
    """Recompute a schedule's sheets in this process, forced, and wait for the outcomes
    (the CLI's run-now: no trigger process needed). Transient failures are retried once
    their backoff has passed, up to the usual bound."""
    schedule = store.get(schedule_id)
    if schedule is None:
        raise KeyError(schedule_id)
    context = build_context(config_for(store.path))
    executor = ThreadExecutor(context, threads=threads)
    dispatcher = Dispatcher(store, executor, open_backend=context.open_backend)
    slot = float(int(time.time()))
    jobs, _ = dispatcher.fire(schedule, slot, 0.0, force=True)
    try:
        while executor.next_due() is not None or not executor.idle():
            executor.pump(time.time())
            time.sleep(0.05)
    finally:
        executor.shutdown()
    return [o for o in store.outcomes() if o.slot == slot and o.schedule_id == schedule.id]
