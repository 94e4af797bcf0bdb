"""Who may call: Google ID tokens (every way one can be wrong), API keys, the local token."""

from __future__ import annotations

import logging
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_support import (API_KEY, CLIENT_ID, LOCAL_TOKEN, OWNER_TOKEN, SHEET_KEY, STRANGER_TOKEN, auth,
                      id_token)

RUN = {"spreadsheet": SHEET_KEY}


def assert_401(response, words: str):
    assert response.status_code == 401
    assert response.is_json
    error = response.json["error"]
    assert error["code"] == "unauthorized"
    assert words in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_valid_id_token_is_accepted(google_client, signing_key):
    r = google_client.get("/openapi.json", headers=auth(id_token(signing_key[0])))
    assert r.status_code == 200
    assert r.json["openapi"].startswith("3.")


def test_second_configured_audience_is_accepted(google_client, signing_key):
    r = google_client.get("/openapi.json", headers=auth(id_token(signing_key[0], aud="another-client")))
    assert r.status_code == 200


def test_expired_id_token_is_refused(google_client, signing_key):
    now = int(time.time())
    token = id_token(signing_key[0], iat=now - 7200, exp=now - 3600)
    assert_401(google_client.get("/openapi.json", headers=auth(token)), "expired")


def test_wrong_audience_is_refused(google_client, signing_key):
    token = id_token(signing_key[0], aud="someone-elses-client.apps.googleusercontent.com")
    assert_401(google_client.get("/openapi.json", headers=auth(token)), "audience")


def test_wrong_issuer_is_refused_not_a_500(google_client, signing_key):
    # google-auth raises GoogleAuthError here, which is not a ValueError
    token = id_token(signing_key[0], iss="https://evil.example.com")
    assert_401(google_client.get("/openapi.json", headers=auth(token)), "issuer")


def test_bad_signature_is_refused(google_client, other_key):
    token = id_token(other_key[0])  # signed by a key whose certificate Google does not serve
    assert_401(google_client.get("/openapi.json", headers=auth(token)), "signature")


def test_tampered_payload_is_refused(google_client, signing_key):
    head, _, sig = id_token(signing_key[0]).split(".")
    forged_payload = id_token(signing_key[0], email="admin@example.com").split(".")[1]
    assert_401(google_client.get("/openapi.json", headers=auth(f"{head}.{forged_payload}x.{sig}")), "")


def test_unknown_key_id_is_refused(google_client, signing_key):
    assert_401(google_client.get("/openapi.json", headers=auth(id_token(signing_key[0], kid="nope"))), "")


def test_missing_credentials_are_refused(google_client):
    assert_401(google_client.get("/openapi.json"), "Authorization")
    assert_401(google_client.get("/openapi.json", headers={"Authorization": "Basic abc"}), "Authorization")
    assert_401(google_client.get("/openapi.json", headers={"Authorization": "Bearer "}), "Authorization")


def test_certificates_unreachable_is_a_401(tmp_path, mock, signing_key):
    from sheetsync.server import create_app
    from sheetsync.server.auth import GOOGLE_CERTS_URL

    mock.get(GOOGLE_CERTS_URL, status=503, body="unavailable")
    app = create_app({"MODE": "google", "ALLOWED_AUDIENCES": [CLIENT_ID],
                      "RUN_STORE": str(tmp_path / "runs.sqlite3")})
    r = app.test_client().get("/openapi.json", headers=auth(id_token(signing_key[0])))
    assert_401(r, "")


def test_no_audiences_configured_refuses_every_id_token(tmp_path, certs, signing_key):
    from sheetsync.server import create_app

    app = create_app({"MODE": "google", "API_KEYS": [API_KEY], "RUN_STORE": str(tmp_path / "runs.sqlite3")})
    assert_401(app.test_client().get("/openapi.json", headers=auth(id_token(signing_key[0]))), "no OAuth client")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.one_of(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                               max_size=300),
                       st.builds(lambda a, b, c: f"{a}.{b}.{c}", *[st.text(
                           alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                           max_size=80)] * 3)))
def test_any_garbage_bearer_token_is_a_401(google_client, token):
    r = google_client.get("/openapi.json", headers=auth(token))
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"


def test_api_key_is_accepted_and_wrong_key_refused(google_client, client):
    assert google_client.get("/openapi.json", headers={"X-Api-Key": API_KEY}).status_code == 200
    assert client.get("/openapi.json", headers={"X-Api-Key": API_KEY}).status_code == 200
    assert_401(google_client.get("/openapi.json", headers={"X-Api-Key": API_KEY + "x"}), "API key")
    assert_401(client.get("/openapi.json", headers={"X-Api-Key": ""}), "API key")


def test_local_token(client):
    assert client.get("/openapi.json", headers=auth(LOCAL_TOKEN)).status_code == 200
    assert_401(client.get("/openapi.json", headers=auth(LOCAL_TOKEN[:-1])), "local token")


def test_every_endpoint_but_healthz_requires_a_caller(client, app):
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}).status_code == 401
    assert client.get("/v1/runs/abc").status_code == 401
    assert client.get("/v1/precedents?spreadsheet=demo.xlsx&cell=a!A1").status_code == 401
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/v1/schedules").status_code == 401
    assert client.post("/v1/schedules/abc/run-now").status_code == 401
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert rules == {"/healthz", "/openapi.json", "/v1/runs", "/v1/runs/<run_id>", "/v1/precedents",
                     "/v1/schedules", "/v1/schedules/<schedule_id>", "/v1/schedules/<schedule_id>/run-now"}


