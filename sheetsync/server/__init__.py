"""The sheetsync HTTP service: `create_app(config)` builds it (Flask's app-factory pattern).

    from sheetsync.server import create_app
    app = create_app({"MODE": "local", "LOCAL_FOLDER": "books", "RUN_STORE": "runs.sqlite3"})

With no config the settings come from `SHEETSYNC_…` environment variables (see
`sheetsync.server.config`). Blueprints: `health` (``/healthz``), `docs` (``/openapi.json``), `runs`
(``/v1/runs``), `precedents` (``/v1/precedents``), `schedules` (``/v1/schedules``). `sheetsync.server.wsgi:app` serves it under gunicorn;
``sheetsync serve`` runs it locally.
"""

from __future__ import annotations

import os
from typing import Mapping

from flask import Flask, request

from . import config as settings
from .auth import IdTokenVerifier
from .errors import register_error_handlers
from sheetsync.locks import SpreadsheetLocks
from .service import RunService
from .store import RunStore
from .views import Services

CORS_HEADERS = "Authorization, Content-Type, X-Api-Key, X-Goog-User-Token"


def create_app(config: Mapping | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(settings.complete(settings.from_env() if config is None else config))
    app.json.sort_keys = False
    store = RunStore(app.config["RUN_STORE"])
    store.reap_interrupted()
    locks = spreadsheet_locks(app.config)
    runs = RunService(store, locks, int(app.config["WORKER_THREADS"]), float(app.config["SYNC_BUDGET"]))
    app.extensions["sheetsync"] = Services(store, runs, IdTokenVerifier(app.config["ALLOWED_AUDIENCES"]),
                                           quota_buckets(app.config))
    register_blueprints(app)
    register_error_handlers(app)
    app.after_request(cors)
    return app


def spreadsheet_locks(config):
    """One holder per spreadsheet: with REDIS_URL the scheduler's Redis locks (the same keys, so
    the server and RQ workers on any machine exclude each other), else lock files beside the
    run store. Local workbooks are also locked by the workbook itself (`sheetsync.locks`)."""
    if config.get("REDIS_URL"):
        from sheetsync.schedule.coordination import RedisLocks
        from sheetsync.schedule.executors import connect

        return RedisLocks(connect(config["REDIS_URL"]))
    return SpreadsheetLocks(os.path.join(os.path.dirname(os.path.abspath(config["RUN_STORE"])), "locks"))


def quota_buckets(config):
    """Google mode: this app's Sheets quota buckets (all its runs and traces share them), not the
    process-wide ones the CLI's backends use."""
    if config["MODE"] != "google":
        return None
    from sheetsync.backends.retry import QuotaBuckets

    return QuotaBuckets()


def register_blueprints(app: Flask) -> None:
    from . import meta, precedents, runs, schedules

    for blueprint in (meta.health, meta.docs, runs.bp, precedents.bp, schedules.bp):
        app.register_blueprint(blueprint)
    schedules.init_app(app)


def cors(response):
    """CORS headers only for configured origins; with none configured, browsers are refused."""
    from flask import current_app

    origin = request.headers.get("Origin")
    if origin and origin in current_app.config["CORS_ORIGINS"]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
        response.vary.add("Origin")
    return response
