"""``GET /v1/precedents``: the trace of one cell down to its inputs, as JSON.

Calls `sheetsync.trace.trace` with the sheet's backend (local workbook or Google Sheet).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from sheetsync.errors import SheetsyncError
from sheetsync.trace import trace

from .errors import from_sheetsync
from .openapi import USER_TOKEN_HEADER, responses, route
from .schemas import PRECEDENTS_QUERY
from .service import finite
from .spreadsheets import resolve
from .validation import validate_query
from .views import caller, require_caller

bp = Blueprint("precedents", __name__)
require_caller(bp)


def query_parameters() -> list[dict]:
    required = set(PRECEDENTS_QUERY["required"])
    return [{"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in PRECEDENTS_QUERY["properties"].items()]


@route(bp, "/v1/precedents", "get", summary="Trace a cell's precedents (or dependents)",
       parameters=query_parameters() + [USER_TOKEN_HEADER],
       responses=responses(r200="Precedents", r400="Error", r401="Error", r403="Error", r404="Error",
                           r422="Error", r429="Error", r502="Error"))
def get_precedents():
    query = validate_query(request.args.to_dict(flat=False), PRECEDENTS_QUERY)
    sheet = resolve(query["spreadsheet"], caller(), current_app.config)
    try:
        result = trace(sheet.target, query["cell"], depth=query["depth"], dependents=query["dependents"],
                       backend=sheet.open())
    except SheetsyncError as e:
        google = current_app.config["MODE"] == "google"
        raise from_sheetsync(e, google, doing="trace", folder=None if google else current_app.config["LOCAL_FOLDER"]) from None
    return jsonify(hide_path(finite(result), sheet.target, sheet.display))


def hide_path(value, path: str, display: str):
    """The server's folder never leaves it: the workbook's path reads as its name."""
    if isinstance(value, str):
        return value.replace(path, display)
    if isinstance(value, dict):
        return {k: hide_path(v, path, display) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_path(v, path, display) for v in value]
    return value
