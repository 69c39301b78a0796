"""Tenant admin pages: users and roles, branding with a preview and a logo, notification preferences,
API keys. Only admins; only their own tenant."""

from __future__ import annotations

import re
import struct
import zlib

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.web.app import create_app
from tests.web.portal.conftest import Browser

ADMIN_PAGES = ["/admin/users", "/admin/branding", "/admin/notifications", "/admin/api-keys"]


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def test_members_cannot_reach_admin_pages(browser: Browser, tenants):
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    for path in ADMIN_PAGES:
        assert (await browser.get(f"/alfa{path}")).status_code == 403, path
    refused = await browser.post_form("/alfa/dashboard", "/alfa/admin/users",
                                      {"email": "x@alfa.example", "name": "X", "role": "tenant_admin"})
    assert refused.status_code == 403
    assert "/admin/users" not in (await browser.get("/alfa/dashboard")).text


async def test_admin_manages_users_and_roles(browser: Browser, tenants, database):
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    bad = await browser.post_form("/alfa/admin/users", "/alfa/admin/users", {"email": "nope", "name": "", "role": "boss"})
    assert bad.status_code == 422
    for field in ("E-mail", "Papel", "Nome"):  # each field as the page names it, in the reader's language
        assert f"<strong>{field}</strong>" in bad.text
    created = await browser.post_form("/alfa/admin/users", "/alfa/admin/users",
                                      {"email": "nova@alfa.example", "name": "Nova", "role": "tenant_member",
                                       "password": "another-good-password"})
    assert created.status_code == 303
    async with database.tenant(tenants.a.id) as session:
        nova = (await session.execute(select(TenantUser).where(TenantUser.email == "nova@alfa.example"))).scalar_one()
    assert (await browser.post_form("/alfa/admin/users", f"/alfa/admin/users/{nova.id}/role",
                                    {"role": "tenant_admin"})).status_code == 303

    # Nova logs in elsewhere, then is deactivated: the next request of that session is refused.
    other = Browser(AsyncTestClient(app=create_app(database.settings)))
    async with other.client:
        assert (await other.login("/alfa", "nova@alfa.example", "another-good-password")).status_code == 303
        assert (await browser.post_form("/alfa/admin/users", f"/alfa/admin/users/{nova.id}/active",
                                        {"active": "0"})).status_code == 303
        assert (await other.get("/alfa/inbox")).status_code == 303
        assert (await other.login("/alfa", "nova@alfa.example", "another-good-password")).status_code == 400

    # Beta's user id is not found from Alfa's admin pages.
    foreign = await browser.post_form("/alfa/admin/users", f"/alfa/admin/users/{tenants.b.member_id}/role",
                                      {"role": "tenant_admin"})
    assert foreign.status_code == 404
    async with database.tenant(tenants.b.id) as session:
        member = await session.get(TenantUser, (tenants.b.id, tenants.b.member_id))
        assert member.role == TenantRole.MEMBER
    async with database.tenant(tenants.a.id) as session:
        actions = set((await session.execute(select(AuditEntry.action))).scalars())
    assert {"user.created", "user.role_changed", "user.deactivated"} <= actions


async def test_the_last_admin_cannot_demote_or_deactivate_themselves(browser: Browser, tenants):
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    demote = await browser.post_form("/alfa/admin/users", f"/alfa/admin/users/{tenants.a.admin_id}/role",
                                     {"role": "tenant_member"})
    assert demote.status_code == 422 and "pelo menos um administrador ativo" in demote.text


