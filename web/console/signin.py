"""Signing in to the staff console: e-mail and password, then the second factor (TOTP, enrolled at the first
sign-in, or a recovery code); signing out; the staff member's language.

The password step leaves a *pending* session (staff id and time, nothing else usable: every console page
still asks for a signed-in member) under a new id; the second factor replaces it with the signed-in session,
again under a new id. Both steps are throttled per account and per address like the portal's log-in
(``platform/ratelimit.py``), and every success and failure is audited (``tenants/staff/second_factor.py``).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect
from markupsafe import Markup

from backoffice.platform.ratelimit import LOG_IN, gate
from backoffice.tenants.staff import second_factor as factor
from backoffice.web.clients import client_address
from backoffice.web.console.render import gettext_for, render
from backoffice.web.console.session import PENDING_MAX_AGE, ROTATE, safe_next, session_data

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
LIMITER_SCOPE = "platform"  # the staff API's token endpoint counts in the same budget (same password)


def _kept(request: Request) -> dict[str, Any]:
    data = session_data(request)
    return {"locale": data["locale"]} if "locale" in data else {}


def _pending(request: Request) -> uuid.UUID | None:
    data = session_data(request)
    if not data.get("pending_staff_id") or time.time() - float(data.get("pending_at", 0)) > PENDING_MAX_AGE:
        return None
    try:
        return uuid.UUID(str(data["pending_staff_id"]))
    except ValueError:
        return None


def _too_many(request: Request, template: str, retry_after: int, **context: Any) -> Response:
    _ = gettext_for(request)
    response = render(request, template, status_code=429, error=_(
        "Too many attempts. Wait 15 minutes and try again."), **context)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _start_again(request: Request) -> Response:
    request.clear_session()
    return Redirect("/staff/login?expired=1", status_code=303)


@get("/login", name="console:login")
async def login_form(request: Request, next: str | None = None, expired: str | None = None) -> Response:
    if session_data(request).get("staff_id"):
        return Redirect(safe_next(next), status_code=303)
    _ = gettext_for(request)
    return render(request, "console/login.html", next=safe_next(next),
                  notice=_("Your sign-in took too long; start again.") if expired else None)


@post("/login", name="console:login_submit")
async def login_submit(request: Request, state: State, data: Form) -> Response:
    _ = gettext_for(request)
    email = str(data.get("email", "")).strip().lower()
    target = safe_next(str(data.get("next") or ""))
    address = client_address(request)
    # Counted before the password is checked, so parallel guesses cannot outrun the count.
    attempt = await gate(state.rate_limiter, LIMITER_SCOPE, "staff-login", account=email, address=address,
                         limits=LOG_IN)
    if not attempt.allowed:
        return _too_many(request, "console/login.html", attempt.retry_after, email=email, next=target)
    async with state.database.system() as session:
        try:
            staff = await factor.check_password(session, email=email, password=str(data.get("password", "")),
                                                address=address)
            enrolled = await factor.has_second_factor(session, staff.id)
        except factor.WrongCredentials:
            staff = None  # the failure's audit entry commits with this block
    if staff is None:
        return render(request, "console/login.html", status_code=400, email=email, next=target, field="password",
                      error=_("E-mail or password is not correct."))
    await attempt.succeeded()
    request.set_session({"pending_staff_id": str(staff.id), "pending_at": time.time(), "next": target,
                         **_kept(request), ROTATE: True})
    return Redirect("/staff/login/code" if enrolled else "/staff/login/enrol", status_code=303)


@get("/login/code", name="console:code")
async def code_form(request: Request) -> Response:
    if _pending(request) is None:
        return _start_again(request)
    return render(request, "console/code.html")


async def _signed_in(request: Request, staff_id: uuid.UUID, method: str, state: State) -> None:
    target = safe_next(session_data(request).get("next"))
    request.set_session({"staff_id": str(staff_id), "signed_in_at": time.time(), "method": method, "next": target,
                         **_kept(request), ROTATE: True})


@post("/login/code", name="console:code_submit")
async def code_submit(request: Request, state: State, data: Form) -> Response:
    _ = gettext_for(request)
    staff_id = _pending(request)
    if staff_id is None:
        return _start_again(request)
    address = client_address(request)
    attempt = await gate(state.rate_limiter, LIMITER_SCOPE, "staff-2fa", account=str(staff_id), address=address,
                         limits=factor.SECOND_FACTOR_LIMITS)
    if not attempt.allowed:
        return _too_many(request, "console/code.html", attempt.retry_after)
    code = str(data.get("code", ""))
    async with state.database.system() as session:
        staff = await factor.active_staff(session, staff_id)
        if staff is None:
            method = None
        else:
            try:
                method = await factor.check_second_factor(session, staff=staff, code=code,
                                                          settings=state.settings, address=address)
                await factor.record_sign_in(session, staff=staff, method=method, address=address)
            except factor.WrongCredentials:
                method = None
    if staff is None:
        return _start_again(request)
    if method is None:
        return render(request, "console/code.html", status_code=400, field="code",
                      error=_("That code is not right, or was already used. Enter the current code."))
    await attempt.succeeded()
    target = safe_next(session_data(request).get("next"))
    await _signed_in(request, staff.id, method, state)
    return Redirect(target, status_code=303)


def _enrolment(request: Request, state: State, email: str, secret: str, **context: Any) -> Response:
    uri = factor.provisioning_uri(secret, email)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return render(request, "console/enrol.html", qr=Markup(factor.qr_svg(uri)), secret=grouped, email=email,
                  **context)


@get("/login/enrol", name="console:enrol")
async def enrol_form(request: Request, state: State) -> Response:
    staff_id = _pending(request)
    if staff_id is None:
        return _start_again(request)
    async with state.database.system() as session:
        staff = await factor.active_staff(session, staff_id)
        enrolled = staff is not None and await factor.has_second_factor(session, staff_id)
    if staff is None:
        return _start_again(request)
    if enrolled:
        return Redirect("/staff/login/code", status_code=303)
    data = session_data(request)
    # One secret per pending sign-in (kept encrypted in the session), so reloading shows the same QR code.
    sealed = data.get("enrol_secret")
    secret = factor.open_pending_secret(sealed, state.settings) if sealed else factor.new_totp_secret()
    if not sealed:
        request.set_session({**data, "enrol_secret": factor.seal_pending_secret(secret, state.settings)})
    return _enrolment(request, state, staff.email, secret)


@post("/login/enrol", name="console:enrol_submit")
async def enrol_submit(request: Request, state: State, data: Form) -> Response:
    _ = gettext_for(request)
    staff_id = _pending(request)
    sealed = session_data(request).get("enrol_secret")
    if staff_id is None or not sealed:
        return _start_again(request)
    address = client_address(request)
    attempt = await gate(state.rate_limiter, LIMITER_SCOPE, "staff-2fa", account=str(staff_id), address=address,
                         limits=factor.SECOND_FACTOR_LIMITS)
    secret = factor.open_pending_secret(sealed, state.settings)
    async with state.database.system() as session:
        staff = await factor.active_staff(session, staff_id)
        if staff is None:
            return _start_again(request)
        email = staff.email
        if not attempt.allowed:
            return _too_many(request, "console/enrol.html", attempt.retry_after,
                             qr=Markup(factor.qr_svg(factor.provisioning_uri(secret, email))), secret=secret,
                             email=email)
        try:
            enrolled = await factor.enrol_totp(session, staff=staff, secret=secret, code=str(data.get("code", "")),
                                               settings=state.settings, address=address)
            await factor.record_sign_in(session, staff=staff, method="totp_enrolment", address=address)
        except factor.WrongCredentials:
            enrolled = None
    if enrolled is None:
        if await _already_enrolled(state, staff_id):
            return Redirect("/staff/login/code", status_code=303)
        return _enrolment(request, state, email, secret, status_code=400, field="code",
                          error=_("That code is not right. Check the time on your phone and enter the current code."))
    await attempt.succeeded()
    target = safe_next(session_data(request).get("next"))
    await _signed_in(request, staff_id, "totp_enrolment", state)
    # Shown once, in this answer only: they are stored hashed.
    return render(request, "console/recovery_codes.html", codes=enrolled.recovery_codes, next=target)


async def _already_enrolled(state: State, staff_id: uuid.UUID) -> bool:
    async with state.database.system() as session:
        return await factor.has_second_factor(session, staff_id)


@post("/logout", name="console:logout")
async def logout(request: Request) -> Response:
    request.clear_session()
    return Redirect("/staff/login", status_code=303)


@post("/locale", name="console:locale")
async def choose_locale(request: Request, data: Form) -> Response:
    chosen = str(data.get("locale", ""))
    raw = str(data.get("next") or "")
    # The sign-in pages too (safe_next sends those to the overview): a language change stays on the page.
    target = raw if raw.startswith("/staff/login") and "\\" not in raw else safe_next(raw)
    if chosen in ("pt-BR", "en"):
        request.set_session({**session_data(request), "locale": chosen})
    return Redirect(target, status_code=303)


ROUTES = [login_form, login_submit, code_form, code_submit, enrol_form, enrol_submit, logout, choose_locale]
