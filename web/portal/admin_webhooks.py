"""Tenant admins manage their webhook endpoints here: register (the signing secret shown once), disable
with a reason, enable again. The service (``tenants/webhooks``) checks the URL and audits each change."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.events.catalogue import EVENT_TYPES
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.webhooks.service import create_endpoint, disable_endpoint, enable_endpoint, list_endpoints
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.pages import _uuid
from backoffice.web.portal.refusals import readable_errors
from backoffice.web.portal.render import base_path, page, pick_locale, translations


def _refused(request: Request, tenant: Tenant, error: ValidationFailed) -> list:
    _ = translations(pick_locale(request, tenant)).gettext
    return readable_errors(error.errors, _, {"url": "URL", "description": _("Description"), "event_types": _("Events"),
                                             "reason": _("Why")})


async def _hooks_page(request, tenant, admin, db, *, status_code=200, errors=None, created=None, form=None):
    return page(request, tenant, "portal/admin/webhooks.html", status_code=status_code, user=admin,
                endpoints=await list_endpoints(db), event_types=sorted(EVENT_TYPES), errors=errors or [],
                created=created, form=form or {}, section="admin")


@get("/admin/webhooks", name="portal:admin_webhooks")
async def webhooks(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    return await _hooks_page(request, tenant, admin, db)


@post("/admin/webhooks", name="portal:admin_webhook_create")
async def webhook_create(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, state: State) -> Response:
    form = await request.form()
    types = [str(value) for value in form.getall("event_types", [])]
    try:
        endpoint, secret = await create_endpoint(db, url=str(form.get("url", "")), event_types=types,
                                                 description=str(form.get("description", "")) or None,
                                                 acting=admin.actor, settings=state.settings)
    except ValidationFailed as error:
        return await _hooks_page(request, tenant, admin, db, status_code=error.status,
                                 errors=_refused(request, tenant, error),
                                 form={"url": form.get("url", ""), "event_types": types,
                                       "description": form.get("description", "")})
    return await _hooks_page(request, tenant, admin, db, status_code=201, created=(endpoint, secret))


@post("/admin/webhooks/{endpoint_id:str}/disable", name="portal:admin_webhook_disable")
async def webhook_disable(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, endpoint_id: str,
                          data: Form) -> Response:
    try:
        await disable_endpoint(db, _uuid(endpoint_id), reason=str(data.get("reason", "")), acting=admin.actor)
    except ValidationFailed as error:
        return await _hooks_page(request, tenant, admin, db, status_code=error.status,
                                 errors=_refused(request, tenant, error))
    return Redirect(f"{base_path(request, tenant)}/admin/webhooks", status_code=303)


@post("/admin/webhooks/{endpoint_id:str}/enable", name="portal:admin_webhook_enable")
async def webhook_enable(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession,
                         endpoint_id: str) -> Response:
    await enable_endpoint(db, _uuid(endpoint_id), acting=admin.actor)
    return Redirect(f"{base_path(request, tenant)}/admin/webhooks", status_code=303)


WEBHOOK_HANDLERS = [webhooks, webhook_create, webhook_disable, webhook_enable]
