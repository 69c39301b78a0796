"""Staff sign-in through the provider's own OIDC identity provider (authorization code flow with PKCE).

Configured by ``BACKOFFICE_STAFF_OIDC_ISSUER`` / ``_CLIENT_ID`` / ``_CLIENT_SECRET`` (https only unless
private targets are allowed, as the portal's SSO). The flow is the portal's (``web/portal/sso.py``: the same
discovery, outbound checks and ID-token verification: signed by a key of the provider's JWKS, this issuer,
this client as audience, the nonce): state, nonce and verifier live in the staff session and the state is
single use. Then only an active staff member's e-mail gets in; the identity provider is the provider's own,
so its sign-in (and its second factor) stands in for the password and TOTP. Every outcome is audited.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Redirect

from backoffice.platform.security.outbound import CheckedTransport
from backoffice.tenants.staff import second_factor as factor
from backoffice.tenants.users.oidc import SsoRefused
from backoffice.web.clients import client_address
from backoffice.web.console.render import gettext_for, render
from backoffice.web.console.session import ROTATE, safe_next, session_data
from backoffice.web.portal.sso import HTTP_TIMEOUT, SSO_START_WINDOW, SSO_STARTS_PER_ADDRESS, _discover, _verified_claims

log = logging.getLogger(__name__)
FLOW_KEY = "staff_oidc_flow"


def configured(settings) -> SimpleNamespace | None:
    if not settings.staff_oidc_issuer:
        return None
    return SimpleNamespace(issuer=settings.staff_oidc_issuer.rstrip("/"), client_id=settings.staff_oidc_client_id,
                           client_secret=settings.staff_oidc_client_secret)


def _callback_url(request: Request, state: State) -> str:
    return f"{(state.settings.base_url or str(request.base_url)).rstrip('/')}/staff/sso/callback"


def _refused(request: Request, reason: str, status_code: int) -> Response:
    _ = gettext_for(request)
    return render(request, "console/login.html", status_code=status_code, next="/staff/",
                  sso=configured(request.app.state.settings) is not None,
                  error=_("Single sign-on did not let you in: %(reason)s") % {"reason": reason})


@get("/sso/start", name="console:sso_start")
async def sso_start(request: Request, state: State, next: str | None = None) -> Response:
    config = configured(state.settings)
    if config is None:
        return _refused(request, "the provider has no single sign-on for staff", 404)
    started = await state.rate_limiter.attempt("platform", f"staff-sso-start:address:{client_address(request)}",
                                               limit=SSO_STARTS_PER_ADDRESS, window=SSO_START_WINDOW)
    if not started.allowed:
        return _refused(request, "too many sign-on attempts from this address; wait and try again", 429)
    try:
        discovery = await _discover(config.issuer, state.settings)
    except (httpx.HTTPError, ValueError, SsoRefused) as error:
        log.warning("staff OIDC discovery failed: %s", error)
        return _refused(request, "the identity provider did not answer correctly", 502)
    flow = {"state": pysecrets.token_urlsafe(32), "nonce": pysecrets.token_urlsafe(32),
            "verifier": pysecrets.token_urlsafe(64), "next": safe_next(next)}
    request.set_session({**session_data(request), FLOW_KEY: flow})
    query = urlencode({
        "response_type": "code", "client_id": config.client_id, "redirect_uri": _callback_url(request, state),
        "scope": "openid email profile", "state": flow["state"], "nonce": flow["nonce"],
        "code_challenge": create_s256_code_challenge(flow["verifier"]), "code_challenge_method": "S256",
    })
    return Redirect(f"{discovery['authorization_endpoint']}?{query}", status_code=303)


async def _audit_refusal(state: State, email: str, reason: str, address: str) -> None:
    async with state.database.system() as session:
        await factor.record_sign_in_refused(session, email=email, step="oidc", reason=reason, address=address)


@get("/sso/callback", name="console:sso_callback")
async def sso_callback(request: Request, state: State, code: str = "", error: str = "") -> Response:
    data = session_data(request)
    flow = data.get(FLOW_KEY) or {}
    if flow:
        request.set_session({k: v for k, v in data.items() if k != FLOW_KEY})  # single use, whatever happens
    returned_state = request.query_params.get("state", "")
    if not flow or not pysecrets.compare_digest(str(flow.get("state", "")), returned_state):
        return _refused(request, "the sign-on answer does not belong to this browser session", 400)
    if error or not code:
        return _refused(request, f"the provider answered {error or 'without a code'}", 400)
    config = configured(state.settings)
    if config is None:
        return _refused(request, "the provider has no single sign-on for staff", 404)
    address = client_address(request)
    try:
        discovery = await _discover(config.issuer, state.settings)
        client = AsyncOAuth2Client(client_id=config.client_id, client_secret=config.client_secret,
                                   token_endpoint_auth_method="client_secret_post", timeout=HTTP_TIMEOUT,
                                   transport=CheckedTransport(state.settings), trust_env=False)
        async with client:
            token = await client.fetch_token(discovery["token_endpoint"], code=code,
                                             redirect_uri=_callback_url(request, state),
                                             code_verifier=flow["verifier"])
        if "id_token" not in token:
            raise SsoRefused("the provider gave no ID token")
        claims = await _verified_claims(config, discovery, token["id_token"], flow["nonce"], state.settings)
        if claims.get("email_verified") is False:
            raise SsoRefused("the provider says this e-mail address is not verified")
    except SsoRefused as refused:
        return _refused(request, str(refused), 403)
    except (httpx.HTTPError, ValueError, KeyError) as failure:
        log.warning("staff OIDC sign-in failed: %s", failure)
        return _refused(request, "the identity provider did not answer correctly", 502)
    email = str(claims.get("email") or "").strip().lower()
    async with state.database.system() as session:
        staff = await factor.active_staff_by_email(session, email)
        if staff is not None:
            await factor.record_sign_in(session, staff=staff, method="oidc", address=address)
    if staff is None:
        await _audit_refusal(state, email, "no active staff member has this e-mail", address)
        return _refused(request, "no active staff member has this e-mail address", 403)
    kept = {"locale": data["locale"]} if "locale" in data else {}
    request.set_session({"staff_id": str(staff.id), "signed_in_at": time.time(), "method": "oidc", **kept,
                         ROTATE: True})
    return Redirect(safe_next(flow.get("next")), status_code=303)


ROUTES = [sso_start, sso_callback]
