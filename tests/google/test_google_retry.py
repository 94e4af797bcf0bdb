"""Backoff and quota: bounded, jittered, honouring Retry-After, never sleeping in tests."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from sheetsync.backends import retry
from sheetsync.backends.retry import (QuotaBuckets, RetryPolicy, TokenBucket, retry_after_seconds,
                                      send_with_retry)


def response(status: int, retry_after: str | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    if retry_after is not None:
        r.headers["Retry-After"] = retry_after
    return r


class Script:
    """A `send` that plays answers (responses or exceptions) in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def policy(sleeps, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, clock=sleeps.clock, rng=random.Random(1), **kw)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_success(sleeps, status):
    send = Script(response(status), response(status), response(200))
    outcome = send_with_retry(send, policy(sleeps))
    assert outcome.response.status_code == 200 and outcome.attempts == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_final_statuses_are_returned_at_once(sleeps, status):
    send = Script(response(status))
    outcome = send_with_retry(send, policy(sleeps))
    assert outcome.response.status_code == status and send.calls == 1 and sleeps == []


@pytest.mark.parametrize("error", [requests.ConnectionError("reset"), requests.ReadTimeout("slow"),
                                   requests.ConnectTimeout("no route")])
def test_connection_errors_and_timeouts_are_retried(sleeps, error):
    outcome = send_with_retry(Script(error, response(200)), policy(sleeps))
    assert outcome.response.status_code == 200 and outcome.attempts == 2


def test_full_jitter_stays_under_the_exponential_cap(sleeps):
    p = policy(sleeps, base=1.0, cap=8.0)
    for attempt in range(10):
        for _ in range(50):
            assert 0.0 <= p.backoff(attempt) <= min(8.0, 2.0 ** attempt)
    # jitter: not always the same wait
    assert len({round(p.backoff(3), 6) for _ in range(20)}) > 1


def test_attempts_are_bounded(sleeps):
    send = Script(*[response(503)] * 10)
    outcome = send_with_retry(send, policy(sleeps, max_attempts=4))
    assert send.calls == 4 and outcome.response.status_code == 503 and len(sleeps) == 3


def test_total_time_is_bounded_even_when_attempts_remain(sleeps):
    send = Script(*[response(429, "50")] * 10)
    outcome = send_with_retry(send, policy(sleeps, max_attempts=10, max_total=120))
    assert sum(sleeps) <= 120 and outcome.attempts == 3 and sleeps == [50.0, 50.0]


def test_retry_after_seconds_is_honoured(sleeps):
    send_with_retry(Script(response(429, "7"), response(200)), policy(sleeps, cap=1.0))
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(response(503, later), now=now) == pytest.approx(30)
    assert retry_after_seconds(response(503, format_datetime(now - timedelta(seconds=5), usegmt=True)), now=now) == 0
    assert retry_after_seconds(response(503, "soon")) is None
    assert retry_after_seconds(response(503)) is None


def test_last_connection_error_is_reported_when_nothing_ever_answered(sleeps):
    outcome = send_with_retry(Script(*[requests.ConnectionError("reset")] * 3), policy(sleeps, max_attempts=3))
    assert outcome.response is None and isinstance(outcome.error, requests.ConnectionError)


def test_every_attempt_takes_quota(sleeps):
    taken = []
    send_with_retry(Script(response(500), response(200)), policy(sleeps), before_each=lambda: taken.append(1))
    assert len(taken) == 2


# -- token buckets ----------------------------------------------------------------------------


def test_bucket_lets_a_minutes_worth_through_then_paces(sleeps):
    buckets = QuotaBuckets({"user": 60}, clock=sleeps.clock, sleep=sleeps)
    waits = [buckets.acquire("user:a@example.com") for _ in range(61)]
    assert waits[:60] == [0.0] * 60
    assert waits[60] == pytest.approx(1.0)  # 60/min -> one more token per second


def test_user_and_project_rates_differ_and_keys_are_separate(sleeps):
    buckets = QuotaBuckets(clock=sleeps.clock, sleep=sleeps)
    assert buckets.rate_for("user:x") == 60 and buckets.rate_for("project:p") == 300
    for _ in range(60):
        buckets.acquire("user:a")
    assert buckets.acquire("user:b") == 0.0  # another user has its own bucket
    assert buckets.acquire("user:a") > 0


def test_rates_are_configurable(sleeps):
    buckets = QuotaBuckets({"user": 6}, clock=sleeps.clock, sleep=sleeps)
    for _ in range(6):
        buckets.acquire("user:a")
    assert buckets.acquire("user:a") == pytest.approx(10.0)


def test_bucket_refills_with_time():
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])
    for _ in range(60):
        assert bucket.reserve(1) == 0
    now[0] += 30
    waits = [bucket.reserve(1) for _ in range(31)]
    assert waits[:30] == [0] * 30 and waits[30] == pytest.approx(1.0)


def test_buckets_are_thread_safe():
    buckets = QuotaBuckets({"user": 1000}, clock=lambda: 0.0, sleep=lambda s: None)
    threads = [threading.Thread(target=lambda: [buckets.acquire("user:t") for _ in range(100)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert buckets._buckets["user:t"].tokens == pytest.approx(1000 - 800)


def test_the_process_shares_one_registry(monkeypatch):
    monkeypatch.setattr(retry, "_shared", None)
    assert retry.shared_buckets() is retry.shared_buckets()
    mine = retry.configure_shared_buckets({"user": 10})
    assert retry.shared_buckets() is mine and mine.rate_for("user:x") == 10


def test_backends_share_the_process_buckets_and_every_request_draws_from_them(make_backend, book, sleeps):
    buckets = QuotaBuckets({"user": 3, "project": 300}, clock=sleeps.clock, sleep=sleeps)
    first, second = make_backend(bucket=buckets), make_backend(bucket=buckets)
    first.read(["data"])   # 2 requests
    second.read(["data"])  # 2 more for the same service account: the 4th waits for a token
    assert sleeps == [pytest.approx(20.0)]  # 3 per minute -> one every 20 s
    from sheetsync.backends.google import GoogleBackend
    default_a = GoogleBackend("k" * 30, first.client.http_client.auth)
    default_b = GoogleBackend("k" * 30, first.client.http_client.auth)
    assert default_a.bucket is default_b.bucket is retry.shared_buckets()
