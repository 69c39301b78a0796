"""Serving a tenant's portal on its own host name (``Tenant.custom_host``) at ``/``.

Before routing, a request whose Host is a tenant's custom host has its path moved under the tenant's
slug (``/inbox`` -> ``/<slug>/inbox``), so one set of routes serves both addresses and every check the
path-based portal has (suspension, session binding, 404 for foreign ids) applies unchanged. Pages build
their links from :func:`backoffice.web.portal.render.base_path`, so on the custom host they stay at ``/``.
"""

from __future__ import annotations

import logging

from litestar import Litestar

from backoffice.tenants.registry.queries import tenant_slug_for_host
from backoffice.web.portal.sessions import platform_hosts, request_host

log = logging.getLogger(__name__)
HOST_KEY = "backoffice.host_tenant"
SKIP = ("/api/", "/hooks/", "/healthz", "/readyz", "/static/")


class TenantHostApp(Litestar):
    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        if scope["type"] == "http" and not scope["path"].startswith(SKIP):
            host = request_host(scope)
            if host and host not in platform_hosts(self.state.settings):
                slug = await self._slug_for(host)
                if slug is not None:
                    scope = dict(scope)
                    scope[HOST_KEY] = slug
                    scope["path"] = f"/{slug}{scope['path']}"
                    scope["raw_path"] = f"/{slug}".encode() + scope.get("raw_path", b"/")
        await super().__call__(scope, receive, send)

    async def _slug_for(self, host: str) -> str | None:
        database = getattr(self.state, "database", None)
        if database is None:
            return None
        try:
            async with database.anonymous() as session:
                return await tenant_slug_for_host(session, host)
        except Exception:
            # The request goes on by path; a database that is down answers there as the logged 500.
            log.exception("resolving the tenant of host %s failed", host)
            return None
