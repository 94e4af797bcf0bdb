"""Targets and credentials: what users paste, and where keys come from."""

from __future__ import annotations

import json

import google.oauth2.credentials
import google.oauth2.service_account
import pytest

from sheetsync.backends.targets import credentials_path, load_credentials, parse_target
from sheetsync.errors import BackendError

KEY = "1yXHRaUTFlGV-Axis4vLHtoPvGUj3C_-awA_5sLK8k6g"


@pytest.mark.parametrize("url", [
    f"https://docs.google.com/spreadsheets/d/{KEY}/edit",
    f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0",
    f"https://docs.google.com/spreadsheets/d/{KEY}/edit?usp=sharing",
    f"https://docs.google.com/spreadsheets/d/{KEY}/edit?usp=sharing#gid=1523",
    f"https://docs.google.com/spreadsheets/d/{KEY}",
    f"https://docs.google.com/spreadsheets/d/{KEY}/",
    f"https://docs.google.com/spreadsheets/d/{KEY}/view",
    f"https://docs.google.com/spreadsheets/u/0/d/{KEY}/edit",
    f"https://docs.google.com/spreadsheets/u/2/d/{KEY}/htmlview",
    f"http://docs.google.com/spreadsheets/d/{KEY}/edit",
    f"docs.google.com/spreadsheets/d/{KEY}/edit",
    f"https://docs.google.com/spreadsheet/ccc?key={KEY}&usp=drive_web#gid=0",
    f"  {KEY}  ",
    KEY,
])
def test_every_usual_form_names_the_key(url):
    assert parse_target(url) == KEY


@pytest.mark.parametrize("target", ["book.xlsx", "runs/BOOK.XLSX", "/tmp/lab.xlsm", "notes.csv",
                                    "short", "https://example.com/spreadsheets/d/" + KEY, ""])
def test_things_that_are_not_google_targets_give_none(target):
    assert parse_target(target) is None


def test_an_existing_local_path_is_not_a_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / KEY).write_text("a file whose name looks like a key")
    assert parse_target(KEY) is None


def test_published_links_are_refused_with_what_to_paste_instead():
    with pytest.raises(BackendError, match=r"published.*/spreadsheets/d/KEY/edit"):
        parse_target("https://docs.google.com/spreadsheets/d/e/2PACX-1vQabcdefghijklmnopqrstuvwxyz/pubhtml")


def test_docs_urls_that_are_not_spreadsheets_are_refused():
    with pytest.raises(BackendError, match="not a Google Sheets address"):
        parse_target(f"https://docs.google.com/document/d/{KEY}/edit")


# -- credentials --------------------------------------------------------------------------------


def test_explicit_path_wins_over_environment(sa_file, tmp_path):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "other.json")}
    creds, who = load_credentials(sa_file, env=env)
    assert isinstance(creds, google.oauth2.service_account.Credentials)
    assert who.kind == "service_account" and who.email.startswith("sheetsync-test@")
    assert who.project_key == "project:demo-project"
    assert creds.scopes == ["https://www.googleapis.com/auth/spreadsheets"]


def test_environment_variable_is_used_when_no_path_is_given(sa_file):
    assert credentials_path(None, env={"GOOGLE_APPLICATION_CREDENTIALS": str(sa_file)}) == sa_file
    _, who = load_credentials(env={"GOOGLE_APPLICATION_CREDENTIALS": str(sa_file)})
    assert who.email.startswith("sheetsync-test@")


def test_gspread_default_location_is_the_last_resort(sa_file, monkeypatch):
    import gspread.auth
    monkeypatch.setattr(gspread.auth, "DEFAULT_SERVICE_ACCOUNT_FILENAME", sa_file)
    assert credentials_path(None, env={}) == sa_file
    _, who = load_credentials(env={})
    assert who.kind == "service_account"


def test_no_credentials_anywhere_says_where_to_put_them(tmp_path, monkeypatch):
    import gspread.auth
    monkeypatch.setattr(gspread.auth, "DEFAULT_SERVICE_ACCOUNT_FILENAME", tmp_path / "missing.json")
    with pytest.raises(BackendError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        load_credentials(env={})


def test_a_bare_access_token_becomes_user_credentials_without_network():
    creds, who = load_credentials(token="ya29.user-token")
    assert isinstance(creds, google.oauth2.credentials.Credentials)
    assert creds.token == "ya29.user-token" and who.kind == "user"
    assert who.user_key.startswith("user:token-") and "ya29" not in who.user_key  # a quota key, not the token
    _, other = load_credentials(token="ya29.another-user")
    assert other.user_key != who.user_key


def test_authorized_user_files_are_accepted(tmp_path):
    path = tmp_path / "authorized_user.json"
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "cid", "client_secret": "s3cret",
                                "refresh_token": "1//refresh-secret"}))
    creds, who = load_credentials(path)
    assert isinstance(creds, google.oauth2.credentials.Credentials) and who.kind == "user"


@pytest.mark.parametrize("content, message", [
    ("not json {", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"type": "external_account"}), "expected a service-account key"),
])
def test_bad_files_get_clear_messages(tmp_path, content, message):
    path = tmp_path / "creds.json"
    path.write_text(content)
    with pytest.raises(BackendError, match=message):
        load_credentials(path)


def test_a_broken_key_file_never_echoes_the_key(tmp_path, sa_info):
    info = dict(sa_info)
    del info["client_email"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(info))
    with pytest.raises(BackendError) as caught:
        load_credentials(path)
    text = str(caught.value)
    assert "not a usable Google credentials file" in text
    assert "PRIVATE KEY" not in text and info["private_key"][40:80] not in text


def test_missing_file_is_named(tmp_path):
    with pytest.raises(BackendError, match="missing.json: credentials file not found"):
        load_credentials(tmp_path / "missing.json")


def test_the_example_credentials_show_the_service_account_shape(sa_info):
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "credentials.example.json"
    info = json.loads(example.read_text())
    assert info["type"] == "service_account" and set(sa_info) <= set(info)
    assert "BEGIN PRIVATE KEY" in info["private_key"] and "PASTE" in info["private_key"]
    with pytest.raises(BackendError, match="not a usable Google credentials file"):
        load_credentials(example)  # a placeholder, refused with a message rather than a traceback
