"""Who calls /api/v1: the bearer API key, its tenant, its scopes and its rate limit.

One middleware authenticates every request of the tenant API and checks the scope the route declares in
``opt={"scope": ...}`` before anything else runs, the idempotency layer's replays included (a stored
answer is never shown to a key that may not make the request). A route that declares none is refused
(fail closed), and tests/web/api/test_authorisation.py walks every route to keep it so.

A credential in the URL (``?api_key=``, ``?token=``, or any of our secrets as a query value) is refused
on every /api/v1 route with a 400 naming the parameter, before authentication: URLs end up in access
logs, proxies and browser history. The value is never echoed.

A key that authenticated in the last few seconds is served from the process's cache (see
tenants/apikeys/cache.py): no database round trip per request.

Every refusal of a key (absent, malformed, wrong checksum, unknown, revoked, expired) answers the same
401 body: which of these it was would only help someone guessing keys. The one exception is a retired
``bo_test_`` key, told why: that reason comes from the key's own prefix, not from the database.
"""

from __future__ import annotations

import uuid
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import (
    NotAuthorizedException, PermissionDeniedException, TooManyRequestsException, ValidationException,
)
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backoffice.platform.availability import REDIS_ERRORS, Pause
from backoffice.platform import logs
from backoffice.platform.db.session import Database
from backoffice.platform.ratelimit import Decision, RateLimiter
from backoffice.tenants.apikeys.service import RetiredKey, allows, authenticate_key

log = logging.getLogger(__name__)
_paused = Pause()
INVALID_KEY = "Invalid or expired API key"
WINDOW_SECONDS = 60
CREDENTIAL_PARAMETERS = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "secret"})
SECRET_PREFIXES = ("bo_live_", "bo_test_", "bo_staff_", "whsec_")
KEY_IN_URL = ("credentials are never accepted in the URL (access logs keep it): send the key in the "
              "Authorization header (Authorization: Bearer ...); if a real key was sent here, roll it")


@dataclass(frozen=True)
class ApiPrincipal:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scopes: tuple[str, ...]
    label: str
    rate_limit: int

    def actor(self):
        from backoffice.platform.audit.service import Actor

        return Actor(type="api_key", label=self.label, id=str(self.key_id))


def _refuse(detail: str = INVALID_KEY) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": 'Bearer realm="api"'})


def refuse_credentials_in_url(scope: Scope) -> None:
    """A 400 naming each query parameter that carries (or is named for) a credential; never its value."""
    query = scope.get("query_string", b"").decode("latin-1")
    if not query:
        return
    named = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if (name.lower() in CREDENTIAL_PARAMETERS or value.startswith(SECRET_PREFIXES)) and name not in named:
            named.append(name)
    if named:
        raise ValidationException(detail="An API credential was sent in the URL",
                                  extra=[{"key": name[:100], "message": KEY_IN_URL} for name in named])


class CredentialsInUrlMiddleware:
    """Every /api/v1 route, tenant and staff alike: see ``refuse_credentials_in_url``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refuse_credentials_in_url(scope)
        await self.app(scope, receive, send)


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def authenticate(database: Database, secret: str | None, ip: str | None) -> ApiPrincipal:
    try:
        key = await authenticate_key(database, secret, ip) if secret else None
    except RetiredKey as retired:
        raise _refuse(str(retired)) from None
    if key is None:
        raise _refuse()
    logs.bind(tenant_id=key.tenant_id)
    return ApiPrincipal(key.tenant_id, key.key_id, key.scopes, f"api_key:{key.display_prefix}", key.rate_limit)


class ApiKeyMiddleware:
    """Authenticate, count against the key's rate limit, check the route's scope, and put the limit on
    every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        client = scope.get("client")
        principal = await authenticate(state.database, bearer(scope), client[0] if client else None)
        decision = await _count(state.rate_limiter, principal)
        if decision is not None and not decision.allowed:
            raise TooManyRequestsException(detail="Rate limit exceeded for this API key", headers=decision.headers())
        extra = decision.headers() if decision is not None else {}
        try:
            authorise(principal, scope["route_handler"])
        except PermissionDeniedException as refused:
            refused.headers = {**(refused.headers or {}), **extra}
            raise
        scope["user"] = principal
        scope["auth"] = principal

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_limits)


async def _count(limiter: RateLimiter, principal: ApiPrincipal) -> Decision | None:
    """The key's per-minute budget, or None when Redis cannot count it now. Fails open: the key is
    authenticated (by the database), the budget protects capacity, not secrecy, and refusing every call
    while Redis restarts would stop the tenants' intake; the answer then carries no RateLimit headers.
    A Redis that just failed is skipped for a second, so the calls of an outage do not each wait on it."""
    url = getattr(limiter, "url", "")
    if url and _paused.active(url):
        return None
    try:
        return await limiter.hit(str(principal.tenant_id), f"key:{principal.key_id}", limit=principal.rate_limit,
                                 window=WINDOW_SECONDS)
    except REDIS_ERRORS as error:
        if url:
            _paused.failed(url)
        log.warning("API rate limit not counted for key %s of tenant %s: Redis unavailable (%s)",
                    principal.key_id, principal.tenant_id, type(error).__name__)
        return None


def authorise(principal: ApiPrincipal, handler: BaseRouteHandler) -> None:
    """The key holds the scope the route declares; a route that declares none is open to no key."""
    needed = handler.opt.get("scope")
    if not needed:
        raise PermissionDeniedException(detail="This route is not open to API keys")
    if not allows(principal.scopes, needed):
        raise PermissionDeniedException(detail=f"This API key lacks the scope {needed}")


async def require_scope(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The router's guard, behind the middleware: a route somehow reached without it is refused too."""
    # Async although it awaits nothing: Litestar runs a sync guard in a worker thread, a thread hop per request.
    principal = connection.scope.get("user")
    if not isinstance(principal, ApiPrincipal):
        raise PermissionDeniedException(detail="This route is not open to API keys")
    authorise(principal, handler)
