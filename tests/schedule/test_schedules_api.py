"""``/v1/schedules`` through the Flask app in local mode: auth, add (a list, a roster, bad
bodies), list, remove, run-now, the quota warning, and the OpenAPI document."""

from __future__ import annotations

import pytest

from sheetsync.server import create_app
from sheetsync.demo import write_demo

TOKEN = "local-token-for-schedule-tests-0123"
H = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    write_demo(books / "member.xlsx")
    write_demo(books / "other.xlsx")
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(books), "LOCAL_TOKEN": TOKEN,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3")})
    yield app.test_client()
    app.extensions["sheetsync"].runs.shutdown()


def test_a_caller_without_credentials_is_refused(client):
    assert client.get("/v1/schedules").status_code == 401
    assert client.post("/v1/schedules", json={"spreadsheets": ["member.xlsx"], "every": 600}).status_code == 401
    assert client.delete("/v1/schedules/abc").status_code == 401
    assert client.post("/v1/schedules/abc/run-now").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all-0123456789"}
    assert client.get("/v1/schedules", headers=wrong).status_code == 401


def test_add_list_run_now_remove(client):
    added = client.post("/v1/schedules", headers=H, json={"spreadsheets": ["member.xlsx", "other.xlsx"],
                                                          "every": 600})
    assert added.status_code == 201, added.json
    schedule = added.json
    assert schedule["kind"] == "list" and schedule["spreadsheets"] == ["member.xlsx", "other.xlsx"]
    assert schedule["warning"] is None  # local workbooks cost no Google quota
    listed = client.get("/v1/schedules", headers=H).json["schedules"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    ran = client.post(f"/v1/schedules/{schedule['id']}/run-now", headers=H)
    assert ran.status_code == 202 and ran.json["run_now"] is not None
    assert client.delete(f"/v1/schedules/{schedule['id']}", headers=H).status_code == 200
    assert client.get("/v1/schedules", headers=H).json["schedules"] == []
    assert client.delete(f"/v1/schedules/{schedule['id']}", headers=H).status_code == 404


def test_a_roster_schedule_with_cron(client):
    added = client.post("/v1/schedules", headers=H, json={"roster": {"spreadsheet": "member.xlsx"},
                                                          "cron": "*/30 * * * *"})
    assert added.status_code == 201, added.json
    assert added.json["kind"] == "roster" and added.json["roster_tab"] == "roster"


@pytest.mark.parametrize("body, field", [
    ({"spreadsheets": ["member.xlsx"]}, "every"),
    ({"spreadsheets": ["member.xlsx"], "every": 600, "cron": "* * * * *"}, "every"),
    ({"every": 600}, "spreadsheets"),
    ({"spreadsheets": [], "every": 600}, "spreadsheets"),
    ({"spreadsheets": ["member.xlsx"], "cron": "every tuesday"}, "cron"),
    ({"spreadsheets": ["member.xlsx"], "every": 5}, "every"),
    ({"spreadsheets": ["../etc/passwd.xlsx"], "every": 600}, "spreadsheet"),
])
def test_bad_schedules_are_refused_with_the_field_named(client, body, field):
    answer = client.post("/v1/schedules", headers=H, json=body)
    assert answer.status_code == 400, answer.json
    assert any(field in p.get("field", "") for p in answer.json["error"]["problems"]), answer.json


def test_a_missing_workbook_is_404(client):
    answer = client.post("/v1/schedules", headers=H, json={"spreadsheets": ["absent.xlsx"], "every": 600})
    assert answer.status_code == 404


def test_the_schedules_are_in_the_openapi_document(client):
    doc = client.get("/openapi.json", headers=H).json
    assert set(doc["paths"]["/v1/schedules"]) == {"get", "post"}
    assert "delete" in doc["paths"]["/v1/schedules/{schedule_id}"]
    assert "post" in doc["paths"]["/v1/schedules/{schedule_id}/run-now"]
    assert {"Schedule", "ScheduleRequest", "ScheduleList"} <= set(doc["components"]["schemas"])


def test_schemathesis_finds_no_server_error_on_the_schedule_operations(client):
    """The same fuzzing as tests/server/test_openapi.py, on the four schedule operations."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis import checks as sc

    checks = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance,
              sc.response_schema_conformance]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.application, headers=H)
    operations = [r.ok() for r in schema.get_all_operations() if "schedules" in r.ok().path]
    assert len(operations) == 4
    failures, statuses = [], []
    for op in operations:
        for mode in GenerationMode:
            @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def fuzz(case):
                case.headers = {**(case.headers or {}), **H}
                response = case.call()
                statuses.append(response.status_code)
                try:
                    case.validate_response(response, checks=checks)
                except Exception as e:  # noqa: BLE001 - collect every failure, report them all
                    failures.append(f"{op.method} {op.path}: {str(e)[:300]}")
            fuzz()
    assert not failures, "\n".join(failures[:5])
    assert statuses and all(code < 500 for code in statuses)
