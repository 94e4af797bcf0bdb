"""Helpers of the server tests (constants, ID-token minting), imported by name so that no test
imports a conftest module."""

from __future__ import annotations

import datetime as dt
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

LOCAL_TOKEN = "local-token-for-tests-0123456789"
API_KEY = "api-key-for-tests-abcdefghijklmn"
CLIENT_ID = "1234567890-addon.apps.googleusercontent.com"
KID = "test-key-1"
SHEET_KEY = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
OWNER_TOKEN = "ya29.owner-token-with-access"
STRANGER_TOKEN = "ya29.stranger-token-without-access"


def auth(token: str = LOCAL_TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def make_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-certs")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def id_token(private_pem: str, kid: str = KID, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": CLIENT_ID, "azp": CLIENT_ID,
              "sub": "110000000000000000001", "email": "learner@example.com", "email_verified": True,
              "iat": now, "exp": now + 3600}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    signer = crypt.RSASigner.from_string(private_pem, key_id=kid)
    return jwt.encode(signer, claims).decode()
