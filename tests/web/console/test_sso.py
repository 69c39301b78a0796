"""Staff sign-in through the provider's own OIDC provider (the test provider over loopback): an active staff
member's e-mail gets in, anyone else and a foreign or replayed answer do not; every outcome audited."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.settings import Settings
from backoffice.tenants.staff.models import Staff
from backoffice.web.app import create_app
from tests.web.console.conftest import ConsoleBrowser
from tests.providers.oidc import Provider


@pytest.fixture
def provider():
    provider = Provider(client_id="staff-console", person={
        "sub": "staff-1", "email": "ana@provider.example", "email_verified": True, "name": "Ana"}).start()
    yield provider
    provider.stop()


def _settings(database, provider: Provider) -> Settings:
    # The test provider listens on loopback over http, which only private targets allow (as in the portal's).
    return database.settings.model_copy(update={
        "allow_private_targets": True, "staff_oidc_issuer": provider.issuer,
        "staff_oidc_client_id": provider.client_id, "staff_oidc_client_secret": provider.client_secret})


async def _through_provider(browser: ConsoleBrowser) -> str:
    start = await browser.get("/staff/sso/start?next=/staff/tenants")
    assert start.status_code == 303, start.text
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["staff-console"]
    assert query["redirect_uri"][0].endswith("/staff/sso/callback")
    async with httpx.AsyncClient() as outside:
        answer = await outside.get(start.headers["location"])
    callback = urlsplit(answer.headers["location"])
    return f"{callback.path}?{callback.query}"


async def test_an_active_staff_member_signs_in_through_the_providers_sso(database, staff_members, provider):
    async with AsyncTestClient(app=create_app(_settings(database, provider))) as client:
        browser = ConsoleBrowser(client)
        assert "/staff/sso/start" in (await browser.get("/staff/login")).text
        callback = await _through_provider(browser)
        landed = await browser.get(callback)
        assert landed.status_code == 303 and landed.headers["location"] == "/staff/tenants"
        assert (await browser.get("/staff/")).status_code == 200
        assert (await browser.get(callback)).status_code == 400  # the state is single use
    async with database.system() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "staff.signed_in",
                                                                AuditEntry.actor_label == "ana@provider.example")
                                       .order_by(AuditEntry.occurred_at.desc()))).scalars().first()
    assert entry.detail["method"] == "oidc"


async def test_unknown_and_deactivated_people_and_foreign_answers_are_refused(database, staff_members, provider):
    async with AsyncTestClient(app=create_app(_settings(database, provider))) as client:
        browser = ConsoleBrowser(client)
        provider.person = {"sub": "x", "email": "stranger@provider.example", "email_verified": True}
        refused = await browser.get(await _through_provider(browser))
        assert refused.status_code == 403 and (await browser.get("/staff/")).status_code == 303
        async with database.system() as session:
            await session.execute(update(Staff).where(Staff.email == "ana@provider.example").values(active=False))
        provider.person = {"sub": "staff-1", "email": "ana@provider.example", "email_verified": True}
        assert (await browser.get(await _through_provider(browser))).status_code == 403
        # An answer that was started in another browser does not sign this one in.
        foreign = await _through_provider(browser)
        async with AsyncTestClient(app=create_app(_settings(database, provider))) as second:
            assert (await ConsoleBrowser(second).get(foreign)).status_code == 400
    async with database.system() as session:
        failures = (await session.execute(select(AuditEntry.detail).where(
            AuditEntry.action == "staff.sign_in_failed").order_by(AuditEntry.occurred_at, AuditEntry.id))).scalars().all()
    assert [d["email"] for d in failures if d.get("step") == "oidc"] == ["stranger@provider.example",
                                                                         "ana@provider.example"]


def test_the_issuer_must_be_https_outside_tests():
    with pytest.raises(ValueError, match="https"):
        Settings(staff_oidc_issuer="http://login.provider.example", staff_oidc_client_id="c",
                 staff_oidc_client_secret="s")
    with pytest.raises(ValueError, match="together"):
        Settings(staff_oidc_issuer="https://login.provider.example")
