"""The OpenAPI document matches the code: every route documented, every documented route real,
and schemathesis, driving the app through WSGI with credentials, finds no 5xx and no answer that
breaks the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as sc

from server_support import auth
from hypothesis import given
from schemathesis import GenerationMode
from sheetsync.server import create_app
from sheetsync.server.openapi import openapi_path
from sheetsync.demo import write_demo

H = auth()


def documented(doc) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}


def routed(app) -> set[tuple[str, str]]:
    return {(openapi_path(rule.rule), method) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_is_documented_and_every_documented_route_exists(client, app):
    doc = client.get("/openapi.json", headers=H).json
    assert routed(app) == documented(doc)
    assert ("/v1/runs/{run_id}", "GET") in documented(doc)


def test_document_is_valid_openapi(client):
    from jsonschema import Draft202012Validator

    doc = client.get("/openapi.json", headers=H).json
    assert doc["openapi"] == "3.0.3"
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema({k: v for k, v in schema.items() if k != "nullable"})
    refs = set()

    def collect(node):
        if isinstance(node, dict):
            refs.update(v.rsplit("/", 1)[1] for k, v in node.items() if k == "$ref")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(doc)
    assert refs <= set(doc["components"]["schemas"])  # no dangling reference
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_the_request_validator_and_the_document_share_one_schema(client):
    from sheetsync.server.schemas import RUN_REQUEST

    doc = client.get("/openapi.json", headers=H).json
    assert doc["components"]["schemas"]["RunRequest"] == RUN_REQUEST
    params = {p["name"] for p in doc["paths"]["/v1/precedents"]["get"]["parameters"]}
    assert {"spreadsheet", "cell", "depth", "dependents"} <= params


@pytest.fixture
def fuzz_app(local_config, folder):
    write_demo(folder / "sheetsync-demo.xlsx")  # the name the document's examples use
    app = create_app({**local_config, "SYNC_BUDGET": 10})
    yield app
    app.extensions["sheetsync"].runs.shutdown()


CHECKS = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance,
          sc.response_schema_conformance, sc.response_headers_conformance]


def fuzz_operation(op, mode: GenerationMode, failures: list, statuses: list) -> None:
    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def fuzz(case):
        case.headers = {**(case.headers or {}), **H}
        response = case.call()
        statuses.append((op.path, response.status_code))
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as e:  # noqa: BLE001 - collect every failure, report them all
            failures.append(f"{mode.value} {op.method.upper()} {op.path}: {str(e)[:400]}")

    fuzz()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app, headers=H)
    operations = [result.ok() for result in schema.get_all_operations()]
    schedules = {("GET", "/v1/schedules"), ("POST", "/v1/schedules"), ("DELETE", "/v1/schedules/{schedule_id}"),
                 ("POST", "/v1/schedules/{schedule_id}/run-now")}
    assert {(o.method.upper(), o.path) for o in operations} == {
        ("GET", "/healthz"), ("POST", "/v1/runs"), ("GET", "/v1/runs/{run_id}"), ("GET", "/v1/precedents")} | schedules
    # the schedule operations are fuzzed with a scheduler store in tests/schedule/test_schedules_api.py
    operations = [o for o in operations if (o.method.upper(), o.path) not in schedules]
    failures, statuses = [], []
    for op in operations:
        modes = [GenerationMode.POSITIVE] if op.path == "/healthz" else list(GenerationMode)  # nothing to negate
        for mode in modes:
            fuzz_operation(op, mode, failures, statuses)
    runs = next(o for o in operations if o.path == "/v1/runs")
    for body in ({"spreadsheet": "sheetsync-demo.xlsx"}, {"spreadsheet": "sheetsync-demo.xlsx", "action": "reset",
                                                          "experiments": ["basic"]}):
        case = runs.Case(body=body, media_type="application/json", headers=dict(H))
        response = case.call()
        statuses.append((runs.path, response.status_code))
        case.validate_response(response, checks=CHECKS)
    assert not failures, "\n".join(failures[:10])
    assert all(code < 500 for _, code in statuses)
    assert ("/v1/runs", 200) in statuses  # the examples reached a real run, not only refusals
    assert any(p == "/v1/runs" and code == 400 for p, code in statuses)
