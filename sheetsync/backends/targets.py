"""Naming a Google spreadsheet and proving who we are: URL/key parsing and credentials.

`parse_target` accepts what users paste:

- ``https://docs.google.com/spreadsheets/d/KEY/edit#gid=0`` (also ``/edit?usp=sharing``,
  ``/view``, ``/copy``, ``/htmlview``, nothing after the key, and the multi-account form
  ``/spreadsheets/u/1/d/KEY/…``);
- the old ``…/ccc?key=KEY`` links;
- a bare key (Google's keys are 25+ letters, digits, ``-`` and ``_``).

It returns None for anything that is not a Google target (``book.xlsx``, a path, a web page
elsewhere) so the caller can try the local backend. Links that look like Google but cannot
name an editable spreadsheet raise `BackendError` with what to paste instead: published
links (``/spreadsheets/d/e/2PACX-…``: that ID is not the key), Docs or Slides URLs.

Credentials, first match wins: an OAuth access token (what the add-on forwards), an explicit
``--credentials PATH``, ``$GOOGLE_APPLICATION_CREDENTIALS``, gspread's default file
(``~/.config/gspread/service_account.json``). Files may be service-account keys or
``authorized_user`` files. Messages name files and the service account's email, never the
contents of a key or a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import google.oauth2.credentials
import google.oauth2.service_account
from google.auth.credentials import Credentials

from ..errors import BackendError

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]  # no Drive: we only open by key

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{25,}$")
SHEET_PATH_RE = re.compile(r"^/spreadsheets/(?:u/\d+/)?d/([A-Za-z0-9_-]+)")
PUBLISHED_PATH_RE = re.compile(r"^/spreadsheets/(?:u/\d+/)?d/e/")
LOCAL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".csv")


def parse_target(target: str) -> str | None:
    """The spreadsheet key `target` names, or None when it is not a Google Sheets target."""
    text = str(target).strip()
    if not text or text.lower().endswith(LOCAL_SUFFIXES):
        return None
    if "://" in text or text.startswith(("docs.google.com", "drive.google.com")):
        return _key_from_url(text if "://" in text else "https://" + text)
    if KEY_RE.match(text) and not os.path.exists(text):
        return text
    return None


def _key_from_url(url: str) -> str | None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in ("docs.google.com", "drive.google.com"):
        return None
    if PUBLISHED_PATH_RE.match(parts.path):
        raise BackendError(
            f"{url}: this is a published-to-the-web link (/d/e/…); its ID is not the spreadsheet's "
            "key and cannot be written to. Open the spreadsheet itself and copy its address "
            "(…/spreadsheets/d/KEY/edit).")
    match = SHEET_PATH_RE.match(parts.path)
    if match:
        return match.group(1)
    keys = parse_qs(parts.query).get("key") or parse_qs(parts.fragment).get("key")
    if parts.path.startswith("/spreadsheet") and keys and KEY_RE.match(keys[0]):
        return keys[0]
    raise BackendError(
        f"{url}: not a Google Sheets address; expected https://docs.google.com/spreadsheets/d/KEY/…")


# ---------------------------------------------------------------------------------------------
# Credentials


@dataclass
class Identity:
    """Who the requests run as: enough to explain a 403 and to key the quota buckets."""

    kind: str  # "service_account" | "user"
    email: str | None
    project: str | None
    fingerprint: str | None = None  # of a bare access token, when the email is unknown

    @property
    def user_key(self) -> str:
        """The per-user quota bucket: the email, else a hash of the token (never the token)."""
        return f"user:{self.email or (f'token-{self.fingerprint}' if self.fingerprint else 'oauth-user')}"

    @property
    def project_key(self) -> str:
        return f"project:{self.project or 'default'}"


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def default_service_account_path() -> Path:
    """gspread's default location (read from gspread so we follow it if it moves)."""
    from gspread.auth import DEFAULT_SERVICE_ACCOUNT_FILENAME

    return Path(DEFAULT_SERVICE_ACCOUNT_FILENAME)


def credentials_path(path: str | os.PathLike | None = None, env=None) -> Path | None:
    """The credentials file to use: explicit path, then the environment, then gspread's file."""
    env = os.environ if env is None else env
    if path:
        return Path(path).expanduser()
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser()
    default = default_service_account_path()
    return default if default.exists() else None


def load_credentials(path: str | os.PathLike | None = None, *, token: str | None = None,
                     env=None, scopes=SCOPES) -> tuple[Credentials, Identity]:
    """Credentials for the Sheets API and who they belong to; `BackendError` when none fit."""
    if token:
        creds = google.oauth2.credentials.Credentials(token=token, scopes=list(scopes))
        return creds, Identity("user", None, None, token_fingerprint(token))
    found = credentials_path(path, env)
    if found is None:
        raise BackendError(
            "no Google credentials: pass --credentials PATH (a service-account JSON key), set "
            f"GOOGLE_APPLICATION_CREDENTIALS, or put the key at {default_service_account_path()}")
    return credentials_from_file(found, scopes)


def credentials_from_file(path: Path, scopes=SCOPES) -> tuple[Credentials, Identity]:
    info = _read_json(path)
    kind = info.get("type")
    try:
        if kind == "service_account":
            creds = google.oauth2.service_account.Credentials.from_service_account_info(
                info, scopes=list(scopes))
            return creds, Identity("service_account", info.get("client_email"), info.get("project_id"))
        if kind == "authorized_user":
            creds = google.oauth2.credentials.Credentials.from_authorized_user_info(info, list(scopes))
            return creds, Identity("user", info.get("account") or None, info.get("quota_project_id"))
    except (ValueError, KeyError) as exc:
        # google-auth's messages name missing fields, never values; keep only the first line
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendError(f"{path}: not a usable Google credentials file ({first_line})") from None
    raise BackendError(
        f"{path}: expected a service-account key (\"type\": \"service_account\") or an "
        f"authorized-user file, found type {kind!r}")


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackendError(f"{path}: credentials file not found") from None
    except OSError as exc:
        raise BackendError(f"{path}: cannot read credentials file ({exc.strerror})") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise BackendError(f"{path}: credentials file is not valid JSON") from None
    if not isinstance(info, dict):
        raise BackendError(f"{path}: credentials file is not a JSON object")
    return info
