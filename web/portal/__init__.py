"""The tenant's branded front-office portal, at ``/<slug>/`` and on the tenant's own host name."""

from __future__ import annotations

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from markupsafe import escape

from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.web.errors import not_found, validation_failed
from backoffice.web.portal.admin import ADMIN_HANDLERS, NotAdmin, not_admin, provide_admin
from backoffice.web.portal.admin_keys import KEY_HANDLERS
from backoffice.web.portal.admin_webhooks import WEBHOOK_HANDLERS
from backoffice.web.portal.auth import AUTH_HANDLERS, LoginRequired, login_redirect, provide_user
from backoffice.web.portal.pages import PAGE_HANDLERS
from backoffice.web.portal.routines import ROUTINE_HANDLERS
from backoffice.web.portal.sso import SSO_HANDLERS
from backoffice.web.tenancy import provide_tenant, provide_tenant_session


def _page_error(status: int, title: str, lines: list[str]) -> Response:
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return Response(f"<!doctype html><html><head><meta charset='utf-8'><title>{status}</title>"
                    "<link rel='stylesheet' href='/static/portal.css'></head><body><main id='main'>"
                    f"<h1>{escape(title)}</h1><ul>{items}</ul>"
                    "</main></body></html>", status_code=status, media_type="text/html; charset=utf-8")


def portal_not_found(request: Request, exc: Exception) -> Response:
    """Pages get a page; the poll script and API-like callers keep the problem+json answer."""
    if "text/html" in request.headers.get("accept", ""):
        return _page_error(404, "404", ["Não encontrado. / Not found."])
    return not_found(request, exc)


def portal_invalid(request: Request, exc: ValidationFailed) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return _page_error(exc.status, str(exc.status), [f"{e.field}: {e.message}" for e in exc.errors])
    return validation_failed(request, exc)


portal_router = Router(
    path="/{tenant_slug:str}",
    route_handlers=[*AUTH_HANDLERS, *PAGE_HANDLERS, *ROUTINE_HANDLERS, *ADMIN_HANDLERS, *KEY_HANDLERS, *WEBHOOK_HANDLERS, *SSO_HANDLERS],
    dependencies={
        "tenant": Provide(provide_tenant),
        "db": Provide(provide_tenant_session),
        "user": Provide(provide_user),
        "admin": Provide(provide_admin),
    },
    exception_handlers={LoginRequired: login_redirect, NotAdmin: not_admin, NotFound: portal_not_found,
                        NotFoundException: portal_not_found, ValidationFailed: portal_invalid},
    include_in_schema=False,
)

__all__ = ["portal_router"]
