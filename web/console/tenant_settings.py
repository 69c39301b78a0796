"""A company's settings after onboarding, at ``/staff/tenants/<tenant_id>/settings``: everything the staff API
and the CLI can change about it: time zone, locale, API key lifetime and rate, the custom host (requested,
verified by DNS TXT, removed), status (suspend or reactivate with a reason) and branding colours.

Each form is one service call that writes its audit entry (who, what, before and after) in the same
transaction: ``tenants/registry/settings.py`` and ``tenants/registry/service.py``, the functions the staff API
and the CLI call. The route passes the console's door (``console_tenant``): an operator not assigned to the
company gets the 404 of a missing one. Bad input re-renders the page with the message next to its field.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect

from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.registry.branding import COLOUR_KEYS, DEFAULT_BRANDING
from backoffice.tenants.registry.models import Tenant, TenantStatus
from backoffice.tenants.registry.service import LOCALES, reactivate_tenant, suspend_tenant, update_branding
from backoffice.tenants.registry.settings import (
    change_settings, get_tenant, remove_custom_host, request_custom_host, verification_record, verify_custom_host,
)
from backoffice.web.console.onboarding import ZONES, field_errors
from backoffice.web.console.render import gettext_for, render
from backoffice.web.console.session import StaffUser

PATH = "/staff/tenants/{tenant_id}/settings"


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _page(request: Request, tenant: Tenant, *, status_code: int = 200, errors: dict[str, dict[str, str]] | None = None,
          form: dict[str, Any] | None = None, saved: str | None = None) -> Response:
    _ = gettext_for(request)
    notices = {"settings": _("Settings saved."), "host": _("Host requested: publish the TXT record, then verify."),
               "verified": _("Host verified: the portal answers on it."), "removed": _("Custom host removed."),
               "status": _("Status changed."), "branding": _("Branding saved.")}
    return render(request, "console/tenant_settings.html", status_code=status_code, tenant=tenant,
                  base=PATH.format(tenant_id=tenant.id), errors=errors or {}, form=form or {},
                  proof=verification_record(tenant), zones=ZONES, locales=LOCALES,
                  colours={**DEFAULT_BRANDING, **(tenant.branding or {})}, keys=COLOUR_KEYS,
                  suspended=tenant.status == TenantStatus.SUSPENDED, notice=notices.get(saved or ""))


def _done(tenant_id: uuid.UUID, what: str) -> Response:
    return Redirect(f"{PATH.format(tenant_id=tenant_id)}?saved={what}", status_code=303)


async def _refused(request: Request, state: State, tenant_id: uuid.UUID, section: str, error: ValidationFailed,
                   form: dict[str, Any]) -> Response:
    async with state.database.system() as session:
        tenant = await get_tenant(session, tenant_id)
    return _page(request, tenant, status_code=error.status, errors={section: field_errors(request, error)},
                 form={section: form})


async def _form(request: Request) -> dict[str, Any]:
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


@get("/tenants/{tenant_id:uuid}/settings", name="console:tenant_settings")
async def settings_page(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant,
                        saved: str | None = None) -> Response:
    return _page(request, console_tenant, saved=saved)


@post("/tenants/{tenant_id:uuid}/settings", name="console:tenant_settings_save")
async def settings_save(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                        state: State) -> Response:
    form = await _form(request)
    changes = {name: _text(form, name) for name in ("timezone", "locale", "api_key_max_days",
                                                    "api_rate_limit_per_minute") if name in form}
    try:
        async with state.database.system() as session:
            await change_settings(session, tenant_id, changes, acting=staff.actor, reason=_text(form, "reason") or None)
    except ValidationFailed as error:
        return await _refused(request, state, tenant_id, "settings", error, form)
    return _done(tenant_id, "settings")


@post("/tenants/{tenant_id:uuid}/settings/host", name="console:tenant_settings_host")
async def host_request(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                       state: State) -> Response:
    form = await _form(request)
    try:
        async with state.database.system() as session:
            await request_custom_host(session, tenant_id, _text(form, "custom_host"), settings=state.settings,
                                      acting=staff.actor, reason=_text(form, "reason") or None)
    except ValidationFailed as error:
        return await _refused(request, state, tenant_id, "host", error, form)
    return _done(tenant_id, "host")


@post("/tenants/{tenant_id:uuid}/settings/host/verify", name="console:tenant_settings_host_verify")
async def host_verify(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                      state: State) -> Response:
    try:
        async with state.database.system() as session:
            await verify_custom_host(session, tenant_id, settings=state.settings, acting=staff.actor)
    except ValidationFailed as error:
        return await _refused(request, state, tenant_id, "host", error, {})
    return _done(tenant_id, "verified")


@post("/tenants/{tenant_id:uuid}/settings/host/remove", name="console:tenant_settings_host_remove")
async def host_remove(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                      state: State) -> Response:
    form = await _form(request)
    async with state.database.system() as session:
        await remove_custom_host(session, tenant_id, acting=staff.actor, reason=_text(form, "reason") or None)
    return _done(tenant_id, "removed")


@post("/tenants/{tenant_id:uuid}/settings/status", name="console:tenant_settings_status")
async def status(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                 state: State) -> Response:
    """Suspend (a reason is required: kept in the audit log) or reactivate, as the staff API and CLI do."""
    form = await _form(request)
    reason = _text(form, "reason")
    try:
        async with state.database.system() as session:
            tenant = await get_tenant(session, tenant_id)
            if _text(form, "action") == "suspend":
                await suspend_tenant(session, tenant, reason=reason, acting=staff.actor)
            else:
                await reactivate_tenant(session, tenant, reason=reason or None, acting=staff.actor)
    except ValidationFailed as error:
        return await _refused(request, state, tenant_id, "status", error, form)
    return _done(tenant_id, "status")


@post("/tenants/{tenant_id:uuid}/settings/branding", name="console:tenant_settings_branding")
async def branding(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                   state: State) -> Response:
    form = await _form(request)
    colours = {key: _text(form, key) for key in COLOUR_KEYS if _text(form, key)}
    try:
        async with state.database.system() as session:
            await update_branding(session, tenant_id, colours=colours, acting=staff.actor)
    except ValidationFailed as error:
        return await _refused(request, state, tenant_id, "branding", error, form)
    return _done(tenant_id, "branding")


ROUTES = [settings_page, settings_save, host_request, host_verify, host_remove, status, branding]
