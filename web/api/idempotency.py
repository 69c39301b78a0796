"""``Idempotency-Key`` on POST, with Stripe's semantics.

The first request with a key reserves it (committed at once, so a concurrent twin sees it and gets
409), runs, and stores its answer; a retry with the same key and the same request replays that answer
with ``Idempotent-Replayed: true``; the same key with another request is refused with 422. Records
expire after 24 hours. A 5xx answer is not kept: the client may retry with the same key.

A record belongs to the API key that made it (the principal): another key of the same company, even one
sending the same Idempotency-Key and body, never finds it and has its own request run. This layer sits
behind ApiKeyMiddleware, which authenticates and checks the route's scope first, so a replay is only ever
answered to a caller allowed to make the request.

A one-time secret (a new API key, a webhook signing secret: the ``OneTimeSecret`` fields the route's
answer declares, see ``endpoint()``) is never stored: the kept answer has it as null, and a replay says so
in ``Idempotent-Secret-Withheld``. The request was done; the secret is shown once, in the first answer.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from litestar.exceptions import ClientException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.exc import IntegrityError

from backoffice.platform import clock
from backoffice.platform.db.session import Database
from backoffice.platform.errors import Conflict, FieldError, ValidationFailed
from backoffice.tenants.apikeys.models import IdempotencyRecord
from backoffice.tenants.apikeys.service import (
    find_idempotency_record, keep_idempotent_answer, release_idempotency_key, reserve_idempotency_key,
)

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("content-type", "location")
WITHHELD_HEADER = "idempotent-secret-withheld"


class PayloadTooLarge(ClientException):
    status_code = 413


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole body, refused past the route's ``request_max_body_size`` (we read it before Litestar)."""
    limit = scope["route_handler"].resolve_request_max_body_size()
    declared = _header(scope, b"content-length")
    if limit is not None and declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(detail=f"Request body larger than {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(detail=f"Request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if scope["type"] != "http" or scope["method"] != "POST" or key is None:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise ValidationFailed(FieldError(HEADER, f"expected 1-{MAX_KEY_LENGTH} characters"))
        principal = scope["user"]
        database: Database = scope["app"].state.database
        body = await read_body(scope, receive)
        request_hash = fingerprint(scope, body)
        record = await _reserve(database, principal, key, request_hash, scope)
        if record is not None:
            await _replay(record, send)
            return

        status, chunks, headers = 500, [], {}

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.decode("latin-1").lower() in KEPT_HEADERS:
                        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await _release(database, principal, key)
            raise
        if status >= 500:
            await _release(database, principal, key)
        else:
            body, withheld = withhold_secrets(b"".join(chunks), scope["route_handler"].opt.get("one_time_secrets", ()))
            if withheld:
                headers[WITHHELD_HEADER] = ", ".join(withheld)
            await _complete(database, principal, key, status, body, headers)


def withhold_secrets(body: bytes, fields: tuple[str, ...]) -> tuple[bytes, tuple[str, ...]]:
    """The answer as it may be stored: each one-time secret field set to null, and which ones were.

    An answer of a route declaring secrets that is not a JSON object is not stored at all (empty body):
    a body we cannot read is a body we cannot vouch for.
    """
    if not fields:
        return body, ()
    try:
        document = json.loads(body)
    except ValueError:
        return b"", ()
    if not isinstance(document, dict):
        return b"", ()
    withheld = tuple(name for name in fields if document.get(name) is not None)
    for name in withheld:
        document[name] = None
    return json.dumps(document, separators=(",", ":")).encode(), withheld


async def _reserve(database: Database, principal, key: str, request_hash: str, scope: Scope):
    """The stored record to replay, or None after reserving the key for this request."""
    now = clock.now()
    async with database.tenant(principal.tenant_id) as session:
        record = await find_idempotency_record(session, principal.key_id, key, now=now)
        if record is not None:
            if record.response_status is None:
                raise Conflict(FieldError(HEADER, "a request with this key is still in progress; retry later"))
            if record.request_hash != request_hash:
                raise ValidationFailed(FieldError(
                    HEADER, "this key was already used with a different request; use a new key for a new request"))
            return record
    try:
        async with database.tenant(principal.tenant_id) as session:
            await reserve_idempotency_key(session, principal.key_id, key, request_hash=request_hash,
                                          method=scope["method"], path=scope["path"], now=now, ttl=TTL)
    except IntegrityError:  # a concurrent request reserved it between our read and our insert
        raise Conflict(FieldError(HEADER, "a request with this key is still in progress; retry later")) from None
    return None


async def _complete(database: Database, principal, key: str, status: int, body: bytes, headers: dict) -> None:
    async with database.tenant(principal.tenant_id) as session:
        await keep_idempotent_answer(session, principal.key_id, key, status=status, body=body.decode("utf-8"),
                                     headers=headers)


async def _release(database: Database, principal, key: str) -> None:
    async with database.tenant(principal.tenant_id) as session:
        await release_idempotency_key(session, principal.key_id, key)


async def _replay(record: IdempotencyRecord, send: Send) -> None:
    body = (record.response_body or "").encode("utf-8")
    headers = [(k.encode(), v.encode()) for k, v in record.response_headers.items()]
    headers += [(b"idempotent-replayed", b"true"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": record.response_status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})



