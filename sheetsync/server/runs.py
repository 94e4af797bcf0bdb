"""``POST /v1/runs`` starts a run; ``GET /v1/runs/<id>`` tells how it goes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, url_for

from .errors import ApiError
from .openapi import USER_TOKEN_HEADER, ref, responses, route
from .schemas import RUN_REQUEST
from .spreadsheets import resolve
from .validation import validate_body
from .views import caller, json_body, require_caller, services

bp = Blueprint("runs", __name__)
require_caller(bp)

RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


@route(bp, "/v1/runs", "post", summary="Run or reset a spreadsheet's experiments",
       parameters=[USER_TOKEN_HEADER],
       requestBody={"required": True, "content": {"application/json": {"schema": ref("RunRequest")}}},
       responses=responses(r200="Run", r202="Run", r400="Error", r401="Error", r403="Error", r404="Error",
                           r409="Error", r413="Error", r415="Error", r422="Error", r429="Error", r502="Error"))
def create_run():
    body = validate_body(json_body(), RUN_REQUEST)
    who = caller()
    sheet = resolve(body["spreadsheet"], who, current_app.config)
    record, finished = services().runs.start(who.name, sheet, body["action"], body["mode"],
                                             body.get("experiments"), current_app.config["MODE"] == "google")
    return run_answer(record, finished)


@route(bp, "/v1/runs/{run_id}", "get", summary="Status, progress, summary and errors of a run",
       parameters=[RUN_ID], responses=responses(r200="Run", r401="Error", r404="Error"))
def get_run(run_id: str):
    record = services().store.get(run_id)
    who = caller()
    if record is None or not (who.sees_all_runs or record["caller"] == who.name):
        raise ApiError(404, "run_not_found", "no such run (or it is not yours)")
    return jsonify(public(record))


def run_answer(record: dict, finished: bool):
    location = {"Location": url_for("runs.get_run", run_id=record["id"])}
    if not finished:
        return jsonify(public(record)), 202, location
    if record["status"] == "failed":
        return jsonify({"error": record["error"], "run": public(record)}), record["http_status"], location
    return jsonify(public(record)), 200, location


def public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("caller", "http_status")}
