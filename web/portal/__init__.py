"""The tenant's branded front-office portal, at ``/<slug>/`` and on the tenant's own host name."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from backoffice.web.portal.admin import ADMIN_HANDLERS, NotAdmin, not_admin, provide_admin
from backoffice.web.portal.admin_keys import KEY_HANDLERS
from backoffice.web.portal.agreements import AGREEMENT_HANDLERS
from backoffice.web.portal.admin_webhooks import WEBHOOK_HANDLERS
from backoffice.web.portal.auth import AUTH_HANDLERS, LoginRequired, login_redirect, provide_user
from backoffice.web.portal.demo_mailbox import DEMO_HANDLERS
from backoffice.web.portal.live import LIVE_HANDLERS
from backoffice.web.portal.preferences import PREFERENCE_HANDLERS
from backoffice.web.portal.pages import PAGE_HANDLERS
from backoffice.web.portal.routines import ROUTINE_HANDLERS
from backoffice.web.portal.sso import SSO_HANDLERS
from backoffice.web.tenancy import provide_tenant, provide_tenant_session


portal_router = Router(
    path="/{tenant_slug:str}",
    route_handlers=[*AUTH_HANDLERS, *PAGE_HANDLERS, *ROUTINE_HANDLERS, *ADMIN_HANDLERS, *KEY_HANDLERS, *WEBHOOK_HANDLERS, *SSO_HANDLERS,
                    *DEMO_HANDLERS, *LIVE_HANDLERS, *PREFERENCE_HANDLERS, *AGREEMENT_HANDLERS],
    dependencies={
        "tenant": Provide(provide_tenant),
        "db": Provide(provide_tenant_session),
        "user": Provide(provide_user),
        "admin": Provide(provide_admin),
    },
    # Not found and refused input are the app's handlers (web/errors.py): a page for a browser, problem+json
    # for the poll script and other callers.
    exception_handlers={LoginRequired: login_redirect, NotAdmin: not_admin},
    include_in_schema=False,
)

__all__ = ["portal_router"]
