"""Every error leaves the server as JSON: ``{"error": {"code", "message", "problems"}}``.

`ApiError` is raised by the views for requests they refuse; `from_sheetsync` maps the errors a
run raises (bad input, a tab the user owns, a sheet the user cannot open) to an HTTP status.
An unexpected exception answers 500 with a generic message and no traceback.
"""

from __future__ import annotations

import logging
import os
import traceback

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from sheetsync.backends.guard import WorkbookChanged
from sheetsync.errors import BackendError, InputError, OwnershipError, SettingError, SheetsyncError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refused request: HTTP status, a stable code for programs, a message for people."""

    def __init__(self, status: int, code: str, message: str, problems: list[dict] | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = problems or []
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "problems": self.problems}}


def from_sheetsync(error: SheetsyncError, google: bool = False, doing: str = "run",
                   folder: str | None = None) -> ApiError:
    """The HTTP answer to an error a run (or a trace: `doing="trace"`) raised; paths inside the
    served `folder` are shown relative to it (a caller never learns where the server keeps it)."""
    answer = _answer(error, google, doing)
    if folder:
        answer.message = relative_to(answer.message, folder)
        answer.problems = [{k: relative_to(v, folder) if isinstance(v, str) else v for k, v in p.items()}
                           for p in answer.problems]
    return answer


def relative_to(text: str, folder: str) -> str:
    folder = folder.rstrip("/\\")
    return text.replace(folder + os.sep, "").replace(folder, ".")


def _answer(error: SheetsyncError, google: bool, doing: str) -> ApiError:
    if isinstance(error, InputError):
        problems = [{"cell": p.cell, "message": p.message} for p in error.problems]
        written = "; nothing was written but the run log" if doing == "run" else ""
        return ApiError(422, "input_error", f"{len(problems)} problem(s) in the sheet's inputs{written}", problems)
    if isinstance(error, SettingError):
        problems = [{"cell": error.cell or "", "message": str(error)}]
        return ApiError(422, "input_error", str(error), problems)
    if isinstance(error, OwnershipError):
        return ApiError(409, "tab_not_owned", str(error))
    if isinstance(error, BackendError):
        return _backend_error(error, google)
    return ApiError(422, "cannot_trace" if doing == "trace" else "run_failed", str(error))


def _backend_error(error: BackendError, google: bool) -> ApiError:
    status = getattr(error, "status", None)
    if status == 401:
        return ApiError(401, "user_token_rejected", str(error))
    if status == 403:
        return ApiError(403, "no_access", "your Google account cannot open or edit this spreadsheet "
                        f"(Google said: {error}). Ask its owner to share it with you.")
    if status == 404:
        return ApiError(404, "spreadsheet_not_found", str(error))
    if status == 409:  # another save since the read, or the workbook is open in an office suite
        code = "workbook_changed" if isinstance(error, WorkbookChanged) else "workbook_in_use"
        return ApiError(409, code, str(error))
    if status == 429:
        return ApiError(429, "quota_exceeded", str(error))
    if google and (status is None or status >= 500):
        return ApiError(502, "google_unavailable", str(error))
    return ApiError(422, "backend_error", str(error))


def error_response(error: ApiError):
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = (e.name or "error").lower().replace(" ", "_")
        if e.code == 413:
            message = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        else:
            message = e.description or e.name
        response = error_response(ApiError(e.code or 500, code, message))
        if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
            response.headers["Allow"] = ", ".join(e.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = f" at {frame.filename}:{frame.lineno}" if frame else ""
        log.error("internal error: %s%s", type(e).__name__, where)  # the message may hold secrets
        return error_response(ApiError(500, "internal_error", "internal error; it was logged"))
