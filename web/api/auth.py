"""Who calls /api/v1: the bearer API key, its tenant, its scopes and its rate limit.

One middleware authenticates every request of the tenant API before anything else runs; a guard then
checks the scope each route declares in ``opt={"scope": ...}``. A route that declares none is refused
(fail closed), and tests/web/api/test_authorisation.py walks every route to keep it so.

A key that authenticated in the last few seconds is served from the process's cache (see
tenants/apikeys/cache.py): no database round trip per request.

Every refusal of a key (absent, malformed, wrong checksum, unknown, revoked, expired) answers the same
401 body: which of these it was would only help someone guessing keys.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backoffice.platform.db.session import Database
from backoffice.platform.ratelimit import RateLimiter
from backoffice.tenants.apikeys.service import allows, authenticate_key

INVALID_KEY = "Invalid or expired API key"
WINDOW_SECONDS = 60


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


def _refuse() -> NotAuthorizedException:
    return NotAuthorizedException(detail=INVALID_KEY, headers={"WWW-Authenticate": 'Bearer realm="api"'})


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def authenticate(database: Database, secret: str | None, ip: str | None) -> ApiPrincipal:
    key = await authenticate_key(database, secret, ip) if secret else None
    if key is None:
        raise _refuse()
    return ApiPrincipal(key.tenant_id, key.key_id, key.scopes, f"api_key:{key.display_prefix}", key.rate_limit)


class ApiKeyMiddleware:
    """Authenticate, count against the key's rate limit, and put the limit on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        client = scope.get("client")
        principal = await authenticate(state.database, bearer(scope), client[0] if client else None)
        limiter: RateLimiter = state.rate_limiter
        decision = await limiter.hit(str(principal.tenant_id), f"key:{principal.key_id}", limit=principal.rate_limit,
                                     window=WINDOW_SECONDS)
        if not decision.allowed:
            raise TooManyRequestsException(detail="Rate limit exceeded for this API key", headers=decision.headers())
        scope["user"] = principal
        scope["auth"] = principal
        extra = decision.headers()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_limits)


async def require_scope(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # Async although it awaits nothing: Litestar runs a sync guard in a worker thread, a thread hop per request.
    needed = handler.opt.get("scope")
    principal = connection.scope.get("user")
    if not isinstance(principal, ApiPrincipal) or not needed:
        raise PermissionDeniedException(detail="This route is not open to API keys")
    if not allows(list(principal.scopes), needed):
        raise PermissionDeniedException(detail=f"This API key lacks the scope {needed}")


def provide_principal(request) -> ApiPrincipal:
    return request.scope["user"]
