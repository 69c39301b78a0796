"""Log-in through the tenant's own OIDC provider (authorization code flow with PKCE), and its admin page.

State, nonce and the PKCE verifier live in the server-side session, bound to the tenant (the session's
store key carries the tenant, and the stored tenant id is checked again at the callback); the state is
single use. The ID token must be signed by a key of the provider's JWKS, name the configured issuer and
this client as audience, and carry the nonce; then only e-mail addresses of the tenant's allowed domains
are admitted (``tenants/users/oidc.py``).
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.errors import ValidationFailed
from backoffice.platform.security import secrets
from backoffice.platform.security.outbound import CheckedTransport, TargetRefused, check_target
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.oidc import OidcSettings, SsoRefused, admit_sso_user, get_oidc_settings, save_oidc_settings
from backoffice.tenants.users.service import record_log_in
from backoffice.web.clients import client_address
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.refusals import readable_errors
from backoffice.web.portal.render import base_path, page, pick_locale, translations
from backoffice.web.portal.sessions import ROTATE

log = logging.getLogger(__name__)
HTTP_TIMEOUT = 10.0
SSO_STARTS_PER_ADDRESS, SSO_START_WINDOW = 30, 15 * 60
FLOW_KEY = "oidc_flow"


def _callback_url(request: Request, tenant: Tenant, state: State) -> str:
    """The absolute URL the identity provider sends the user back to (shown to the admin to register it).

    On the tenant's own host name that host is the root; on the platform's, the configured base URL."""
    on_own_host = request.scope.get("backoffice.host_tenant") == tenant.slug
    root = (str(request.base_url) if on_own_host else state.settings.base_url or str(request.base_url)).rstrip("/")
    return f"{root}{base_path(request, tenant)}/sso/callback"


async def _outbound(url: str, settings) -> None:
    """The provider's URLs are tenant input: never let them reach the platform's private network (checked
    here, and again by each client's CheckedTransport when it connects)."""
    try:
        await check_target(url, settings)
    except TargetRefused as refused:
        raise SsoRefused(f"the identity provider's address is refused ({refused})") from None


async def _discover(issuer: str, settings) -> dict:
    await _outbound(f"{issuer}/.well-known/openid-configuration", settings)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=CheckedTransport(settings), trust_env=False) as client:
        response = await client.get(f"{issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        document = response.json()
    if document.get("issuer", "").rstrip("/") != issuer:
        raise SsoRefused("the provider's discovery document names another issuer")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(key), str):
            raise SsoRefused(f"the provider's discovery document has no {key}")
        if not document[key].startswith("https://") and not settings.allow_private_targets:  # as the issuer
            raise SsoRefused(f"the provider's {key} is not https")
        await _outbound(document[key], settings)
    return document


def _refused(request: Request, tenant: Tenant, reason: str, status_code: int = 403) -> Response:
    _ = translations(pick_locale(request, tenant)).gettext
    return page(request, tenant, "portal/login.html", status_code=status_code, next="/", sso=None,
                error=_("Single sign-on did not let you in: %(reason)s") % {"reason": reason})


@get("/sso/start", name="portal:sso_start")
async def sso_start(request: Request, tenant: Tenant, db: AsyncSession, state: State) -> Response:
    config = await get_oidc_settings(db)
    if config is None or not config.enabled:
        return _refused(request, tenant, "this company has no single sign-on", status_code=404)
    # Each start fetches the provider's discovery document and stores a session: not for free, so per address.
    # Fails closed: with Redis away the error answers 503 with Retry-After (web/errors.py); the session this
    # start would store lives in Redis too, so letting it through could not help.
    started = await state.rate_limiter.attempt(str(tenant.id), f"sso-start:address:{client_address(request)}",
                                               limit=SSO_STARTS_PER_ADDRESS, window=SSO_START_WINDOW)
    if not started.allowed:
        return _refused(request, tenant, "too many sign-on attempts from this address; wait and try again", 429)
    try:
        discovery = await _discover(config.issuer, state.settings)
    except (httpx.HTTPError, ValueError, SsoRefused) as error:
        log.warning("OIDC discovery for tenant %s failed: %s", tenant.slug, error)
        return _refused(request, tenant, "the company's identity provider did not answer correctly", 502)
    flow = {"tenant_id": str(tenant.id), "state": pysecrets.token_urlsafe(32), "nonce": pysecrets.token_urlsafe(32),
            "verifier": pysecrets.token_urlsafe(64)}
    # Keep whatever else the session holds (an anonymous visitor has nothing) and add the flow.
    request.set_session({**(request.session or {}), FLOW_KEY: flow})
    query = urlencode({
        "response_type": "code", "client_id": config.client_id, "redirect_uri": _callback_url(request, tenant, state),
        "scope": "openid email profile", "state": flow["state"], "nonce": flow["nonce"],
        "code_challenge": create_s256_code_challenge(flow["verifier"]), "code_challenge_method": "S256",
    })
    return Redirect(f"{discovery['authorization_endpoint']}?{query}", status_code=303)


