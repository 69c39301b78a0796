"""Log-in, log-out and password reset for the portal, and the guard every other portal page uses.

A session belongs to one tenant: its store key carries the tenant (see ``sessions.py``) and its data the
tenant id and user id, checked on every page against the tenant the address names. Anything else is
treated as no session: a redirect to this tenant's log-in page, never another tenant's data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.ratelimit import LOG_IN, RESET_REQUEST, forget_account, gate
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantRole
from backoffice.tenants.users.queries import active_user
from backoffice.tenants.users.service import log_in_with_password
from backoffice.tenants.users.resets import request_password_reset, reset_password, valid_reset
from backoffice.web.clients import client_address
from backoffice.web.portal.refusals import readable
from backoffice.web.portal.render import base_path, page, translations, pick_locale
from backoffice.web.portal.sessions import ROTATE

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class LoginRequired(Exception):
    """No valid session of this tenant: go to its log-in page."""


@dataclass(frozen=True)
class PortalUser:
    id: uuid.UUID
    email: str
    name: str
    role: TenantRole

    @property
    def is_admin(self) -> bool:
        return self.role == TenantRole.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(type="tenant_user", label=self.email, id=str(self.id))


async def provide_user(request: Request, tenant: Tenant, db: AsyncSession) -> PortalUser:
    data = request.session if request.scope.get("session") else {}
    if not data or data.get("tenant_id") != str(tenant.id) or not data.get("user_id"):
        raise LoginRequired()
    user = await active_user(db, uuid.UUID(data["user_id"]))
    if user is None:
        request.clear_session()
        raise LoginRequired()
    return PortalUser(user.id, user.email, user.name, user.role)


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    slug = request.path_params.get("tenant_slug", "")
    base = "" if request.scope.get("backoffice.host_tenant") == slug else f"/{slug}"
    target = request.url.path.removeprefix(f"/{slug}") if slug else request.url.path
    return Redirect(f"{base}/login?next={quote(target or '/')}", status_code=303)


def _safe_next(value: str | None) -> str:
    # Only a path of this portal: never an absolute URL or a scheme-relative one (open redirect).
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def _sso_offered(db: AsyncSession) -> bool:
    from backoffice.tenants.users.oidc import get_oidc_settings

    config = await get_oidc_settings(db)
    return bool(config and config.enabled)


@get("/", name="portal:home")
async def portal_home(request: Request, tenant: Tenant, db: AsyncSession) -> Response:
    data = request.session if request.scope.get("session") else {}
    if data.get("tenant_id") == str(tenant.id) and data.get("user_id"):
        return Redirect(f"{base_path(request, tenant)}/dashboard", status_code=303)
    return page(request, tenant, "portal/login.html", next="/", sso=await _sso_offered(db))


@get("/login", name="portal:login")
async def login_form(request: Request, tenant: Tenant, db: AsyncSession, next: str | None = None) -> Response:
    return page(request, tenant, "portal/login.html", next=_safe_next(next), sso=await _sso_offered(db))


@post("/login", name="portal:login_submit")
async def login_submit(request: Request, tenant: Tenant, db: AsyncSession, state: State, data: Form) -> Response:
    _ = translations(pick_locale(request, tenant)).gettext
    email = str(data.get("email", "")).strip().lower()
    password = str(data.get("password", ""))
    target = _safe_next(str(data.get("next") or "/"))
    # Counted before the password is checked, so parallel guesses cannot outrun the count (ratelimit.py).
    # Fails closed: with Redis away the throttle cannot count, and an uncounted log-in is a free password
    # guess, so the error answers 503 with Retry-After (web/errors.py) instead of trying the password.
    attempt = await gate(state.rate_limiter, str(tenant.id), "login", account=email,
                         address=client_address(request), limits=LOG_IN)
    if not attempt.allowed:
        refused = page(request, tenant, "portal/login.html", status_code=429, email=email, next=target,
                       error=_("Too many attempts. Wait 15 minutes and try again, or reset your password."))
        refused.headers["Retry-After"] = str(attempt.retry_after)
        return refused
    user = await log_in_with_password(db, email=email, password=password, address=client_address(request))
    if user is None:
        return page(request, tenant, "portal/login.html", status_code=400, email=email, next=target,
                    error=_("E-mail or password is not correct."), field="password")
    await attempt.succeeded()
    before = request.session if request.scope.get("session") else {}
    kept = {"locale": before["locale"]} if before.get("tenant_id") == str(tenant.id) and "locale" in before else {}
    request.set_session({"tenant_id": str(tenant.id), "user_id": str(user.id), **kept, ROTATE: True})
    return Redirect(f"{base_path(request, tenant)}{target if target != '/' else '/dashboard'}", status_code=303)


@post("/logout", name="portal:logout")
async def logout(request: Request, tenant: Tenant) -> Response:
    request.clear_session()
    return Redirect(f"{base_path(request, tenant)}/login", status_code=303)


@get("/password/forgot", name="portal:forgot")
async def forgot_form(request: Request, tenant: Tenant) -> Response:
    return page(request, tenant, "portal/forgot.html")


@post("/password/forgot", name="portal:forgot_submit")
async def forgot_submit(request: Request, tenant: Tenant, db: AsyncSession, state: State, data: Form) -> Response:
    email = str(data.get("email", ""))
    # The same answer whether or not the address has an account, and whether or not the limit (which keeps
    # the form from mail-bombing one mailbox, or many from one address) held the mail back.
    attempt = await gate(state.rate_limiter, str(tenant.id), "reset", account=email,
                         address=client_address(request), limits=RESET_REQUEST)
    if attempt.allowed:
        base_url = state.settings.base_url or str(request.base_url).rstrip("/")
        prefix = base_path(request, tenant)
        await request_password_reset(
            db, email=email, tenant_name=tenant.display_name,
            link_for=lambda token: f"{base_url}{prefix}/password/reset/{token}",
            acting=Actor(type="anonymous", label=f"password reset form ({client_address(request)})"),
        )
    return page(request, tenant, "portal/forgot.html", sent=True, demo=state.settings.environment == "demo")


@get("/password/reset/{token:str}", name="portal:reset")
async def reset_form(request: Request, tenant: Tenant, db: AsyncSession, token: str) -> Response:
    valid = await valid_reset(db, token) is not None
    return page(request, tenant, "portal/reset.html", token=token, invalid=not valid,
                status_code=200 if valid else 410)


@post("/password/reset/{token:str}", name="portal:reset_submit")
async def reset_submit(request: Request, tenant: Tenant, db: AsyncSession, state: State, token: str,
                       data: Form) -> Response:
    password = str(data.get("password", ""))
    if password != str(data.get("password_confirm", "")):
        _ = translations(pick_locale(request, tenant)).gettext
        return page(request, tenant, "portal/reset.html", token=token, status_code=400, field="password_confirm",
                    error=_("The two passwords differ."))
    try:
        user = await reset_password(db, token=token, password=password)
    except ValidationFailed as error:
        first = error.errors[0]
        _ = translations(pick_locale(request, tenant)).gettext
        return page(request, tenant, "portal/reset.html", token=token, invalid=first.field == "token",
                    status_code=410 if first.field == "token" else 400, field=first.field,
                    error=readable(first.message, _))
    # Whoever owns the mailbox set a new password: failures against the old one no longer hold the account.
    await forget_account(state.rate_limiter, str(tenant.id), "login", user.email)
    request.clear_session()
    return Redirect(f"{base_path(request, tenant)}/login?reset=1", status_code=303)


@post("/locale", name="portal:locale")
async def choose_locale(request: Request, tenant: Tenant, data: Form) -> Response:
    chosen = str(data.get("locale", ""))
    target = _safe_next(str(data.get("next") or "/"))
    if chosen in ("pt-BR", "en"):
        current = request.session if request.scope.get("session") else {}
        if current.get("tenant_id") == str(tenant.id):
            request.set_session({**current, "locale": chosen})
        else:  # an anonymous visitor (or another tenant's session): a session of this tenant, language only
            request.set_session({"tenant_id": str(tenant.id), "locale": chosen})
    return Redirect(f"{base_path(request, tenant)}{target}", status_code=303)


AUTH_HANDLERS = [portal_home, login_form, login_submit, logout, forgot_form, forgot_submit, reset_form, reset_submit,
                 choose_locale]
