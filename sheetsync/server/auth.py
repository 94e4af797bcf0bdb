"""Who is calling: a Google ID token (the add-on), an API key (trusted callers), or the local token.

- ``X-Api-Key: <key>``: one of the configured API keys, compared in constant time.
- ``Authorization: Bearer <token>``: in local mode the token printed at start-up; in Google mode
  an OpenID Connect ID token from ``ScriptApp.getIdentityToken()``, verified by google-auth
  (signature against Google's certificates, expiry, issuer accounts.google.com, audience among
  the configured OAuth client ids). Every way verification can fail — ValueError, any
  `GoogleAuthError` (a wrong issuer is one, not a ValueError), transport errors fetching the
  certificates, malformed tokens — answers 401.
- ``X-Goog-User-Token``: the user's OAuth access token, kept with the caller and used only to
  open the sheet, so nobody reaches a sheet they could not open themselves.

Tokens are never logged or echoed in a message.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field

import google.auth.transport.requests
from google.oauth2 import id_token

from .errors import ApiError

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
CERTS_TTL = 300.0  # seconds Google's certificates are reused before fetching them again
CLOCK_SKEW = 10  # seconds of clock difference tolerated on exp/iat
MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True)
class Caller:
    kind: str  # "local" | "api_key" | "google"
    name: str  # who, for the run store: "local", "api key 2", or the Google account's subject
    email: str | None = None
    user_token: str | None = field(default=None, repr=False)

    @property
    def sees_all_runs(self) -> bool:
        return self.kind != "google"


class CachingRequest:
    """google-auth's transport, reusing the certificate response for CERTS_TTL seconds."""

    def __init__(self, clock=time.monotonic):
        self._inner = google.auth.transport.requests.Request()
        self._clock = clock
        self._cached: tuple[float, object] | None = None
        self._lock = threading.Lock()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=10, **kwargs):
        if url != GOOGLE_CERTS_URL or method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < CERTS_TTL:
                return self._cached[1]
        response = self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cached = (self._clock(), response)
        return response


class IdTokenVerifier:
    def __init__(self, audiences: list[str], request=None):
        self.audiences = list(audiences)
        self.request = request or CachingRequest()

    def verify(self, token: str) -> dict:
        """The token's claims, or `ApiError` 401 saying (without the token) what was wrong."""
        if not self.audiences:
            raise unauthorized("this server accepts no Google ID tokens (no OAuth client ids configured)")
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthorized("the ID token is too long")
        try:
            claims = id_token.verify_oauth2_token(token, self.request, audience=self.audiences,
                                                  clock_skew_in_seconds=CLOCK_SKEW)
        except Exception as e:  # noqa: BLE001 - ValueError, GoogleAuthError and its kin: all mean "no"
            log.info("ID token refused: %s", type(e).__name__)
            raise unauthorized(f"the Google ID token was refused ({reason(e)})") from None
        if not claims.get("sub"):
            raise unauthorized("the Google ID token names no subject")
        return claims


def reason(error: Exception) -> str:
    """A short, token-free reason: google-auth's messages quote claims, not the token itself."""
    text = str(error).lower()
    for needle, said in (("expired", "expired"), ("too early", "not yet valid"),
                         ("audience", "wrong audience"), ("issuer", "wrong issuer"),
                         ("signature", "bad signature"), ("certificate", "could not fetch Google's certificates"),
                         ("segments", "malformed"), ("kid", "unknown signing key")):
        if needle in text:
            return said
    return "malformed or unverifiable"


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sheetsync"'})


def authenticate(headers, config: dict, verifier: IdTokenVerifier) -> Caller:
    """The caller the request's headers prove, or `ApiError` 401."""
    user_token = headers.get("X-Goog-User-Token") or None
    api_key = headers.get("X-Api-Key")
    if api_key is not None:
        index = matching_key(api_key, config["API_KEYS"])
        if index is None:
            raise unauthorized("the API key is not valid")
        return Caller("api_key", f"api key {index + 1}", None, user_token)
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("send Authorization: Bearer <token> (a Google ID token, or the local "
                           "token in local mode) or X-Api-Key")
    if config["MODE"] == "local":
        if not constant_time_equal(token, config["LOCAL_TOKEN"]):
            raise unauthorized("the local token is not valid (it is printed when the server starts)")
        return Caller("local", "local", None, user_token)
    claims = verifier.verify(token)
    return Caller("google", f"google:{claims['sub']}", claims.get("email"), user_token)


def matching_key(given: str, keys: list[str]) -> int | None:
    """Index of the configured key equal to `given`; every key is compared (constant time)."""
    found = None
    for i, key in enumerate(keys):
        if constant_time_equal(given, key):
            found = i
    return found


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