async def _verified_claims(config: OidcSettings, discovery: dict, id_token: str, nonce: str, settings) -> dict:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=CheckedTransport(settings), trust_env=False) as client:
        response = await client.get(discovery["jwks_uri"])
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    try:
        token = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": config.issuer}, aud={"essential": True, "value": config.client_id},
            nonce={"essential": True, "value": nonce}, sub={"essential": True}, exp={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError) as error:
        raise SsoRefused(f"the ID token is not valid ({type(error).__name__})") from None
    return dict(token.claims)


@get("/sso/callback", name="portal:sso_callback")
async def sso_callback(request: Request, tenant: Tenant, db: AsyncSession, state: State, code: str = "",
                       error: str = "") -> Response:
    data = request.session or {}
    flow = data.get(FLOW_KEY) or {}
    returned_state = request.query_params.get("state", "")
    if flow:
        request.set_session({k: v for k, v in data.items() if k != FLOW_KEY})  # single use, whatever happens
    if not flow or flow.get("tenant_id") != str(tenant.id) or not pysecrets.compare_digest(
            str(flow.get("state", "")), returned_state):
        return _refused(request, tenant, "the sign-on answer does not belong to this browser session", 400)
    if error or not code:
        return _refused(request, tenant, f"the provider answered {error or 'without a code'}", 400)
    config = await get_oidc_settings(db)
    if config is None or not config.enabled:
        return _refused(request, tenant, "this company has no single sign-on", 404)
    try:
        discovery = await _discover(config.issuer, state.settings)
        client = AsyncOAuth2Client(client_id=config.client_id,
                                   client_secret=secrets.decrypt(config.client_secret_encrypted, state.settings),
                                   token_endpoint_auth_method="client_secret_post", timeout=HTTP_TIMEOUT,
                                   transport=CheckedTransport(state.settings), trust_env=False)
        async with client:
            token = await client.fetch_token(discovery["token_endpoint"], code=code,
                                             redirect_uri=_callback_url(request, tenant, state),
                                             code_verifier=flow["verifier"])
        if "id_token" not in token:
            raise SsoRefused("the provider gave no ID token")
        claims = await _verified_claims(config, discovery, token["id_token"], flow["nonce"], state.settings)
        user = await admit_sso_user(db, config, claims)
    except SsoRefused as refused:
        return _refused(request, tenant, str(refused))
    except (httpx.HTTPError, ValueError, KeyError) as failure:  # the provider misbehaved; say so, log details
        log.warning("OIDC log-in for tenant %s failed: %s", tenant.slug, failure)
        return _refused(request, tenant, "the company's identity provider did not answer correctly", 502)
    request.set_session({"tenant_id": str(tenant.id), "user_id": str(user.id), ROTATE: True})
    await record_log_in(db, user, method="oidc", issuer=config.issuer, subject=str(claims.get("sub")))
    return Redirect(f"{base_path(request, tenant)}/dashboard", status_code=303)


@get("/admin/sso", name="portal:admin_sso")
async def sso_settings(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, state: State) -> Response:
    config = await get_oidc_settings(db)
    return page(request, tenant, "portal/admin/sso.html", user=admin, config=config, errors=[], form={},
                callback=_callback_url(request, tenant, state), section="admin")


@post("/admin/sso", name="portal:admin_sso_save")
async def sso_settings_save(request: Request, tenant: Tenant, admin: PortalUser, db: AsyncSession, state: State,
                            data: Form) -> Response:
    try:
        await save_oidc_settings(
            db, issuer=str(data.get("issuer", "")), client_id=str(data.get("client_id", "")),
            client_secret=str(data.get("client_secret") or "") or None,
            allowed_domains=str(data.get("allowed_domains", "")), enabled=data.get("enabled") == "on",
            settings=state.settings, acting=admin.actor)
    except ValidationFailed as failure:
        _ = translations(pick_locale(request, tenant)).gettext
        labels = {"issuer": _("Issuer URL"), "client_id": _("Client id"), "client_secret": _("Client secret"),
                  "allowed_domains": _("Allowed e-mail domains (comma separated)")}
        return page(request, tenant, "portal/admin/sso.html", status_code=failure.status, user=admin,
                    config=await get_oidc_settings(db), errors=readable_errors(failure.errors, _, labels),
                    callback=_callback_url(request, tenant, state),
                    form={k: v for k, v in data.items() if k != "client_secret"}, section="admin")
    return Redirect(f"{base_path(request, tenant)}/admin/sso", status_code=303)


SSO_HANDLERS = [sso_start, sso_callback, sso_settings, sso_settings_save]
