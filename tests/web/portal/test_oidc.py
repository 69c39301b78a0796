"""Per-tenant OIDC single sign-on against a local provider over real loopback HTTP: discovery, PKCE, state
and nonce bound to the tenant's session, issuer and signature checked, allowed domains only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.tenants.users.oidc import OidcSettings
from backoffice.web.app import create_app
from tests.web.portal.conftest import Browser
from tests.providers.oidc import Provider


@pytest.fixture
def provider():
    provider = Provider().start()
    yield provider
    provider.stop()


def _settings(database):
    # The test provider listens on loopback, which the SSRF guard refuses unless private targets are allowed.
    return database.settings.model_copy(update={"allow_private_targets": True})


async def _configure(database, provider: Provider, domains: str = "alfa.example") -> None:
    async with AsyncTestClient(app=create_app(_settings(database))) as client:
        admin = Browser(client)
        assert (await admin.login("/alfa", "admin@alfa.example")).status_code == 303
        saved = await admin.post_form("/alfa/admin/sso", "/alfa/admin/sso", {
            "issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret,
            "allowed_domains": domains, "enabled": "on"})
        assert saved.status_code == 303
        # The page shows the whole callback URL to paste into the identity provider, not a relative path.
        shown = await admin.get("/alfa/admin/sso")
        callback = str(client.base_url).rstrip("/") + "/alfa/sso/callback"
        assert callback.startswith("http") and f'<code id="sso-callback">{callback}</code>' in shown.text


async def _through_provider(browser: Browser, base: str = "/alfa") -> tuple[str, httpx.Response]:
    start = await browser.get(f"{base}/sso/start")
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    async with httpx.AsyncClient() as outside:
        answer = await outside.get(authorize)
    assert answer.status_code == 302
    callback = urlsplit(answer.headers["location"])
    return f"{callback.path}?{callback.query}", answer


async def test_sso_admits_a_person_of_an_allowed_domain(database, tenants, provider):
    await _configure(database, provider)
    async with database.tenant(tenants.a.id) as session:
        [config] = (await session.execute(select(OidcSettings))).scalars().all()
    assert provider.client_secret not in config.client_secret_encrypted  # encrypted at rest

    async with AsyncTestClient(app=create_app(_settings(database))) as client:
        browser = Browser(client)
        assert "/alfa/sso/start" in (await browser.get("/alfa/login")).text
        assert "/beta/sso/start" not in (await browser.get("/beta/login")).text
        callback, _ = await _through_provider(browser)
        assert callback.startswith("/alfa/sso/callback?")
        landed = await browser.get(callback)
        assert landed.status_code == 303 and landed.headers["location"] == "/alfa/dashboard"
        assert "Sso User" in (await browser.get("/alfa/dashboard")).text
        assert (await browser.get(callback)).status_code == 400  # the state is single use
        assert (await browser.get("/beta/dashboard")).status_code == 303  # bound to Alfa
    async with database.tenant(tenants.a.id) as session:
        user = (await session.execute(select(TenantUser).where(TenantUser.email == "sso.user@alfa.example"))).scalar_one()
    assert user.role == TenantRole.MEMBER and user.password_hash is None


async def test_sso_refuses_other_domains_wrong_issuer_and_foreign_state(database, tenants, provider):
    await _configure(database, provider)
    async with AsyncTestClient(app=create_app(database.settings)) as guarded:
        # Without the allowance the loopback provider is refused before any request reaches it.
        refused = await Browser(guarded).get("/alfa/sso/start")
        assert refused.status_code == 502 and "/authorize" not in refused.headers.get("location", "")
    async with AsyncTestClient(app=create_app(_settings(database))) as client:
        browser = Browser(client)
        provider.person = {**provider.person, "email": "someone@gmail.com"}
        callback, _ = await _through_provider(browser)
        refused = await browser.get(callback)
        assert refused.status_code == 403 and "gmail.com" in refused.text

        provider.person = {**provider.person, "email": "sso.user@alfa.example"}
        provider.issuer_override = "http://evil.example"
        callback, _ = await _through_provider(browser)
        assert (await browser.get(callback)).status_code == 403

        # A flow started on Alfa cannot be completed on Beta's portal.
        provider.issuer_override = None
        callback, _ = await _through_provider(browser)
        assert (await browser.get(callback.replace("/alfa/", "/beta/", 1))).status_code == 400
        # Nor with a state this browser never got.
        path, query = callback.split("?", 1)
        forged = {k: v[0] for k, v in parse_qs(query).items()} | {"state": "forged"}
        assert (await browser.get(path, params=forged)).status_code == 400
    async with database.tenant(tenants.a.id) as session:
        emails = set((await session.execute(select(TenantUser.email))).scalars())
    assert "someone@gmail.com" not in emails and "sso.user@alfa.example" not in emails
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(OidcSettings))).first() is None


async def test_an_http_issuer_is_refused_at_save_outside_tests(database, tenants):
    form = {"issuer": "http://login.example.com", "client_id": "portal", "client_secret": "s3cret",
            "allowed_domains": "alfa.example", "enabled": "on"}
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        admin = Browser(client)
        assert (await admin.login("/alfa", "admin@alfa.example")).status_code == 303
        refused = await admin.post_form("/alfa/admin/sso", "/alfa/admin/sso", form)
        assert refused.status_code == 422
        assert "URL do emissor (issuer): informe um endereço https" in refused.text
    async with database.tenant(tenants.a.id) as session:
        assert (await session.execute(select(OidcSettings))).first() is None


async def test_sso_starts_are_limited_per_address(database, tenants, provider):
    from backoffice.web.portal.sso import SSO_STARTS_PER_ADDRESS

    await _configure(database, provider)
    async with AsyncTestClient(app=create_app(_settings(database))) as client:
        browser = Browser(client)
        # Each start fetches the provider's discovery document and writes a session.
        starts = [await browser.get("/alfa/sso/start") for _ in range(SSO_STARTS_PER_ADDRESS + 1)]
        assert {s.status_code for s in starts[:-1]} == {303} and starts[-1].status_code == 429
        assert (await browser.get("/beta/login")).status_code == 200  # the rest of the portal is untouched
