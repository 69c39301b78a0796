"""The person's own notification preferences: per kind, portal and/or e-mail on top of the company's
policy; the daily digest and its language. Thin: the form is read here, the choices are kept by
tenants/notifications/preferences.py (audited) and read through tenants/notifications/queries.py."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.notifications import queries
from backoffice.tenants.notifications.preferences import PERSONAL_CHANNELS, choices, save_preferences
from backoffice.tenants.notifications.service import unread_count
from backoffice.tenants.policies.schemas import LOCALES, NOTIFICATION_KINDS
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.render import base_path, page, pick_locale

FIXED_FIELDS = {"_csrf_token", "digest", "locale"}


async def _page(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, *, status_code: int = 200,
                errors: list[FieldError] | None = None, saved: bool = False) -> Response:
    _version, policy = await current_policy(db)
    preference = await queries.preference_of(db, user.id)
    return page(request, tenant, "portal/preferences.html", status_code=status_code, user=user,
                choices=choices(policy.channels, preference), channels=PERSONAL_CHANNELS,
                digest=bool(preference and preference.digest),
                digest_locale=(preference.locale if preference and preference.locale else pick_locale(request, tenant)),
                locales=LOCALES, errors=errors or [], saved=saved, section="preferences",
                unread=await unread_count(db, user.id))


@get("/preferences", name="portal:preferences")
async def preferences(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession,
                      saved: bool = False) -> Response:
    return await _page(request, tenant, user, db, saved=saved)


def _parse(data: dict) -> tuple[dict[str, list[str]], list[FieldError]]:
    """Checkboxes named ``<kind>:<channel>``; any other name is refused by name."""
    channels: dict[str, list[str]] = {kind: [] for kind in NOTIFICATION_KINDS}
    problems = []
    for name in data:
        if name in FIXED_FIELDS:
            continue
        kind, _, channel = str(name).partition(":")
        if kind not in NOTIFICATION_KINDS or channel not in PERSONAL_CHANNELS:
            problems.append(FieldError(str(name)[:100], "not a notification kind and channel of this page"))
            continue
        channels[kind].append(channel)
    return channels, problems


@post("/preferences", name="portal:preferences_save")
async def preferences_save(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, data: Form) -> Response:
    channels, problems = _parse(data)
    digest = data.get("digest") in ("1", "on")
    locale = str(data.get("locale") or "") or None
    try:
        if problems:
            raise ValidationFailed(problems)
        _version, policy = await current_policy(db)
        await save_preferences(db, tenant.id, user.id, channels=channels, policy_channels=policy.channels,
                               digest=digest, locale=locale, acting=user.actor)
    except ValidationFailed as error:
        return await _page(request, tenant, user, db, status_code=error.status, errors=error.errors)
    return Redirect(f"{base_path(request, tenant)}/preferences?saved=1", status_code=303)


PREFERENCE_HANDLERS = [preferences, preferences_save]
