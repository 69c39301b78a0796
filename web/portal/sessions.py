"""Server-side portal sessions bound to a tenant, the per-tenant host name, and the portal's CSRF defences.

The cookie holds only a random id. The store key is ``<tenant slug>:<id>``, so the same cookie presented
on another tenant's portal finds nothing there (and the session also records its tenant id, which every
portal page checks). The id is replaced at log-in and log-out (no fixation). Redis holds sessions when
``BACKOFFICE_REDIS_URL`` is set; the embedded mode keeps them in files under the data dir. Log-in
throttling lives in ``platform/ratelimit.py``.

CSRF has two layers: the synchronizer token (Litestar's CSRF middleware, a form field or the
``x-csrftoken`` header) and :class:`SameOriginMiddleware` (the request's Origin, or Referer, must be ours).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import DefineMiddleware
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Empty, Message, Receive, Scope, ScopeSession, Send
from litestar.utils.dataclass import extract_dataclass_items

from backoffice.platform.availability import redis_client
from backoffice.platform.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "bo_session"
CSRF_COOKIE = "bo_csrf"
ROTATE = "_rotate"
LOADED = "backoffice.session_loaded"
SESSION_MAX_AGE = 12 * 3600
# Paths that never carry a browser session or a CSRF cookie: JSON API, webhook intake, probes.
NOT_PORTAL = ["^/api/", "^/api$", "^/hooks/", "^/healthz$", "^/readyz$", "^/static/"]


def _tenant_part(connection: ASGIConnection) -> str:
    slug = (connection.scope.get("path_params") or {}).get("tenant_slug")
    return slug or "-"


class TenantSessionBackend(ServerSideSessionBackend):
    def _key(self, connection: ASGIConnection, session_id: str) -> str:
        return f"{_tenant_part(connection)}:{session_id}"

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        if session_id := connection.cookies.get(self.config.key):
            store = self.config.get_store_from_app(connection.scope["app"])
            data = await self.get(self._key(connection, session_id), store=store)
            if data is not None:
                connection.scope[LOADED] = True
                return self.deserialize_data(data)
        return {}

    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        store = self.config.get_store_from_app(connection.scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        cookie_params = dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))
        old_id = connection.cookies.get(self.config.key)
        rotate = bool(scope_session) and scope_session is not Empty and scope_session.pop(ROTATE, False)
        if scope_session is Empty or not scope_session:
            # Only a session this tenant had and that was cleared (log-out) ends the cookie; a cookie this
            # tenant does not know (another tenant's session) is left alone for its own tenant.
            if old_id and connection.scope.get(LOADED):
                await self.delete(self._key(connection, old_id), store=store)
                headers.add("Set-Cookie", Cookie(value="null", key=self.config.key, expires=0,
                                                 **cookie_params).to_header(header=""))
            return
        session_id = old_id
        if rotate or not session_id or session_id == "null":
            if old_id and old_id != "null":
                await self.delete(self._key(connection, old_id), store=store)
            session_id = self.generate_session_id()
        await self.set(self._key(connection, session_id), self.serialize_data(scope_session, connection.scope), store)
        headers.add("Set-Cookie", Cookie(value=session_id, key=self.config.key, **cookie_params).to_header(header=""))


class TenantSessionConfig(ServerSideSessionConfig):
    _backend_class = TenantSessionBackend


def secure_cookies(settings: Settings) -> bool:
    return (settings.base_url or "").lower().startswith("https://")


def session_config(settings: Settings) -> TenantSessionConfig:
    return TenantSessionConfig(
        key=SESSION_COOKIE, store="portal_sessions", max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
        # The staff console (/staff, a reserved slug) has its own session: web/console/session.py.
        secure=secure_cookies(settings), exclude=[*NOT_PORTAL, "^/staff(/|$)"], renew_on_access=True,
    )


def csrf_config(settings: Settings) -> CSRFConfig:
    return CSRFConfig(
        secret=settings.effective_secret_key(), cookie_name=CSRF_COOKIE, cookie_secure=secure_cookies(settings),
        cookie_httponly=True, cookie_samesite="lax", header_name="x-csrftoken", exclude=NOT_PORTAL,
    )


def session_store(settings: Settings) -> Store:
    if settings.redis_url:
        # The outage-ready client (platform/availability.py): short timeouts, a quick retry on a connection
        # that died with a Redis restart. Without Redis a portal request answers 503 with Retry-After.
        return RedisStore(redis_client(settings.redis_url), namespace="backoffice:portal:sessions",
                          handle_client_shutdown=True)
    return FileStore(settings.data_dir / "portal-sessions", create_directories=True)


def platform_hosts(settings: Settings) -> set[str]:
    hosts = {"localhost", "127.0.0.1", settings.host}
    if settings.base_url:
        hosts.add((urlsplit(settings.base_url).hostname or "").lower())
    return hosts


def request_host(scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"host":
            return value.decode("latin-1").rsplit(":", 1)[0].strip().lower() if not value.startswith(b"[") else ""
    return ""


# --- Origin / Referer check (CSRF, second layer) ---------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NOT_PORTAL = re.compile("|".join(NOT_PORTAL))
Origin = tuple[str, str, int]


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL, default ports filled in; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def own_origins(scope: Scope, settings: Settings) -> set[Origin]:
    """Where this request was addressed: its Host with the scheme it arrived on (``X-Forwarded-Proto`` counts
    only from a trusted proxy, see ``web/clients.py``), or https when the platform is served over TLS
    (``BACKOFFICE_BASE_URL`` is https); and the platform's own public origin. The Host covers the platform
    host and every tenant's custom host alike; a browser making a forged request sets it to the target,
    which the attacker's page cannot change."""
    origins: set[Origin | None] = {_origin(settings.base_url)} if settings.base_url else set()
    host = _header(scope, b"host") or ""
    if host and not any(c in host for c in "/\\@?#"):
        schemes = {scope.get("scheme", "http")} | ({"https"} if secure_cookies(settings) else set())
        origins.update(_origin(f"{scheme}://{host}") for scheme in schemes)
    return {origin for origin in origins if origin is not None}


