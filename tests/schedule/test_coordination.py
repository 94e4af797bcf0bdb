"""The pieces that keep a fleet orderly: one trigger process (file or Redis leader lock, also
when embedded in several server processes), one writer per sheet (Redis lock, with a lapsing
lease), the Redis token bucket behaving exactly as the in-process one, and the quota warning."""

from __future__ import annotations

import threading
import time

import pytest

from sheetsync.server import create_app
from sheetsync.schedule.coordination import PacedBuckets, RedisBuckets, RedisLocks
from sheetsync.schedule.dispatch import Dispatcher, LeaderLock, quota_warning
from sheetsync.schedule.executors import InlineExecutor, build_context
from sheetsync.schedule.store import Schedule
from schedule_sim import SimClock


def test_one_leader_by_file_lock(tmp_path):
    first, second = LeaderLock(path=str(tmp_path / "leader")), LeaderLock(path=str(tmp_path / "leader"))
    assert first.acquire() and first.acquire()  # renewing is harmless
    assert not second.acquire()
    first.release()
    assert second.acquire()


def test_one_leader_by_redis_key_and_the_lease_lapses(redis_client):
    first, second = LeaderLock(redis=redis_client, ttl=0.2), LeaderLock(redis=redis_client, ttl=0.2)
    assert first.acquire() and not second.acquire()
    time.sleep(0.25)  # the leader died without releasing: its lease runs out
    assert second.acquire() and not first.acquire()


def test_servers_with_an_embedded_scheduler_elect_one_trigger(tmp_path):
    config = {"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 32,
              "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3"), "SCHEDULER": "embedded"}
    apps = [create_app(config) for _ in range(3)]  # as three gunicorn workers would
    try:
        schedulers = [app.extensions["sheetsync.scheduler"][0] for app in apps]
        deadline = time.monotonic() + 5
        while sum(s.leader._fd is not None for s in schedulers) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # every thread has had its first tick
        assert sum(s.leader._fd is not None for s in schedulers) == 1
    finally:
        for app in apps:
            _, stop, thread = app.extensions["sheetsync.scheduler"]
            stop.set()
        for app in apps:
            app.extensions["sheetsync.scheduler"][2].join(timeout=5)
            app.extensions["sheetsync"].runs.shutdown()


def test_a_sheet_has_one_writer_and_a_dead_holders_lock_lapses(redis_client):
    locks = RedisLocks(redis_client, ttl=0.3, poll=0.01)
    order = []

    def second():
        with locks.hold("sheet"):
            order.append("second")

    with locks.hold("sheet"):
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.5)  # longer than the lease: the renewal keeps it ours
        order.append("first")
    other.join(timeout=5)
    assert order == ["first", "second"]
    redis_client.set("sheetsync:lock:" + __import__("hashlib").sha256(b"dead").hexdigest()[:40], "x", px=100)
    started = time.monotonic()
    with locks.hold("dead"):  # held by a process that died: free once its lease lapses
        assert time.monotonic() - started < 1.0


def test_the_redis_bucket_paces_exactly_like_the_in_process_one(redis_client):
    waits = {}
    for name, make in (("local", lambda c: PacedBuckets(clock=c, sleep=c.sleep)),
                       ("redis", lambda c: RedisBuckets(redis_client, clock=c, sleep=c.sleep))):
        clock = SimClock()
        bucket = make(clock)
        waits[name] = [round(bucket.acquire("project:p"), 6) for _ in range(400)]
        waits[name + " end"] = round(clock.now - 1_800_000_000.0, 3)
    assert waits["local"] == waits["redis"]
    assert waits["redis end"] == pytest.approx((400 - 30) / 270 * 60, abs=0.01)  # 30 at once, then 270/min


def test_the_redis_bucket_holds_across_concurrent_workers(redis_client):
    clock = SimClock()
    buckets = [RedisBuckets(redis_client, clock=clock, sleep=lambda s: None) for _ in range(4)]
    debts = []

    def worker(bucket):
        for _ in range(50):
            debts.append(bucket.acquire("user:u"))

    threads = [threading.Thread(target=worker, args=(b,)) for b in buckets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 tokens taken at one instant from a bucket of 6: each later take owes one more token
    assert sorted(round(d * 54 / 60) for d in debts) == [0] * 6 + list(range(1, 195))


def test_a_schedule_beyond_the_quota_is_reported():
    fleet = Schedule("s", "list", [], every=300)
    message = quota_warning(fleet, 1000, 300.0)
    assert "cannot be met" in message and "600 requests/min" in message and "50 min" in message
    assert quota_warning(fleet, 100, 3600.0) is None


def test_the_dispatcher_records_the_warning_and_does_not_pile_up_a_late_schedule(tmp_path):
    context = build_context({"store": str(tmp_path / "s.sqlite3"), "backend_factory": "schedule_fleet:open_sheet"})
    executor = InlineExecutor(context)
    dispatcher = Dispatcher(context.store, executor)
    targets = [f"key-{i:04d}-abcdefghijklmnopqrstuvwxyz" for i in range(1000)]
    context.store.add(Schedule("", "list", targets, every=300, created=1_800_000_000.0))
    first = dispatcher.tick(1_800_000_000.0 - 1)  # registered, not yet due
    assert first == []
    jobs = dispatcher.tick(1_800_000_000.0)  # only the first sheet is due at once
    assert len(jobs) == 1000
    assert jobs[-1].not_before - jobs[0].not_before == pytest.approx(999 * 3 * 60 / 54)  # paced, not 0.8 x 300 s
    assert "cannot be met" in context.store.list()[0].warning
    again = dispatcher.tick(1_800_000_300.0)
    assert [j.target for j in again] == targets[:1]  # the rest are still queued: not queued twice
