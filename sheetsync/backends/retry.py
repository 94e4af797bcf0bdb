"""Staying inside Google's quotas: bounded retries with backoff, and a shared token bucket.

Two small pieces, both with an injectable clock and sleep so tests never wait:

- `RetryPolicy` / `send_with_retry`: 429, 408, every 5xx, connection errors and timeouts are
  retried with truncated exponential backoff and *full jitter* (a uniform wait between 0 and
  ``min(cap, base * 2**attempt)``), honouring ``Retry-After`` (seconds or an HTTP date). Both
  the number of attempts and the total time are bounded: when the server asks for a wait that
  does not fit in the remaining time we give up at once rather than sleep for nothing.
  Everything else (400, 401, 403, 404) is returned to the caller on the first answer: retrying
  cannot fix it.
- `QuotaBuckets`: one token bucket per key (``user:<email>``, ``project:<id>``), refilled
  continuously at N requests per minute (Sheets: 60 per user, 300 per project). A process-wide
  registry (`shared_buckets`) makes every backend in the process draw from the same buckets.
  The interface is just ``acquire(key, n=1)`` so a Redis-backed limiter can replace it.

Edges: a ``Retry-After`` in the past counts as 0; an unparseable one is ignored (backoff
applies); a bucket asked for more tokens than it holds reserves them and sleeps until they
accrue (requests keep their order, the balance may go negative meanwhile).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

import requests

RETRYABLE_STATUS = frozenset({408, 429})  # plus every 5xx, see `is_retryable_status`
RETRYABLE_ERRORS = (requests.ConnectionError, requests.Timeout)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or 500 <= status <= 599


@dataclass
class RetryPolicy:
    """How hard to try. Defaults follow Google's guidance (cap 32 s) within a 2-minute budget."""

    max_attempts: int = 6
    base: float = 1.0
    cap: float = 32.0
    max_total: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self.rng.uniform(0.0, min(self.cap, self.base * (2**attempt)))


@dataclass
class Outcome:
    """What the retry loop saw: the final response (or error) and how many tries it took."""

    response: requests.Response | None
    error: Exception | None
    attempts: int
    waited: float


def retry_after_seconds(response: requests.Response, now: datetime | None = None) -> float | None:
    """The server's ``Retry-After`` in seconds, from either form the header may take."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT by definition
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def send_with_retry(send: Callable[[], requests.Response], policy: RetryPolicy,
                    before_each: Callable[[], None] | None = None) -> Outcome:
    """Call `send` until it answers with something final, or the budget runs out.

    `before_each` runs before every attempt (quota accounting: a retry is a request too).
    Returns the last response, or the last connection error when there never was one.
    """
    start = policy.clock()
    waited = 0.0
    response: requests.Response | None = None
    error: Exception | None = None
    for attempt in range(policy.max_attempts):
        if before_each:
            before_each()
        try:
            response, error = send(), None
        except RETRYABLE_ERRORS as exc:
            response, error = None, exc
        if response is not None and not is_retryable_status(response.status_code):
            return Outcome(response, None, attempt + 1, waited)
        if attempt + 1 == policy.max_attempts:
            break
        delay = policy.backoff(attempt)
        asked = retry_after_seconds(response) if response is not None else None
        if asked is not None:
            delay = max(delay, asked)  # never earlier than the server asked
        if policy.clock() - start + delay > policy.max_total:
            break
        policy.sleep(delay)
        waited += delay
    return Outcome(response, error, attempt + 1, waited)


# ---------------------------------------------------------------------------------------------
# Token buckets


class Limiter(Protocol):
    """Anything that can make a caller wait for quota (in-process now, Redis later)."""

    def acquire(self, key: str, n: int = 1) -> float:
        """Take `n` tokens from `key`'s bucket, waiting as needed; returns seconds waited."""


DEFAULT_RATES = {"user": 60.0, "project": 300.0}  # Sheets requests per minute


class TokenBucket:
    """`rate` tokens per minute, holding at most `capacity` (a full minute's worth by default)."""

    def __init__(self, rate_per_minute: float, capacity: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_minute / 60.0
        self.capacity = capacity if capacity is not None else rate_per_minute
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def reserve(self, n: int) -> float:
        """Take `n` tokens now (possibly into debt); seconds until the debt is paid."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class QuotaBuckets:
    """Token buckets by key; the rate comes from the key's prefix (``user:…``, ``project:…``)."""

    def __init__(self, rates: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rates = dict(DEFAULT_RATES, **(rates or {}))
        self.clock = clock
        self.sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def rate_for(self, key: str) -> float:
        kind = key.split(":", 1)[0]
        return self.rates.get(kind, self.rates["user"])

    def acquire(self, key: str, n: int = 1) -> float:
        with self._lock:  # the reservation is atomic; the wait happens outside the lock
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate_for(key), clock=self.clock)
            wait = bucket.reserve(n)
        if wait > 0:
            self.sleep(wait)
        return wait


_shared: QuotaBuckets | None = None
_shared_lock = threading.Lock()


def shared_buckets() -> QuotaBuckets:
    """The process-wide buckets every Google backend uses unless given its own."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = QuotaBuckets()
        return _shared


def configure_shared_buckets(rates: dict[str, float] | None = None, **kwargs) -> QuotaBuckets:
    """Replace the process-wide buckets (new rates, or a fake clock in tests)."""
    global _shared
    with _shared_lock:
        _shared = QuotaBuckets(rates, **kwargs)
        return _shared