# -- acting as the user on Google ------------------------------------------------------------


def test_user_without_access_gets_a_clear_403(google_client, fake, signing_key):
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": STRANGER_TOKEN}
    r = google_client.post("/v1/runs", json=RUN, headers=headers)
    assert r.status_code == 403
    assert r.json["error"]["code"] == "no_access"
    assert "cannot open or edit this spreadsheet" in r.json["error"]["message"]
    assert r.json["run"]["status"] == "failed"
    book = fake.books[SHEET_KEY]
    assert [s.title for s in book.sheets] == ["data", "experiments"]  # nothing written


def test_user_with_access_runs_the_sheet_with_their_token(google_client, fake, signing_key, mock):
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": OWNER_TOKEN}
    r = google_client.post("/v1/runs", json={**RUN, "experiments": ["basic"]}, headers=headers)
    assert r.status_code == 200, r.json
    assert r.json["summary"]["experiments"][0]["name"] == "basic"
    assert "basic steps" in [s.title for s in fake.books[SHEET_KEY].sheets]
    sheets_calls = [c for c in mock.calls if "sheets.googleapis.com" in c.request.url]
    assert sheets_calls and all(c.request.headers["Authorization"] == f"Bearer {OWNER_TOKEN}"
                                for c in sheets_calls)


def test_google_caller_must_forward_a_user_token(google_client, certs, signing_key):
    r = google_client.post("/v1/runs", json=RUN, headers=auth(id_token(signing_key[0])))
    assert r.status_code == 400
    assert r.json["error"]["code"] == "user_token_required"


def test_google_callers_see_only_their_own_runs(google_client, fake, signing_key):
    mine = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": STRANGER_TOKEN}
    run_id = google_client.post("/v1/runs", json=RUN, headers=mine).json["run"]["id"]
    assert google_client.get(f"/v1/runs/{run_id}", headers=mine).status_code == 200
    theirs = auth(id_token(signing_key[0], sub="220000000000000000002"))
    assert google_client.get(f"/v1/runs/{run_id}", headers=theirs).status_code == 404
    assert google_client.get(f"/v1/runs/{run_id}", headers={"X-Api-Key": API_KEY}).status_code == 200


def test_published_link_is_a_400(google_client, certs, signing_key):
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": OWNER_TOKEN}
    url = "https://docs.google.com/spreadsheets/d/e/2PACX-1vQabcdefghijklmnopqrstuvwxyz/pubhtml"
    r = google_client.post("/v1/runs", json={"spreadsheet": url}, headers=headers)
    assert r.status_code == 400 and "published" in r.json["error"]["message"]


def test_tokens_never_reach_the_logs(google_client, fake, signing_key, caplog):
    caplog.set_level(logging.DEBUG)
    good = id_token(signing_key[0])
    expired = id_token(signing_key[0], iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    for token, user in ((good, OWNER_TOKEN), (good, STRANGER_TOKEN), (expired, OWNER_TOKEN)):
        google_client.post("/v1/runs", json=RUN, headers={**auth(token), "X-Goog-User-Token": user})
    google_client.get("/openapi.json", headers={"X-Api-Key": API_KEY + "wrong"})
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert caplog.records  # something was logged, so the check below means something
    for secret in (good, expired, OWNER_TOKEN, STRANGER_TOKEN, API_KEY, good.split(".")[2]):
        assert secret not in logged


def test_an_expired_user_token_asks_for_a_fresh_one(google_client, fake, signing_key):
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": "ya29.expired-or-revoked"}
    r = google_client.post("/v1/runs", json=RUN, headers=headers)
    assert r.status_code == 401
    assert r.json["error"]["code"] == "user_token_rejected"
    assert "fresh token" in r.json["error"]["message"]


def test_a_missing_spreadsheet_is_a_404(google_client, fake, signing_key):
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": OWNER_TOKEN}
    r = google_client.post("/v1/runs", json={"spreadsheet": "1ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"},
                           headers=headers)
    assert r.status_code == 404
    assert r.json["error"]["code"] == "spreadsheet_not_found"


def test_google_runs_draw_on_the_apps_own_quota_buckets(google_app, google_client, fake, signing_key, tmp_path):
    """App-factory state, not a process-wide registry: the Sheets requests of this app's runs
    are counted in this app's buckets, and another app in the process has buckets of its own."""
    from sheetsync.backends import retry
    from sheetsync.server import create_app

    quota = google_app.extensions["sheetsync"].quota
    assert quota is not None and quota is not retry.shared_buckets()
    headers = {**auth(id_token(signing_key[0])), "X-Goog-User-Token": OWNER_TOKEN}
    r = google_client.post("/v1/runs", json={**RUN, "experiments": ["basic"]}, headers=headers)
    assert r.status_code == 200, r.json
    drawn = {key: bucket for key, bucket in quota._buckets.items() if key.startswith("user:")}
    assert drawn and all(b.tokens < quota.rate_for(k) for k, b in drawn.items())
    other = create_app({"MODE": "google", "ALLOWED_AUDIENCES": [CLIENT_ID],
                        "RUN_STORE": str(tmp_path / "other" / "runs.sqlite3")})
    assert other.extensions["sheetsync"].quota is not quota
    other.extensions["sheetsync"].runs.shutdown()
