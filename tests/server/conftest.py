"""Fixtures for the server tests: apps in local and Google mode, ID tokens signed by a throw-away
RSA key whose certificate is served at Google's certs URL through `responses`, and the fake
Sheets API of the Google backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from fake_sheets import FakeSheetsAPI

from sheetsync.server import create_app
from sheetsync.server.auth import GOOGLE_CERTS_URL
from server_support import (API_KEY, CLIENT_ID, KID, LOCAL_TOKEN, OWNER_TOKEN, SHEET_KEY,
                            STRANGER_TOKEN, make_key)
from sheetsync.demo import demo_tabs, write_demo


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


@pytest.fixture(scope="session")
def signing_key():
    return make_key()


@pytest.fixture(scope="session")
def other_key():
    return make_key()


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
        book.by_title(tab).fill(rows)
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
