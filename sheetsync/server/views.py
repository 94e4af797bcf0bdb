"""Shared by the blueprints: the services of the app, the caller check, JSON bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import current_app, g, request

from .auth import Caller, IdTokenVerifier, authenticate
from .errors import ApiError
from .service import RunService
from .store import RunStore


@dataclass
class Services:
    """What one app holds (the app factory makes them; nothing lives in module globals)."""

    store: RunStore
    runs: RunService
    verifier: IdTokenVerifier
    quota: object = None  # Google mode: the Sheets quota buckets every sheet this app opens draws from


def services() -> Services:
    return current_app.extensions["sheetsync"]


def caller() -> Caller:
    return g.caller


def require_caller(blueprint) -> None:
    """Every view of `blueprint` needs a caller (CORS preflights excepted: they carry no credentials)."""
    @blueprint.before_request
    def check_caller():
        if request.method == "OPTIONS":
            return None
        g.caller = authenticate(request.headers, current_app.config, services().verifier)
        return None


def json_body():
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)")
    data = request.get_data(cache=True)  # raises 413 beyond MAX_CONTENT_LENGTH
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise ApiError(400, "malformed_json", f"the body is not valid JSON{where}") from None
