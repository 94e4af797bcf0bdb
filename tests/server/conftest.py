"""Fixtures for the server tests: apps in local and Google mode, ID tokens signed by a throw-away
RSA key whose certificate is served at Google's certs URL through `responses`, and the fake
Sheets API of the Google backend tests."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "google"))

from fake_sheets import FakeSheetsAPI  # noqa: E402

from server import create_app  # noqa: E402
from server.auth import GOOGLE_CERTS_URL  # noqa: E402
from sheetsync.demo import demo_tabs, write_demo  # noqa: E402

LOCAL_TOKEN = "local-token-for-tests-0123456789"
API_KEY = "api-key-for-tests-abcdefghijklmn"
CLIENT_ID = "1234567890-addon.apps.googleusercontent.com"
KID = "test-key-1"
SHEET_KEY = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
OWNER_TOKEN = "ya29.owner-token-with-access"
STRANGER_TOKEN = "ya29.stranger-token-without-access"


def auth(token: str = LOCAL_TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def folder(tmp_path) -> Path:
    books = tmp_path / "books"
    books.mkdir()
    write_demo(books / "demo.xlsx")
    return books


@pytest.fixture
def local_config(folder, tmp_path) -> dict:
    return {"MODE": "local", "LOCAL_FOLDER": str(folder), "LOCAL_TOKEN": LOCAL_TOKEN,
            "API_KEYS": [API_KEY], "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3"),
            "SYNC_BUDGET": 30, "WORKER_THREADS": 4}


@pytest.fixture
def app(local_config):
    app = create_app(local_config)
    yield app
    app.extensions["sheetsync"].runs.shutdown()


@pytest.fixture
def client(app):
    return app.test_client()


# -- Google ID tokens ------------------------------------------------------------------------


def make_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-certs")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def signing_key():
    return make_key()


@pytest.fixture(scope="session")
def other_key():
    return make_key()


def id_token(private_pem: str, kid: str = KID, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": CLIENT_ID, "azp": CLIENT_ID,
              "sub": "110000000000000000001", "email": "learner@example.com", "email_verified": True,
              "iat": now, "exp": now + 3600}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    signer = crypt.RSASigner.from_string(private_pem, key_id=kid)
    return jwt.encode(signer, claims).decode()


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def certs(mock, signing_key):
    mock.get(GOOGLE_CERTS_URL, json={KID: signing_key[1]})
    return mock


@pytest.fixture
def fake(mock) -> FakeSheetsAPI:
    api = FakeSheetsAPI(seed=3).register(mock)
    book = api.create(SHEET_KEY, shared_with={"owner@example.com"}, tabs=("data", "experiments"))
    for tab, rows in demo_tabs().items():
        sheet = book.by_title(tab)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if v is not None:
                    kind = "stringValue" if isinstance(v, str) else "numberValue"
                    sheet.cells[(r, c)] = {"userEnteredValue": {kind: v}}
    api.add_user_token(OWNER_TOKEN, "owner@example.com")
    api.add_user_token(STRANGER_TOKEN, "stranger@example.com")
    return api


@pytest.fixture
def google_app(tmp_path, certs):
    app = create_app({"MODE": "google", "ALLOWED_AUDIENCES": [CLIENT_ID, "another-client"],
                      "API_KEYS": [API_KEY], "RUN_STORE": str(tmp_path / "gstore" / "runs.sqlite3"),
                      "SYNC_BUDGET": 30})
    yield app
    app.extensions["sheetsync"].runs.shutdown()


@pytest.fixture
def google_client(google_app):
    return google_app.test_client()
