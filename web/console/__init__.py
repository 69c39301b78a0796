"""The provider's staff console, at ``/staff/``: one Litestar router built from the console's modules.

Every module exposes ``ROUTES = [...]`` (handlers or controllers, paths relative to ``/staff``). To add a
module, import it below and add it to ``MODULES``, one line each. The router gives every handler:
- ``staff``: the signed-in staff member (``session.py``); a page without one redirects to sign-in;
- ``console_tenant``: for a route with a ``tenant_id: UUID`` path parameter, the tenant if this staff member
  may act on it, else the same 404 as a missing tenant (``door.py``);
- the staff session (cookie ``bo_staff``), the portal's CSRF token check and Origin check (app-wide).
Pages render with ``render.render(request, "console/<page>.html", ...)``.
"""

from __future__ import annotations

from litestar import Request, Response, Router, get
from litestar.di import Provide
from litestar.exceptions import NotFoundException

from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.settings import Settings
from backoffice.web.console import overview, signin, sso
from backoffice.web.console import audit_log, feedback, people
from backoffice.web.console import tenant_work
from backoffice.web.console import live
from backoffice.web.console import agreements
from backoffice.web.console import onboarding, tenant_settings
from backoffice.web.console.door import provide_console_tenant
from backoffice.web.console.render import render
from backoffice.web.console.session import (
    StaffLoginRequired, StaffUser, login_redirect, provide_staff, staff_session_config,
)
from backoffice.web.errors import not_found, validation_failed

# One entry per console module (each has ROUTES). Add yours here: `from backoffice.web.console import x`
# above, then `x,` in this list.
MODULES = [
    signin,
    sso,
    overview,
    people,
    feedback,
    audit_log,
    tenant_work,
    live,
    onboarding,
    tenant_settings,
    agreements,
]


def console_not_found(request: Request, exc: Exception) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "console/error.html", status_code=404, status=404)
    return not_found(request, exc)


def console_invalid(request: Request, exc: ValidationFailed) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "console/error.html", status_code=exc.status, status=exc.status, errors=exc.errors)
    return validation_failed(request, exc)


@get("/{rest:path}", name="console:unknown_page")
async def unknown_page(rest: str, staff: StaffUser) -> Response:
    """Any other address under /staff: signed out, the sign-in like every console page; signed in, the console's
    own "not found" in the staff member's language (the app-wide error page never sees the console's session)."""
    raise NotFoundException(f"no page {rest!r} in the console")


def build_console_router(settings: Settings) -> Router:
    return Router(
        path="/staff",
        route_handlers=[*(handler for module in MODULES for handler in module.ROUTES), unknown_page],
        dependencies={"staff": Provide(provide_staff), "console_tenant": Provide(provide_console_tenant)},
        middleware=[staff_session_config(settings).middleware],
        exception_handlers={StaffLoginRequired: login_redirect, NotFound: console_not_found,
                            NotFoundException: console_not_found, ValidationFailed: console_invalid},
        include_in_schema=False,
    )


__all__ = ["MODULES", "build_console_router"]
