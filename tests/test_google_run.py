"""The same run on Google Sheets: the demo through `run()` against the fake Sheets API that the
Google backend's own tests use (tests/google/fake_sheets.py), which checks every request body
against the API's discovery document. The layout's plan lands there unchanged."""

import json

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fake_sheets import TOKEN_URI, FakeSheetsAPI

from sheetsync.backends.google import GoogleBackend
from sheetsync.backends.targets import credentials_from_file
from sheetsync.demo import demo_tabs
from sheetsync.errors import InputError
from sheetsync.runner import run

KEY = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
EMAIL = "sheetsync-run@demo-project.iam.gserviceaccount.com"


@pytest.fixture
def google(tmp_path):
    """(api, backend): a spreadsheet holding the demo's inputs, shared with a service account."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({"type": "service_account", "project_id": "demo-project", "private_key_id": "0",
                              "private_key": pem, "client_email": EMAIL, "client_id": "1",
                              "token_uri": TOKEN_URI}))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        api = FakeSheetsAPI(seed=3).register(mock)
        api.add_service_account(EMAIL, key.public_key())
        book = api.create(KEY, shared_with={EMAIL}, tabs=("data", "experiments"))
        for tab, rows in demo_tabs().items():
            book.by_title(tab).fill(rows)
        creds, identity = credentials_from_file(sa)
        yield api, GoogleBackend(KEY, creds, identity=identity)


def values(api, tab):
    return api.books[KEY].by_title(tab).values()


def test_the_demo_runs_and_continues_on_google_sheets(google):
    api, backend = google
    first = run(KEY, backend=backend)
    assert [e.start for e in first.experiments] == ["first run"] * 4
    row4 = values(api, "basic steps")[3]
    assert row4[7:10] == [15, -43, 1849]  # pred, err, loss of the workbook's first step
    second = run(KEY, backend=backend)
    assert [e.total_epochs for e in second.experiments] == [10] * 4
    assert [r[0] for r in values(api, "basic epochs")[2:12]] == list(range(1, 11))  # header in row 2


def test_bad_input_on_google_writes_only_the_run_log(google):
    api, backend = google
    api.books[KEY].by_title("data").cells[(6, 1)] = {"userEnteredValue": {"stringValue": "abc"}}
    with pytest.raises(InputError, match="data!B7: expected a number, found 'abc'"):
        run(KEY, backend=backend)
    titles = [s.title for s in api.books[KEY].sheets]
    assert titles == ["data", "experiments", "runs"]
