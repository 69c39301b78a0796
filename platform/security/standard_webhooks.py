"""Signing and verifying HTTP messages per the Standard Webhooks specification.

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (space-separated
``v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"``). Secrets are ``whsec_`` + base64 of the
key bytes. During a rotation a message is signed with every live secret so receivers accept either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("expected a whsec_ secret")
    return base64.b64decode(secret[len(PREFIX):])


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secrets_: Iterable[str], message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers for ``body``, signed with every live secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signatures = " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_)
    if not signatures:
        raise ValueError("no secret to sign with")
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def verify(secrets_: Iterable[str], headers: Mapping[str, str], body: bytes, *, now: int | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise SignatureError unless one signature matches one secret within the timestamp tolerance."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook-id, webhook-timestamp or webhook-signature") from None
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance (replay protection)")
    for secret in secrets_:
        expected = signature(secret, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureError("no signature matches")
