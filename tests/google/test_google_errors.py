"""What the user reads when Google says no — and that no token or key ever shows up in it."""

from __future__ import annotations

import logging

import google.oauth2.credentials
import pytest

from sheets_support import KEY, SA_EMAIL
from sheets_plans import demo_plan
from sheetsync.backends.google import GoogleBackend
from sheetsync.backends.retry import QuotaBuckets, RetryPolicy
from sheetsync.errors import BackendError

OTHER = "1ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210_-zyxw"
USER_TOKEN = "ya29.a0-user-secret-token-0123456789"


def user_backend(key, token, sleeps) -> GoogleBackend:
    creds = google.oauth2.credentials.Credentials(token=token)
    return GoogleBackend(key, creds, retry=RetryPolicy(sleep=sleeps, clock=sleeps.clock),
                         bucket=QuotaBuckets(clock=sleeps.clock, sleep=sleeps))


def failure(call) -> str:
    with pytest.raises(BackendError) as caught:
        call()
    return str(caught.value)


def test_not_shared_names_the_service_account(fake, make_backend):
    fake.create(OTHER, shared_with=set())
    message = failure(lambda: make_backend(OTHER).read(["data"]))
    assert SA_EMAIL in message and "Share" in message and "Editor" in message
    assert len(fake.api_calls) == 1  # a 403 is not retried


def test_not_shared_with_a_user_says_ask_the_owner(fake, sleeps):
    fake.create(OTHER, shared_with={"owner@example.com"})
    fake.add_user_token(USER_TOKEN, "student@example.com")
    message = failure(lambda: user_backend(OTHER, USER_TOKEN, sleeps).read([]))
    assert "ask its owner to share it" in message


def test_missing_spreadsheet(fake, make_backend):
    message = failure(lambda: make_backend(OTHER).read([]))
    assert f"no Google spreadsheet with key {OTHER}" in message and len(fake.api_calls) == 1


def test_an_uploaded_xlsx_is_named_as_such(fake, make_backend):
    fake.create(OTHER, shared_with={SA_EMAIL}, uploaded_xlsx=True)
    message = failure(lambda: make_backend(OTHER).read([]))
    assert "uploaded Excel file, not a Google Sheet" in message and "Save as Google Sheets" in message


def test_insufficient_scopes(fake, sleeps):
    fake.create(OTHER, shared_with={"student@example.com"})
    fake.add_user_token(USER_TOKEN, "student@example.com", scopes=("openid",))
    message = failure(lambda: user_backend(OTHER, USER_TOKEN, sleeps).read([]))
    assert "lack the Google Sheets scope" in message


def test_an_expired_user_token_asks_for_a_fresh_one(fake, sleeps):
    fake.create(OTHER, shared_with={"student@example.com"})
    message = failure(lambda: user_backend(OTHER, "ya29.expired-secret", sleeps).read([]))
    assert "expired or revoked" in message and "fresh token" in message


def test_a_revoked_service_account_key_names_the_account(fake, book, make_backend):
    fake.service_accounts.clear()  # Google no longer knows the key
    message = failure(lambda: make_backend().read([]))
    assert SA_EMAIL in message and "could not sign in" in message


def test_quota_exhaustion_after_bounded_retries(fake, book, make_backend, sleeps):
    for k in range(1, 7):
        fake.fail_at(k, "429")
    message = failure(lambda: make_backend().read([]))
    assert "quota exceeded" in message and "6 attempts" in message
    assert len(fake.api_calls) == 6 and len(sleeps) == 5 and min(sleeps) >= 7.0  # never before Retry-After


def test_network_down(fake, book, make_backend):
    for k in range(1, 7):
        fake.fail_at(k, "reset")
    message = failure(lambda: make_backend().read([]))
    assert "could not reach Google Sheets" in message and "ConnectionError" in message


def test_a_user_token_works_end_to_end(fake, book, sleeps):
    book.shared_with.add("student@example.com")
    fake.add_user_token(USER_TOKEN, "student@example.com")
    backend = user_backend(KEY, USER_TOKEN, sleeps)
    backend.read(["data"])
    backend.apply(demo_plan(("A",), n_rows=3))
    assert fake.token_requests == 0 and [c.kind for c in fake.api_calls] == ["get", "get", "batchUpdate"]


def test_no_token_or_key_in_messages_or_logs(fake, book, make_backend, sa_info, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    messages = []
    backend = make_backend()
    backend.read(["data"])
    backend.apply(demo_plan(("A",), n_rows=3))
    fake.create(OTHER, shared_with=set())
    fake.add_user_token(USER_TOKEN, "student@example.com", scopes=("openid",))
    for call in (lambda: make_backend(OTHER).read([]),
                 lambda: user_backend(OTHER, USER_TOKEN, sleeps).read([]),
                 lambda: user_backend(KEY, "ya29.expired-secret", sleeps).read([])):
        messages.append(failure(call))
    secrets = [t for t in fake.tokens] + ["ya29.expired-secret", sa_info["private_key"][60:100],
                                          sa_info["private_key_id"]]
    assert len(fake.tokens) >= 2  # the service account's token was issued and used
    text = caplog.text + "\n".join(messages)
    assert "sheets GET" in caplog.text  # we do log requests...
    for secret in secrets:
        assert secret not in text  # ...but never a secret
