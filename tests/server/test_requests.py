"""Bad requests get a clear 4xx in JSON and write nothing: bodies, fields, sizes, workbook names."""

from __future__ import annotations

import os

import pytest

from server_support import auth
from sheetsync.server import create_app

H = auth()


def post_run(client, body, **headers):
    return client.post("/v1/runs", json=body, headers={**H, **headers})


def assert_error(response, status: int, code: str, words: str = ""):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.json["error"]
    assert error["code"] == code
    assert words in error["message"]
    assert isinstance(error["problems"], list)
    return error


def demo_mtime(folder):
    return os.stat(folder / "demo.xlsx").st_mtime_ns


def test_malformed_json_is_a_400(client, folder):
    before = demo_mtime(folder)
    r = client.post("/v1/runs", data='{"spreadsheet": "demo.xlsx",', headers={**H, "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json", "line 1")
    assert demo_mtime(folder) == before


def test_deeply_nested_json_is_a_400_not_a_crash(client):
    r = client.post("/v1/runs", data="[" * 30000, headers={**H, "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")


def test_body_that_is_not_utf8_is_a_400(client):
    r = client.post("/v1/runs", data=b'{"spreadsheet": "\xff\xfe"}', headers={**H, "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")


def test_body_must_be_json(client):
    r = client.post("/v1/runs", data="spreadsheet=demo.xlsx", headers={**H, "Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


def test_unknown_fields_are_named(client):
    error = assert_error(post_run(client, {"spreadsheet": "demo.xlsx", "epochs": 3, "sheet": "x"}),
                         400, "invalid_request", "unknown field(s): epochs, sheet")
    assert error["problems"][0]["field"] == "body"


@pytest.mark.parametrize("body, field, words", [
    ({}, "spreadsheet", "required"),
    ({"spreadsheet": 7}, "spreadsheet", "expected text, found a number"),
    ({"spreadsheet": ""}, "spreadsheet", "must not be empty"),
    ({"spreadsheet": "demo.xlsx", "experiments": "basic"}, "experiments", "expected a list"),
    ({"spreadsheet": "demo.xlsx", "experiments": ["basic", 3]}, "experiments[1]", "expected text"),
    ({"spreadsheet": "demo.xlsx", "action": "train"}, "action", "must be one of run, reset"),
    ({"spreadsheet": "demo.xlsx", "mode": True}, "mode", "expected text, found a boolean"),
    ({"spreadsheet": None}, "spreadsheet", "found null"),
])
def test_wrong_types_and_values_are_400s_naming_the_field(client, body, field, words):
    error = assert_error(post_run(client, body), 400, "invalid_request", words)
    assert field in [p["field"] for p in error["problems"]]


def test_top_level_must_be_an_object(client):
    assert_error(post_run(client, ["demo.xlsx"]), 400, "invalid_request", "expected a JSON object")


def test_oversized_body_is_a_413_in_json(client, app):
    big = {"spreadsheet": "demo.xlsx", "experiments": ["x" * 90] * 1000}
    error = assert_error(post_run(client, big), 413, "request_entity_too_large")
    assert str(app.config["MAX_CONTENT_LENGTH"]) in error["message"]


def test_max_body_size_is_configurable(local_config):
    app = create_app({**local_config, "MAX_CONTENT_LENGTH": 2048})
    r = app.test_client().post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["y" * 90] * 30},
                               headers=H)
    assert r.status_code == 413
    app.extensions["sheetsync"].runs.shutdown()


@pytest.mark.parametrize("name, words", [
    ("../demo.xlsx", "without folders"),
    ("/etc/passwd", "without folders"),
    ("a/b.xlsx", "without folders"),
    ("..\\demo.xlsx", "without folders"),
    ("x.txt", "must end in .xlsx or .xlsm"),
    ("demo.xlsx\x00.txt", "control characters"),
    ("demo\x00.xlsx", "control characters"),
    ("..", "must"),
    (".hidden.xlsx", "must not start with a dot"),
    ("d" * 300 + ".xlsx", "longer than 255"),
    ("demo.xlsx\n", "control characters"),
    ("demo\u202e.xlsx", "control characters"),
])
def test_path_tricks_in_local_names_are_400s(client, folder, name, words):
    before = demo_mtime(folder)
    error = assert_error(post_run(client, {"spreadsheet": name}), 400, "invalid_workbook_name", words)
    assert error["problems"][0]["field"] == "spreadsheet"
    assert demo_mtime(folder) == before


def test_symlink_out_of_the_folder_is_refused(client, folder, tmp_path):
    outside = tmp_path / "outside.xlsx"
    outside.write_bytes((folder / "demo.xlsx").read_bytes())
    (folder / "link.xlsx").symlink_to(outside)
    assert_error(post_run(client, {"spreadsheet": "link.xlsx"}), 400, "invalid_workbook_name", "outside")


def test_missing_workbook_is_a_404(client):
    assert_error(post_run(client, {"spreadsheet": "nope.xlsx"}), 404, "workbook_not_found", "nope.xlsx")


def test_formula_mode_runs(client):
    r = post_run(client, {"spreadsheet": "demo.xlsx", "mode": "formulas", "experiments": ["basic"]})
    assert r.status_code == 200 and r.json["mode"] == "formulas" and r.json["status"] == "succeeded"


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/v2/nothing", headers=H), 404, "not_found")
    r = client.delete("/v1/runs", headers=H)
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_unknown_run_is_a_404(client):
    assert_error(client.get("/v1/runs/0123456789abcdef", headers=H), 404, "run_not_found")


@pytest.mark.parametrize("query, field", [
    ("cell=basic%20steps!H5", "spreadsheet"),
    ("spreadsheet=demo.xlsx", "cell"),
    ("spreadsheet=demo.xlsx&cell=H5", "cell"),
    ("spreadsheet=demo.xlsx&cell=a!A1&depth=zero", "depth"),
    ("spreadsheet=demo.xlsx&cell=a!A1&depth=500", "depth"),
    ("spreadsheet=demo.xlsx&cell=a!A1&dependents=maybe", "dependents"),
    ("spreadsheet=demo.xlsx&cell=a!A1&depth=1&depth=2", "depth"),
    ("spreadsheet=demo.xlsx&cell=a!A1&token=x", "query"),
])
def test_precedents_query_is_validated(client, query, field):
    error = assert_error(client.get(f"/v1/precedents?{query}", headers=H), 400, "invalid_request")
    assert field in [p["field"] for p in error["problems"]]


def test_precedents_checks_the_workbook_name(client):
    assert_error(client.get("/v1/precedents?spreadsheet=../x.xlsx&cell=a!A1", headers=H), 400,
                 "invalid_workbook_name")


def test_cors_closed_unless_configured(client, local_config):
    r = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
    app = create_app({**local_config, "CORS_ORIGINS": ["https://lab.example.com"]})
    c = app.test_client()
    ok = c.options("/v1/runs", headers={"Origin": "https://lab.example.com",
                                        "Access-Control-Request-Method": "POST"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://lab.example.com"
    assert "X-Goog-User-Token" in ok.headers["Access-Control-Allow-Headers"]
    other = c.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    app.extensions["sheetsync"].runs.shutdown()


def test_environment_configuration(monkeypatch, folder, tmp_path):
    from sheetsync.server.config import ConfigError, from_env

    env = {"SHEETSYNC_LOCAL_FOLDER": str(folder), "SHEETSYNC_API_KEYS": "k1, k2",
           "SHEETSYNC_RUN_STORE": str(tmp_path / "env.sqlite3"), "SHEETSYNC_MAX_BODY_BYTES": "4096",
           "SHEETSYNC_SYNC_BUDGET": "2.5", "SHEETSYNC_WORKER_THREADS": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    app = create_app()
    assert app.config["MODE"] == "local"
    assert app.config["API_KEYS"] == ["k1", "k2"]
    assert app.config["MAX_CONTENT_LENGTH"] == 4096 and app.config["SYNC_BUDGET"] == 2.5
    assert len(app.config["LOCAL_TOKEN"]) >= 24
    app.extensions["sheetsync"].runs.shutdown()
    monkeypatch.setenv("SHEETSYNC_ALLOWED_AUDIENCES", "client-1")
    assert create_app().config["MODE"] == "google"
    with pytest.raises(ConfigError, match="SHEETSYNC_WORKER_THREADS"):
        from_env({"SHEETSYNC_WORKER_THREADS": "many"})
