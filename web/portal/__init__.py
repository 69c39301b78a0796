"""The tenant's branded front-office portal, at ``/<slug>/`` and on the tenant's own host name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.di import Provide

from backoffice.web.portal.admin import ADMIN_HANDLERS, NotAdmin, not_admin, provide_admin
from backoffice.web.portal.admin_keys import KEY_HANDLERS
from backoffice.web.portal.admin_webhooks import WEBHOOK_HANDLERS
from backoffice.web.portal.auth import AUTH_HANDLERS, LoginRequired, login_redirect, provide_user
from backoffice.web.portal.pages import PAGE_HANDLERS
from backoffice.web.portal.sso import SSO_HANDLERS
from backoffice.web.tenancy import provide_tenant, provide_tenant_session

portal_router = Router(
    path="/{tenant_slug:str}",
    route_handlers=[*AUTH_HANDLERS, *PAGE_HANDLERS, *ADMIN_HANDLERS, *KEY_HANDLERS, *WEBHOOK_HANDLERS, *SSO_HANDLERS],
    dependencies={
        "tenant": Provide(provide_tenant),
        "db": Provide(provide_tenant_session),
        "user": Provide(provide_user),
        "admin": Provide(provide_admin),
    },
    exception_handlers={LoginRequired: login_redirect, NotAdmin: not_admin},
    include_in_schema=False,
)

__all__ = ["portal_lifespan", "portal_router"]


@asynccontextmanager
async def portal_lifespan(app: Litestar) -> AsyncIterator[None]:
    try:
        yield
    finally:
        limiters = getattr(app.state, "portal_limiters", None)
        if limiters is not None:
            await limiters.account.close()
            await limiters.address.close()
