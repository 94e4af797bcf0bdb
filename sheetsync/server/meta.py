"""``GET /healthz`` (no credentials) and ``GET /openapi.json``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

import sheetsync

from .openapi import document, responses, route
from .views import require_caller

health = Blueprint("health", __name__)
docs = Blueprint("docs", __name__)
require_caller(docs)


@route(health, "/healthz", "get", summary="Liveness", security=[], responses=responses(r200="Health"))
def healthz():
    return jsonify({"status": "ok", "version": sheetsync.__version__})


@route(docs, "/openapi.json", "get", summary="This document",
       responses={"200": {"description": "OpenAPI 3 document",
                          "content": {"application/json": {"schema": {"type": "object"}}}},
                  **responses(r401="Error")})
def openapi_json():
    return jsonify(document(sheetsync.__version__, current_app))
