"""Configuration: defaults, and the `SHEETSYNC_…` environment variables that override them.

`create_app(config)` takes a mapping (tests, embedding); with none it reads the environment.
Every setting, with its variable and default:

==============================  =================================  ===========================
setting                         environment variable               default
==============================  =================================  ===========================
MODE                            SHEETSYNC_MODE                     ``google`` when
                                                                   SHEETSYNC_ALLOWED_AUDIENCES
                                                                   is set, else ``local``
LOCAL_FOLDER                    SHEETSYNC_LOCAL_FOLDER             the current folder
LOCAL_TOKEN                     SHEETSYNC_LOCAL_TOKEN              a new random token per start
API_KEYS                        SHEETSYNC_API_KEYS                 none (comma-separated)
ALLOWED_AUDIENCES               SHEETSYNC_ALLOWED_AUDIENCES        none (OAuth client ids,
                                                                   comma-separated)
GOOGLE_CREDENTIALS              SHEETSYNC_GOOGLE_CREDENTIALS       none: API-key callers must
                                                                   forward a user token
CORS_ORIGINS                    SHEETSYNC_CORS_ORIGINS             none: CORS closed
MAX_CONTENT_LENGTH              SHEETSYNC_MAX_BODY_BYTES           65536
RUN_STORE                       SHEETSYNC_RUN_STORE                $XDG_STATE_HOME/sheetsync/
                                                                   runs.sqlite3
SYNC_BUDGET                     SHEETSYNC_SYNC_BUDGET              20 (seconds a POST waits
                                                                   before answering 202)
WORKER_THREADS                  SHEETSYNC_WORKER_THREADS           4
SERVE_THREADS                   SHEETSYNC_SERVE_THREADS            8 (``sheetsync serve``:
                                                                   requests handled at once)
SERVE_CONNECTIONS               SHEETSYNC_SERVE_CONNECTIONS        100 (open connections; more
                                                                   wait in the listen backlog)
SERVE_TIMEOUT                   SHEETSYNC_SERVE_TIMEOUT            30 (seconds a connection may
                                                                   stay idle or half-sent)
SCHEDULER                       SHEETSYNC_SCHEDULER                none; ``embedded``: the
                                                                   trigger runs in the server
REDIS_URL                       SHEETSYNC_REDIS_URL                none: the embedded trigger
                                                                   runs jobs on threads
==============================  =================================  ===========================

Modes: ``local`` serves ``.xlsx``/``.xlsm`` workbooks of LOCAL_FOLDER, addressed by file name,
to callers presenting LOCAL_TOKEN (or an API key). ``google`` serves Google Sheets to the
add-on (a Google ID token whose audience is one of ALLOWED_AUDIENCES, plus the user's OAuth
access token to touch the sheet) and to API-key callers.

Tests may also pass BACKEND_FACTORY: ``(target, user_token) -> backend``, to instrument runs.
"""

from __future__ import annotations

import os
import secrets
from typing import Mapping

from sheetsync.schedule.config import REDIS_URL_VARIABLE, state_path

MODES = ("local", "google")

DEFAULTS = {
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "SYNC_BUDGET": 20.0,
    "WORKER_THREADS": 4,
    "API_KEYS": [],
    "ALLOWED_AUDIENCES": [],
    "CORS_ORIGINS": [],
    "GOOGLE_CREDENTIALS": None,
    "BACKEND_FACTORY": None,
    "SERVE_THREADS": 8,
    "SERVE_CONNECTIONS": 100,
    "SERVE_TIMEOUT": 30.0,
    "SCHEDULER": None,
    "REDIS_URL": None,
}