async def test_branding_preview_save_and_logo(browser: Browser, tenants, database):
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    preview = await browser.get("/alfa/admin/branding?primary=%23123456&secondary=%23abcdef")
    assert preview.status_code == 200 and "--p-primary: #123456" in preview.text
    assert "--brand-primary: #123456" not in preview.text  # previewed, not applied
    bad = await browser.post_form("/alfa/admin/branding", "/alfa/admin/branding",
                                  {"primary": "red; background:url(x)", "secondary": "#abcdef"})
    assert bad.status_code == 422
    assert "<strong>Cor principal</strong>: Informe uma cor hexadecimal como #1f4e79." in bad.text
    assert re.search(r'id="colour-primary"[^>]*aria-invalid="true"', bad.text)
    saved = await browser.post_form("/alfa/admin/branding", "/alfa/admin/branding",
                                    {"primary": "#123456", "secondary": "#abcdef", "background": "#ffffff",
                                     "text": "#111111"})
    assert saved.status_code == 303
    assert "--brand-primary: #123456" in (await browser.get("/alfa/dashboard")).text
    assert "#123456" not in (await browser.get("/beta/login")).text

    token = re.search(r'name="_csrf_token" value="([^"]+)"', (await browser.get("/alfa/admin/branding")).text).group(1)
    files = {"logo": ("logo.png", tiny_png(), "image/png")}
    not_image = await browser.client.post("/alfa/admin/branding/logo", files={"logo": ("x.png", b"<svg/>", "image/png")},
                                          data={"_csrf_token": token}, headers=browser.headers, follow_redirects=False)
    assert not_image.status_code == 422
    assert "<strong>Logo</strong>: envie uma imagem PNG, JPEG ou WebP" in not_image.text
    no_token = await browser.client.post("/alfa/admin/branding/logo", files=files, headers=browser.headers,
                                         follow_redirects=False)
    assert no_token.status_code == 403
    uploaded = await browser.client.post("/alfa/admin/branding/logo", files=files, data={"_csrf_token": token},
                                         headers=browser.headers, follow_redirects=False)
    assert uploaded.status_code == 303
    logo = await browser.get("/alfa/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png" and logo.content == tiny_png()
    assert (await browser.get("/beta/logo")).status_code == 404
    async with database.system() as session:
        beta = (await session.execute(select(Tenant).where(Tenant.slug == "beta"))).scalar_one()
    assert beta.logo is None and beta.branding.get("primary") != "#123456"


async def test_notification_preferences_save_a_policy_version(browser: Browser, tenants, database):
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    page = await browser.get("/alfa/admin/notifications")
    assert page.status_code == 200 and 'name="dunning.blocked:email"' in page.text
    saved = await browser.post_form("/alfa/admin/notifications", "/alfa/admin/notifications",
                                    {"dunning.blocked:portal": "on", "dunning.blocked:email": "on",
                                     "customer.started:portal": "on", "reason": "leads want e-mail for blocks"})
    assert saved.status_code == 303
    async with database.tenant(tenants.a.id) as session:
        version, policy = await current_policy(session)
    assert version == 1 and policy.channels["dunning.blocked"] == ["portal", "email"]
    assert policy.channels["dunning.grace_started"] == []
    async with database.tenant(tenants.b.id) as session:
        assert (await current_policy(session))[0] == 0


async def test_api_keys_are_shown_once_and_revoked_per_tenant(browser: Browser, tenants, database):
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    missing = await browser.post_form("/alfa/admin/api-keys", "/alfa/admin/api-keys", {"name": ""})
    assert missing.status_code == 422 and "<strong>Nome</strong>" in missing.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', missing.text).group(1)
    created = await browser.client.post(
        "/alfa/admin/api-keys", headers=browser.headers, follow_redirects=False,
        data={"_csrf_token": token, "name": "ERP", "scopes": ["customers:read", "events:write"], "expires_days": "30"})
    assert created.status_code == 201
    secret = re.search(r'id="new-secret" class="secret" readonly value="([^"]+)"', created.text).group(1)
    listing = await browser.get("/alfa/admin/api-keys")
    assert secret not in listing.text and "ERP" in listing.text
    async with database.tenant(tenants.a.id) as session:
        [key] = (await session.execute(select(ApiKey))).scalars().all()
    assert key.scopes == ["customers:read", "events:write"] and key.key_hash != secret

    async with AsyncTestClient(app=create_app(database.settings)) as beta_client:
        beta = Browser(beta_client)
        assert (await beta.login("/beta", "admin@beta.example")).status_code == 303
        assert "ERP" not in (await beta.get("/beta/admin/api-keys")).text
        foreign = await beta.post_form("/beta/admin/api-keys", f"/beta/admin/api-keys/{key.id}/revoke", {})
        assert foreign.status_code == 404
    revoked = await browser.post_form("/alfa/admin/api-keys", f"/alfa/admin/api-keys/{key.id}/revoke", {})
    assert revoked.status_code == 303
    async with database.tenant(tenants.a.id) as session:
        assert (await session.get(ApiKey, (tenants.a.id, key.id))).revoked_at is not None


async def test_webhook_endpoints_registered_shown_once_and_disabled_per_tenant(database, tenants):
    from backoffice.tenants.webhooks.models import WebhookEndpoint

    settings = database.settings.model_copy(update={"allow_private_targets": True})
    async with AsyncTestClient(app=create_app(settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
        bad = await browser.post_form("/alfa/admin/webhooks", "/alfa/admin/webhooks", {"url": "ftp://x"})
        assert bad.status_code == 422 and "<strong>URL</strong>" in bad.text
        assert "informe um endereço http(s) com o nome do servidor" in bad.text
        token = re.search(r'name="_csrf_token" value="([^"]+)"', bad.text).group(1)
        created = await client.post("/alfa/admin/webhooks", headers=browser.headers, follow_redirects=False, data={
            "_csrf_token": token, "url": "http://127.0.0.1:9/hooks", "event_types": ["payment.cleared"],
            "description": "ERP"})
        assert created.status_code == 201
        secret = re.search(r'id="new-secret" class="secret" readonly value="([^"]+)"', created.text).group(1)
        assert secret.startswith("whsec_") and secret not in (await browser.get("/alfa/admin/webhooks")).text
        async with database.tenant(tenants.a.id) as session:
            [endpoint] = (await session.execute(select(WebhookEndpoint))).scalars().all()
        async with AsyncTestClient(app=create_app(settings)) as beta_client:
            beta = Browser(beta_client)
            assert (await beta.login("/beta", "admin@beta.example")).status_code == 303
            assert "127.0.0.1:9" not in (await beta.get("/beta/admin/webhooks")).text
            foreign = await beta.post_form("/beta/admin/webhooks", f"/beta/admin/webhooks/{endpoint.id}/disable",
                                           {"reason": "not yours"})
            assert foreign.status_code == 404
        disabled = await browser.post_form("/alfa/admin/webhooks", f"/alfa/admin/webhooks/{endpoint.id}/disable",
                                           {"reason": "ERP migrating"})
        assert disabled.status_code == 303
    async with database.tenant(tenants.a.id) as session:
        endpoint = await session.get(WebhookEndpoint, (tenants.a.id, endpoint.id))
    assert endpoint.enabled is False and endpoint.disabled_reason == "ERP migrating"
