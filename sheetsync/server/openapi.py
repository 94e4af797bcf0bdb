"""The OpenAPI 3 document, generated from the routes themselves.

Every view is registered with `route(...)`, which adds the Flask URL rule and attaches the
operation (parameters, body, responses) to the view; `document(app)` assembles the paths from
the app's own views and the schemas from `sheetsync.server.schemas` plus each blueprint's
``openapi_components`` — nothing is kept in module-level registries, so two apps in one process
document exactly what each serves. A test checks that every URL rule of the app is documented
and every documented path exists.
"""

from __future__ import annotations

import re

from .schemas import COMPONENTS

STATUS_TEXT = {
    200: "OK", 202: "Accepted: the run continues; poll the Location", 400: "Bad request",
    401: "No valid credentials", 403: "Your Google account cannot open this spreadsheet",
    404: "Not found", 405: "Method not allowed", 409: "Conflict: a tab sheetsync would write is the user's, or the workbook changed since it was read or is open in an office suite",
    413: "Body too large", 415: "Body is not JSON", 422: "Problems in the sheet (each with its cell)",
    429: "Google quota exceeded",
    502: "Google Sheets could not be reached",
}

SECURITY = [{"bearer": []}, {"apiKey": []}]

USER_TOKEN_HEADER = {
    "name": "X-Goog-User-Token", "in": "header", "required": False,
    "description": "Google mode: the user's OAuth access token (ScriptApp.getOAuthToken()); the "
                   "sheet is opened with it.",
    "schema": {"type": "string", "maxLength": 4096},
}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def responses(**by_status: str) -> dict:
    """responses(r200="Run", r400="Error") -> the OpenAPI responses object."""
    out = {}
    for key, schema in by_status.items():
        status = int(key.lstrip("r"))
        out[str(status)] = {"description": STATUS_TEXT.get(status, ""),
                            "content": {"application/json": {"schema": ref(schema)}}}
    return out


def route(blueprint, path: str, method: str, **operation):
    """Register `view` at `path` ("/v1/runs/{run_id}") and document it."""
    def register(view):
        view.openapi = view.__dict__.get("openapi", []) + [(path, method.lower(),
                                                            {"operationId": view.__name__, **operation})]
        blueprint.add_url_rule(flask_path(path), view_func=view, methods=[method.upper()])
        return view
    return register


def flask_path(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def document(version: str, app) -> dict:
    paths: dict[str, dict] = {}
    for view in dict.fromkeys(app.view_functions.values()):
        for path, method, operation in getattr(view, "openapi", []):
            paths.setdefault(path, {})[method] = operation
    schemas = dict(COMPONENTS)
    for blueprint in app.blueprints.values():
        schemas.update(getattr(blueprint, "openapi_components", {}))
    return {
        "openapi": "3.0.3",
        "info": {"title": "sheetsync", "version": version,
                 "description": "Run a spreadsheet's gradient-descent experiments and trace its cells."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Google mode: a Google ID token (ScriptApp.getIdentityToken()). "
                                          "Local mode: the token printed at start-up."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                           "description": "A key configured in SHEETSYNC_API_KEYS (trusted callers)."},
            },
        },
        "security": SECURITY,
    }
