"""Tenant admins manage their API keys here: create (the secret shown once), list, revoke."""

from __future__ import annotations


from litestar import Request, Response, get, post
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.apikeys.service import ALL_SCOPES, create_api_key, list_api_keys, revoke_api_key, usable
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.auth import PortalUser
from backoffice.web.portal.pages import _uuid
from backoffice.web.portal.refusals import readable_errors
from backoffice.web.portal.render import base_path, page, pick_locale, translations



async def _keys_page(request, tenant, admin, db, *, status_code=200, errors=None, created=None, form=None):
    now = clock.now()
    keys = await list_api_keys(db)
    return page(request, tenant, "portal/admin/keys.html", status_code=status_code, user=admin,
                keys=[(key, usable(key, now)) for key in keys], scopes=ALL_SCOPES, errors=errors or [],
                created=created, form=form or {}, section="admin")


@get("/admin/api-keys", name="portal:admin_keys")
async def keys(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    return await _keys_page(request, tenant, admin, db)


@post("/admin/api-keys", name="portal:admin_key_create")
async def key_create(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    form = await request.form()
    scopes = [str(value) for value in form.getall("scopes", [])] if hasattr(form, "getall") else []
    days = str(form.get("expires_days") or "").strip()
    try:
        try:
            expires_days = int(days) if days else None
        except ValueError:
            from backoffice.platform.errors import FieldError

            raise ValidationFailed(FieldError("expires_days", "expected a whole number of days")) from None
        new = await create_api_key(db, name=str(form.get("name", "")), scopes=scopes,
                                   mode=str(form.get("mode") or "live"), expires_days=expires_days, acting=admin.actor)
    except ValidationFailed as error:
        _ = translations(pick_locale(request, tenant)).gettext
        labels = {"name": _("Name"), "expires_days": _("Expires in (days)"), "scopes": _("Scopes"), "mode": _("Mode")}
        return await _keys_page(request, tenant, admin, db, status_code=error.status,
                                errors=readable_errors(error.errors, _, labels),
                                form={"name": form.get("name", ""), "scopes": scopes, "expires_days": days})
    # Shown once, on this page only: never stored, never in a redirect URL.
    return await _keys_page(request, tenant, admin, db, status_code=201, created=new)


@post("/admin/api-keys/{key_id:str}/revoke", name="portal:admin_key_revoke")
async def key_revoke(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, key_id: str) -> Response:
    await revoke_api_key(db, _uuid(key_id), acting=admin.actor, reason="revoked in the portal")
    return Redirect(f"{base_path(request, tenant)}/admin/api-keys", status_code=303)


KEY_HANDLERS = [keys, key_create, key_revoke]
