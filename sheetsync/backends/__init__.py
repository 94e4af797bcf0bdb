"""Where sheets live. `open_backend` picks one from the target's shape.

- a path ending in ``.xlsx`` or ``.xlsm``: the local workbook (`XlsxBackend`), no account, no
  network;
- anything else: a Google Sheets URL or key (`GoogleBackend`), imported only when needed so
  local use never loads the Google client libraries.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BackendError

LOCAL_SUFFIXES = (".xlsx", ".xlsm")


def is_local(target: str) -> bool:
    return Path(str(target)).suffix.lower() in LOCAL_SUFFIXES


def open_backend(target: str, credentials: str | None = None, token: str | None = None):
    """The backend for `target`; `credentials` (a service-account file) and `token` (an OAuth
    access token) only matter for Google Sheets."""
    target = str(target)
    if is_local(target):
        try:
            from .xlsx import XlsxBackend
        except ImportError as e:
            raise BackendError(f"the local .xlsx backend is not available in this install ({e})") from None
        return XlsxBackend(target)
    try:
        from .targets import parse_target
    except ImportError:  # the Google client libraries are missing
        parse_target = None
    if parse_target is None or parse_target(target) is None:
        raise BackendError(f"{target}: not a workbook sheetsync can open; expected a path ending in "
                           ".xlsx or .xlsm, or a Google Sheets URL or key")
    try:
        from .google import GoogleBackend
    except ImportError as e:
        raise BackendError(f"{target}: looks like a Google Sheet, but the Google backend is not "
                           f"available in this install ({e}); use a local .xlsx path") from None
    return GoogleBackend.open(target, credentials, token=token)
