"""From what a request names to a sheet sheetsync can open, and who may open it.

Local mode: a workbook *name* in the served folder. Refused with 400: anything but a plain file
name (no ``/`` or ``\\``, no ``..``, not absolute, no NUL or control characters, at most 255
characters) ending in ``.xlsx`` or ``.xlsm``, and any name whose real path (symlinks followed)
is not directly inside the folder. A valid name with no such file is 404.

Google mode: a spreadsheet URL or key (`sheetsync.backends.targets.parse_target`). The sheet is
opened with the caller's forwarded OAuth token (``X-Goog-User-Token``), so Google itself decides
whether this user may read and write it; only API-key callers may fall back to the server's
service account (SHEETSYNC_GOOGLE_CREDENTIALS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from flask import current_app

from sheetsync.backends.paths import LOCAL_SUFFIXES, MAX_NAME, OutsideFolder, bad_name, workbook_in  # noqa: F401
from sheetsync.errors import BackendError

from .auth import Caller
from .errors import ApiError


@dataclass
class Sheet:
    target: str  # what `open_backend` gets: a path or a Google key
    lock_key: str  # one writer per lock key
    display: str  # what the API shows (never a server path)
    open: Callable[[], object]  # -> backend


def resolve(name: str, caller: Caller, config: dict) -> Sheet:
    if config["MODE"] == "local":
        return local_sheet(name, config)
    return google_sheet(name, caller, config)


def local_sheet(name: str, config: dict) -> Sheet:
    path = local_path(config["LOCAL_FOLDER"], name)
    factory = config.get("BACKEND_FACTORY")
    return Sheet(path, "local:" + path, name,
                 (lambda: factory(path, None)) if factory else (lambda: open_local(path)))


def local_path(folder: str, name: str) -> str:
    """The workbook's real path inside `folder`, or `ApiError` (400 bad name, 404 missing)."""
    try:
        path = workbook_in(folder, name)
    except OutsideFolder as e:
        if e.why.startswith("leads outside"):
            raise ApiError(400, "invalid_workbook_name", "spreadsheet: the name leads outside the served folder",
                           [{"field": "spreadsheet", "message": "leads outside the served folder"}]) from None
        raise ApiError(400, "invalid_workbook_name", f"spreadsheet: {e.why}; give the file name of a "
                       "workbook in the served folder, such as sheetsync-demo.xlsx",
                       [{"field": "spreadsheet", "message": e.why}]) from None
    if not os.path.isfile(path):
        raise ApiError(404, "workbook_not_found", f"no workbook named {name!r} in the served folder")
    return path


def open_local(path: str):
    from sheetsync.backends import open_backend

    return open_backend(path)


def google_sheet(name: str, caller: Caller, config: dict) -> Sheet:
    from sheetsync.backends.targets import parse_target

    try:
        key = parse_target(name)
    except BackendError as e:
        raise ApiError(400, "invalid_spreadsheet", str(e), [{"field": "spreadsheet", "message": str(e)}]) from None
    if key is None:
        message = "not a Google Sheets URL or key (https://docs.google.com/spreadsheets/d/KEY/…)"
        raise ApiError(400, "invalid_spreadsheet", f"spreadsheet: {message}",
                       [{"field": "spreadsheet", "message": message}])
    token = caller.user_token
    if token is None and not (caller.kind == "api_key" and config.get("GOOGLE_CREDENTIALS")):
        raise ApiError(400, "user_token_required", "send the user's OAuth access token in "
                       "X-Goog-User-Token (ScriptApp.getOAuthToken()); sheetsync opens the sheet as you")
    factory = config.get("BACKEND_FACTORY")
    credentials = None if token else config.get("GOOGLE_CREDENTIALS")
    quota = current_app.extensions["sheetsync"].quota  # read here: the run opens it on a worker thread

    def open_google():
        if factory:
            return factory(key, token)
        from sheetsync.backends.google import GoogleBackend

        return GoogleBackend.open(key, credentials, token=token, bucket=quota)

    return Sheet(key, "google:" + key, key, open_google)
