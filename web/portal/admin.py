"""Tenant admin pages: users and roles, branding with a preview, notification preferences, API keys.

Only the tenant's admins reach them (a member gets a 403 page: it is their own company, nothing leaks).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.policies.schemas import NOTIFICATION_KINDS
from backoffice.tenants.policies.service import current_policy, update_policy
from backoffice.tenants.registry.branding import COLOUR_KEYS, LOGO_MAX_BYTES, validate_colours
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import update_branding
from backoffice.tenants.users.models import TenantRole
from backoffice.tenants.users.service import (
    change_tenant_user_role, create_tenant_user, list_tenant_users, set_tenant_user_active,
)
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.pages import _uuid
from backoffice.web.portal.refusals import readable_errors
from backoffice.web.portal.render import base_path, page, pick_locale, translations

CHANNELS = ("portal", "email", "chat")


class NotAdmin(PermissionError):
    pass


async def provide_admin(user: PortalUser) -> PortalUser:
    if not user.is_admin:
        raise NotAdmin()
    return user


def not_admin(request: Request, exc: NotAdmin) -> Response:
    return Response("<!doctype html><html><meta charset='utf-8'><title>403</title><main><h1>403</h1>"
                    "<p>Only the company's admins manage this. / Apenas administradores da empresa.</p></main></html>",
                    status_code=403, media_type="text/html")


def _back(request: Request, tenant: Tenant, path: str) -> Redirect:
    return Redirect(f"{base_path(request, tenant)}{path}", status_code=303)


async def _users_page(request, tenant, admin, db, *, status_code=200, errors=None, form=None) -> Response:
    _ = translations(pick_locale(request, tenant)).gettext
    labels = {"email": _("E-mail"), "name": _("Name"), "role": _("Role"), "password": _("Password"),
              "active": _("Status")}
    return page(request, tenant, "portal/admin/users.html", status_code=status_code, user=admin,
                users=await list_tenant_users(db), roles=[r.value for r in TenantRole],
                errors=readable_errors(errors or [], _, labels),
                form=form or {}, section="admin")


@get("/admin/users", name="portal:admin_users")
async def users(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    return await _users_page(request, tenant, admin, db)


@post("/admin/users", name="portal:admin_user_create")
async def user_create(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, data: Form) -> Response:
    password = str(data.get("password") or "") or None
    try:
        await create_tenant_user(db, email=str(data.get("email", "")), name=str(data.get("name", "")),
                                 role=str(data.get("role", "")), password=password, acting=admin.actor)
    except ValidationFailed as error:
        return await _users_page(request, tenant, admin, db, status_code=error.status, errors=error.errors,
                                 form={k: v for k, v in data.items() if k != "password"})
    return _back(request, tenant, "/admin/users")


@post("/admin/users/{user_id:str}/role", name="portal:admin_user_role")
async def user_role(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, user_id: str,
                    data: Form) -> Response:
    try:
        await change_tenant_user_role(db, _uuid(user_id), role=str(data.get("role", "")), acting=admin.actor)
    except ValidationFailed as error:
        return await _users_page(request, tenant, admin, db, status_code=error.status, errors=error.errors)
    return _back(request, tenant, "/admin/users")


@post("/admin/users/{user_id:str}/active", name="portal:admin_user_active")
async def user_active(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, user_id: str,
                      data: Form) -> Response:
    try:
        await set_tenant_user_active(db, _uuid(user_id), active=data.get("active") == "1", acting=admin.actor)
    except ValidationFailed as error:
        return await _users_page(request, tenant, admin, db, status_code=error.status, errors=error.errors)
    return _back(request, tenant, "/admin/users")


def _proposed(values: dict[str, Any]) -> tuple[dict[str, str] | None, list[FieldError]]:
    colours = {key: str(values[key]).strip() for key in COLOUR_KEYS if values.get(key)}
    problems = []
    for key, value in colours.items():
        try:
            validate_colours({key: value})
        except ValueError as error:
            problems.append(FieldError(key, str(error)))
    return (None if problems else validate_colours(colours)), problems


def _branding_page(request: Request, tenant: Tenant, admin: PortalUser, *, errors: list[FieldError], form: dict,
                   preview: dict[str, str] | None = None) -> Response:
    _ = translations(pick_locale(request, tenant)).gettext
    labels = {"primary": _("Primary colour"), "secondary": _("Secondary colour"), "background": _("Background"),
              "text": _("Text"), "logo": _("Logo")}
    return page(request, tenant, "portal/admin/branding.html", status_code=422 if errors else 200, user=admin,
                preview=preview, errors=readable_errors(errors, _, labels), invalid={e.field for e in errors},
                form=form, keys=COLOUR_KEYS, max_kib=LOGO_MAX_BYTES // 1024, section="admin")


@get("/admin/branding", name="portal:admin_branding")
async def branding(request: Request, tenant: Tenant, admin: PortalUser) -> Response:
    """With colours in the query (the form's Preview button), show them without saving anything."""
    asked = {key: request.query_params.get(key) for key in COLOUR_KEYS if request.query_params.get(key)}
    preview, errors = _proposed(asked) if asked else (None, [])
    return _branding_page(request, tenant, admin, errors=errors, form=asked, preview=preview)


@post("/admin/branding", name="portal:admin_branding_save")
async def branding_save(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, data: Form) -> Response:
    colours = {key: str(data.get(key, "")).strip() for key in COLOUR_KEYS}
    try:
        await update_branding(db, tenant.id, colours=colours, acting=admin.actor)
    except ValidationFailed as error:
        return _branding_page(request, tenant, admin, errors=error.errors, form=colours)
    return _back(request, tenant, "/admin/branding")


@post("/admin/branding/logo", name="portal:admin_logo", request_max_body_size=LOGO_MAX_BYTES + 64 * 1024)
async def logo_upload(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    upload = (await request.form()).get("logo")
    content = await upload.read() if isinstance(upload, UploadFile) else b""
    try:
        if not content:
            raise ValidationFailed(FieldError("logo", "expected a PNG, JPEG or WebP image"))
        await update_branding(db, tenant.id, logo=content, acting=admin.actor)
    except ValidationFailed as error:
        return _branding_page(request, tenant, admin, errors=error.errors, form={})
    return _back(request, tenant, "/admin/branding")


@get("/admin/notifications", name="portal:admin_notifications")
async def preferences(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession) -> Response:
    version, policy = await current_policy(db)
    return page(request, tenant, "portal/admin/notifications.html", user=admin, channels=policy.channels,
                kinds=NOTIFICATION_KINDS, all_channels=CHANNELS, version=version, errors=[], section="admin")


@post("/admin/notifications", name="portal:admin_notifications_save")
async def preferences_save(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession,
                           data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
    chosen = {kind: [c for c in CHANNELS if data.get(f"{kind}:{c}") == "on"] for kind in NOTIFICATION_KINDS}
    try:
        await update_policy(db, changes={"channels": chosen}, acting=admin.actor,
                            reason=str(data.get("reason") or "notification preferences (portal)"))
    except ValidationFailed as error:
        version, policy = await current_policy(db)
        return page(request, tenant, "portal/admin/notifications.html", status_code=error.status, user=admin,
                    channels=chosen, kinds=NOTIFICATION_KINDS, all_channels=CHANNELS, version=version,
                    errors=error.errors, section="admin")
    return _back(request, tenant, "/admin/notifications")


ADMIN_HANDLERS = [users, user_create, user_role, user_active, branding, branding_save, logo_upload, preferences,
                  preferences_save]