ENV = {  # setting -> (variable, parser)
    "MODE": ("SHEETSYNC_MODE", str),
    "LOCAL_FOLDER": ("SHEETSYNC_LOCAL_FOLDER", str),
    "LOCAL_TOKEN": ("SHEETSYNC_LOCAL_TOKEN", str),
    "API_KEYS": ("SHEETSYNC_API_KEYS", lambda v: _split(v)),
    "ALLOWED_AUDIENCES": ("SHEETSYNC_ALLOWED_AUDIENCES", lambda v: _split(v)),
    "GOOGLE_CREDENTIALS": ("SHEETSYNC_GOOGLE_CREDENTIALS", str),
    "CORS_ORIGINS": ("SHEETSYNC_CORS_ORIGINS", lambda v: _split(v)),
    "MAX_CONTENT_LENGTH": ("SHEETSYNC_MAX_BODY_BYTES", int),
    "RUN_STORE": ("SHEETSYNC_RUN_STORE", str),
    "SYNC_BUDGET": ("SHEETSYNC_SYNC_BUDGET", float),
    "WORKER_THREADS": ("SHEETSYNC_WORKER_THREADS", int),
    "SERVE_THREADS": ("SHEETSYNC_SERVE_THREADS", int),
    "SERVE_CONNECTIONS": ("SHEETSYNC_SERVE_CONNECTIONS", int),
    "SERVE_TIMEOUT": ("SHEETSYNC_SERVE_TIMEOUT", float),
    "SCHEDULER": ("SHEETSYNC_SCHEDULER", str),
    "REDIS_URL": (REDIS_URL_VARIABLE, str),
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def from_env(environ: Mapping[str, str] | None = None) -> dict:
    environ = os.environ if environ is None else environ
    config = {}
    for setting, (variable, parse) in ENV.items():
        if environ.get(variable, "") != "":
            try:
                config[setting] = parse(environ[variable])
            except ValueError:
                raise ConfigError(f"{variable}: cannot read {environ[variable]!r}") from None
    return config


def default_run_store() -> str:
    return state_path("runs.sqlite3")


def complete(config: Mapping) -> dict:
    """Defaults filled in and every setting checked; raises `ConfigError`."""
    done = dict(DEFAULTS)
    done.update({k: v for k, v in config.items() if v is not None})
    for key in ("API_KEYS", "ALLOWED_AUDIENCES", "CORS_ORIGINS"):
        if isinstance(done[key], str):
            done[key] = _split(done[key])
    done.setdefault("MODE", "google" if done["ALLOWED_AUDIENCES"] else "local")
    if done["MODE"] not in MODES:
        raise ConfigError(f"SHEETSYNC_MODE must be one of {', '.join(MODES)}, not {done['MODE']!r}")
    done.setdefault("LOCAL_FOLDER", os.getcwd())
    done["LOCAL_FOLDER"] = os.path.realpath(done["LOCAL_FOLDER"])
    if done["MODE"] == "local" and not os.path.isdir(done["LOCAL_FOLDER"]):
        raise ConfigError(f"SHEETSYNC_LOCAL_FOLDER: {done['LOCAL_FOLDER']} is not a folder")
    if done["MODE"] == "local" and not done.get("LOCAL_TOKEN"):
        done["LOCAL_TOKEN"] = secrets.token_urlsafe(24)
    done.setdefault("RUN_STORE", default_run_store())
    if int(done["MAX_CONTENT_LENGTH"]) < 1024:
        raise ConfigError("SHEETSYNC_MAX_BODY_BYTES must be at least 1024")
    if int(done["WORKER_THREADS"]) < 1:
        raise ConfigError("SHEETSYNC_WORKER_THREADS must be at least 1")
    if float(done["SYNC_BUDGET"]) < 0:
        raise ConfigError("SHEETSYNC_SYNC_BUDGET must not be negative")
    for key in ("SERVE_THREADS", "SERVE_CONNECTIONS"):
        if int(done[key]) < 1:
            raise ConfigError(f"SHEETSYNC_{key} must be at least 1")
    if not 1 <= float(done["SERVE_TIMEOUT"]) <= 3600:
        raise ConfigError("SHEETSYNC_SERVE_TIMEOUT must be from 1 to 3600 seconds")
    if done["SCHEDULER"] not in (None, "", "embedded"):
        raise ConfigError(f"SHEETSYNC_SCHEDULER must be 'embedded' or unset, not {done['SCHEDULER']!r}")
    return done
