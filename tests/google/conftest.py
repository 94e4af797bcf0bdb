"""Fixtures for the Google backend tests: a fake Sheets API behind `responses`, a throw-away
service account (a fresh RSA key made with `cryptography`), and backends that never sleep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fake_sheets import TOKEN_URI, FakeSheetsAPI
from sheets_support import KEY, SA_EMAIL

from sheetsync.backends.google import GoogleBackend
from sheetsync.backends.retry import QuotaBuckets, RetryPolicy
from sheetsync.backends.targets import credentials_from_file



@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def sa_info(rsa_key) -> dict:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "demo-project", "private_key_id": "0123456789abcdef",
            "private_key": pem, "client_email": SA_EMAIL, "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": TOKEN_URI}


@pytest.fixture
def sa_file(tmp_path, sa_info) -> Path:
    path = tmp_path / "service_account.json"
    path.write_text(json.dumps(sa_info))
    return path


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def fake(mock, rsa_key) -> FakeSheetsAPI:
    api = FakeSheetsAPI(seed=7).register(mock)
    api.add_service_account(SA_EMAIL, rsa_key.public_key())
    return api


@pytest.fixture
def book(fake):
    """A user's spreadsheet with a data tab and a notes tab, shared with the service account."""
    sheet = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("data", "notes"))
    sheet.by_title("data").fill([["x", "y"], [1, 2.5], [2, 4.5], [3, 6.5]])
    sheet.by_title("notes").cells[(0, 0)] = {"userEnteredValue": {"stringValue": "my own notes"},
                                             "note": "keep me"}
    return sheet


class Sleeps(list):
    """A sleep that records instead of waiting; also a clock that advances with it."""

    def __init__(self):
        super().__init__()
        self.now = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_backend(sa_file, sleeps):
    def make(key: str = KEY, **kwargs) -> GoogleBackend:
        creds, identity = credentials_from_file(sa_file)
        kwargs.setdefault("retry", RetryPolicy(sleep=sleeps, clock=sleeps.clock))
        kwargs.setdefault("bucket", QuotaBuckets(clock=sleeps.clock, sleep=sleeps))
        return GoogleBackend(key, creds, identity=identity, **kwargs)
    return make


@pytest.fixture
def backend(make_backend, book):
    return make_backend()
