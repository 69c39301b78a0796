"""Server-side portal sessions bound to a tenant, the per-tenant host name, and log-in rate limits.

The cookie holds only a random id. The store key is ``<tenant slug>:<id>``, so the same cookie presented
on another tenant's portal finds nothing there (and the session also records its tenant id, which every
portal page checks). The id is replaced at log-in and log-out (no fixation). Redis holds sessions and
rate-limit counters when ``BACKOFFICE_REDIS_URL`` is set; the embedded mode keeps sessions in files under
the data dir and counters in memory (one process).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

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
        secure=secure_cookies(settings), exclude=NOT_PORTAL, renew_on_access=True,
    )


def csrf_config(settings: Settings) -> CSRFConfig:
    return CSRFConfig(
        secret=settings.effective_secret_key(), cookie_name=CSRF_COOKIE, cookie_secure=secure_cookies(settings),
        cookie_httponly=True, cookie_samesite="lax", header_name="x-csrftoken", exclude=NOT_PORTAL,
    )


def session_store(settings: Settings) -> Store:
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url, namespace="backoffice:portal:sessions")
    return FileStore(settings.data_dir / "portal-sessions", create_directories=True)


class RateLimiter:
    """Fixed-window counters: ``hit(key)`` counts an attempt and says whether it is still allowed."""

    def __init__(self, settings: Settings, *, limit: int, window: int, name: str) -> None:
        self.limit, self.window, self.name = limit, window, name
        self._redis = None
        if settings.redis_url:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(settings.redis_url)
        self._memory: dict[str, tuple[float, int]] = {}

    def _key(self, key: str) -> str:
        return f"backoffice:ratelimit:{self.name}:{key}"

    async def count(self, key: str) -> int:
        if self._redis is not None:
            value = await self._redis.get(self._key(key))
            return int(value or 0)
        started, count = self._memory.get(key, (0.0, 0))
        return count if time.monotonic() - started < self.window else 0

    async def hit(self, key: str) -> bool:
        if self._redis is not None:
            full = self._key(key)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                pipe.expire(full, self.window, nx=True)
                count, _ = await pipe.execute()
            return int(count) <= self.limit
        now = time.monotonic()
        started, count = self._memory.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._memory[key] = (started, count + 1)
        return count + 1 <= self.limit

    async def allowed(self, key: str) -> bool:
        return await self.count(key) < self.limit

    async def reset(self, key: str) -> None:
        if self._redis is not None:
            await self._redis.delete(self._key(key))
        else:
            self._memory.pop(key, None)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


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