class SameOriginMiddleware:
    """Refuses (403) a state-changing portal request that a browser says came from another site.

    The rule, for every method but GET/HEAD/OPTIONS/TRACE on the portal's paths (everything but the
    bearer-authenticated API, webhook intake, probes and static files, which carry no browser session):
    - ``Origin`` present: it must be one of :func:`own_origins`. ``Origin: null`` (sandboxed frames,
      privacy-sensitive redirects) is not ours either, so it is refused.
    - no ``Origin`` but a ``Referer``: the Referer's origin must be one of ours.
    - neither: allowed, and logged. OWASP's CSRF cheat sheet ("Verifying origin with standard headers")
      recommends blocking such requests or else logging and monitoring them; the token stays required on
      every one of them, and the only clients that send neither are not browsers (every current browser
      sends Origin on a POST), so blocking would refuse scripts and older agents and protect no one.
    This is defence in depth behind the token, not a replacement: it stops a forged post even where a
    token leaked. It depends on the portal's ``Referrer-Policy: same-origin`` (``render.py``): under
    ``no-referrer`` a browser sends ``Origin: null`` on same-origin posts, which this would refuse.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and not _NOT_PORTAL.match(scope["path"]):
            origin, referer = _header(scope, b"origin"), _header(scope, b"referer")
            source = origin if origin is not None else referer
            if source is None:
                log.info("unsafe portal request without Origin or Referer: %s %s", scope["method"], scope["path"])
            elif _origin(source) not in own_origins(scope, self.settings):
                raise PermissionDeniedException(detail="Cross-origin request refused")
        await self.app(scope, receive, send)


def same_origin_middleware(settings: Settings) -> DefineMiddleware:
    return DefineMiddleware(SameOriginMiddleware, settings=settings)
