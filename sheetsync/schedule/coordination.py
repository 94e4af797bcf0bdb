"""Locks, quota buckets and work state that hold across threads, processes and machines.

Embedded (no Redis): `FileLocks` — an exclusive ``fcntl.flock`` per spreadsheet, the server's
approach (the kernel drops a dead process's lock, so a killed worker never leaves a sheet
locked); `PacedBuckets` (the in-process `QuotaBuckets`, holding a smaller burst so that every
sliding minute stays inside the quota); the SQLite `ScheduleStore` for claims and hashes.

With Redis: `RedisLocks` (``SET NX PX`` with a token, released by compare-and-delete, expiring
so a dead machine's lock frees itself), `RedisBuckets` (the same token bucket as
`sheetsync.backends.retry.TokenBucket`, one Lua script per acquire so concurrent workers never
both spend the same token) and `RedisWorkState` (claims and hashes). Outcomes still go to the
SQLite store the workers are given.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from sheetsync.backends.retry import DEFAULT_RATES, QuotaBuckets, TokenBucket
from sheetsync.locks import SpreadsheetLocks as FileLocks  # noqa: F401  (the server's lock files, shared on purpose)

BURST_SHARE = 0.1  # of a minute's quota a bucket may hold; the rest is paced


def paced_rates(quota: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Rates and capacities that keep every sliding minute within `quota`.

    A bucket of capacity C refilled at R per minute lets through at most C + R in any 60 s;
    the Sheets quota counts per minute, so the fleet runs at R = 90 % and C = 10 % of it.
    """
    quota = dict(DEFAULT_RATES, **(quota or {}))
    capacities = {k: max(1.0, v * BURST_SHARE) for k, v in quota.items()}
    return {k: quota[k] - capacities[k] for k in quota}, capacities


class PacedBuckets(QuotaBuckets):
    """`QuotaBuckets` whose buckets hold only `BURST_SHARE` of a minute (see `paced_rates`)."""

    def __init__(self, quota: dict[str, float] | None = None, **kwargs):
        rates, self.capacities = paced_rates(quota)
        super().__init__(rates, **kwargs)

    def acquire(self, key: str, n: int = 1) -> float:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                kind = key.split(":", 1)[0]
                capacity = self.capacities.get(kind, self.capacities["user"])
                bucket = self._buckets[key] = TokenBucket(self.rate_for(key), capacity, clock=self.clock)
            wait = bucket.reserve(n)
        if wait > 0:
            self.sleep(wait)
        return wait


class LockTimeout(RuntimeError):
    """The spreadsheet stayed locked by another run for longer than we were willing to wait."""


RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLocks:
    """One holder per spreadsheet across machines.

    The lease is short (`ttl`) and renewed by a thread while the holder lives, so a machine that
    dies mid-run frees the sheet within `ttl` seconds and its retry need not wait long.
    """

    def __init__(self, redis, ttl: float = 30.0, poll: float = 0.05,
                 wait: float = 1800.0, sleep: Callable[[float], None] = time.sleep):
        self.redis, self.ttl, self.poll, self.wait, self.sleep = redis, ttl, poll, wait, sleep
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        name = "sheetsync:lock:" + hashlib.sha256(key.encode()).hexdigest()[:40]
        token = secrets.token_hex(16)
        waited = 0.0
        while not self.redis.set(name, token, nx=True, px=int(self.ttl * 1000)):
            if waited >= self.wait:
                raise LockTimeout(f"{key} stayed locked for {waited:.0f} s")
            self.sleep(self.poll)
            waited += self.poll
        done = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(name, token, done), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            self._release(keys=[name], args=[token])

    def _keep(self, name: str, token: str, done: threading.Event) -> None:
        while not done.wait(self.ttl / 3):
            self._renew(keys=[name], args=[token, int(self.ttl * 1000)])


# The bucket as in TokenBucket.reserve: refill, take n (possibly into debt), say how long the
# debt takes to repay. ARGV: rate per second, capacity, n, now (seconds; '' = Redis TIME).
RESERVE = """
local rate, capacity, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('time')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('hmget', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if not tokens then tokens, stamp = capacity, now end
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate) - n
-- %.17g: tostring keeps 14 digits, which would cut an epoch stamp to 1/10,000 s
redis.call('hset', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', now))
redis.call('expire', KEYS[1], math.ceil(capacity / rate) + 60)
if tokens >= 0 then return '0' end
return string.format('%.17g', -tokens / rate)
"""


class RedisBuckets:
    """`QuotaBuckets`' interface (``acquire(key, n=1)``) with the buckets in Redis.

    `clock` None means Redis's own clock (right across machines); tests inject one.
    """

    def __init__(self, redis, quota: dict[str, float] | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] = time.sleep, prefix: str = "sheetsync:bucket:"):
        self.redis, self.clock, self.sleep, self.prefix = redis, clock, sleep, prefix
        self.rates, self.capacities = paced_rates(quota)
        self._reserve = redis.register_script(RESERVE)

    def rate_for(self, key: str) -> float:
        kind = key.split(":", 1)[0]
        return self.rates.get(kind, self.rates["user"])

    def acquire(self, key: str, n: int = 1) -> float:
        rate = self.rate_for(key)
        capacity = self.capacities.get(key.split(":", 1)[0], self.capacities["user"])
        now = "" if self.clock is None else repr(self.clock())
        wait = float(self._reserve(keys=[self.prefix + key], args=[rate / 60.0, capacity, n, now]))
        if wait > 0:
            self.sleep(wait)
        return wait


class RedisWorkState:
    """Idempotency claims and last inputs hashes in Redis (the `WorkState` of work.py)."""

    def __init__(self, redis, claim_ttl: int = 7 * 86400):
        self.redis, self.claim_ttl = redis, claim_ttl

    def last_hash(self, target: str) -> str | None:
        value = self.redis.hget("sheetsync:hashes", target)
        return value.decode() if isinstance(value, bytes) else value

    def set_hash(self, target: str, inputs_hash: str) -> None:
        self.redis.hset("sheetsync:hashes", target, inputs_hash)

    def claim(self, key: str) -> bool:
        # read-then-write is enough: claims are taken under the spreadsheet's lock
        name = "sheetsync:claim:" + key
        if self.redis.get(name) in (b"done", "done"):
            return False
        self.redis.set(name, "started", ex=self.claim_ttl)
        return True

    def finish(self, key: str) -> None:
        self.redis.set("sheetsync:claim:" + key, "done", ex=self.claim_ttl)
