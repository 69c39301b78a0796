"""The onboarding flow and a company's settings in the console, through HTTP as a browser sends it: each
step saves and the flow resumes; refusals are shown next to the field with nothing written; an operator
may not create a company, nor see or change one they are not assigned to (404)."""

from __future__ import annotations

import re

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantUser
from tests.providers.dns import dns_server
from tests.web.console.conftest import csrf_of

COMPANY = {"legal_name": "Gama Serviços Financeiros Ltda", "display_name": "Gama", "slug": "gama",
           "cnpj": "12.ABC.345/01DE-35", "timezone": "America/Recife", "locale": "pt-BR"}


async def _post(browser, page: str, action: str, data: dict, **kwargs):
    return await browser.post_form(page, action, data, **kwargs)


async def test_the_flow_creates_and_resumes_and_shows_refusals_by_field(database, admin_client):
    page = await admin_client.get("/staff/onboarding")
    assert page.status_code == 200 and "Razão social" in page.text and "Legal name" not in page.text

    bad = await _post(admin_client, "/staff/onboarding", "/staff/onboarding",
                      {**COMPANY, "cnpj": "12.345.678/0001-00", "timezone": "Mars/Base"})
    assert bad.status_code == 422
    assert 'id="e-cnpj"' in bad.text and 'id="e-timezone"' in bad.text
    assert "os dígitos verificadores não conferem" in bad.text and "use um fuso horário IANA" in bad.text
    assert 'value="Gama Serviços Financeiros Ltda"' in bad.text  # what was typed is kept
    async with database.system() as session:
        assert (await session.execute(select(Tenant).where(Tenant.slug == "gama"))).first() is None

    created = await _post(admin_client, "/staff/onboarding", "/staff/onboarding", COMPANY)
    assert created.status_code == 303, created.text[:500]
    branding_url = created.headers["location"]
    tenant_id = re.search(r"/staff/onboarding/([0-9a-f-]{36})/branding", branding_url).group(1)
    async with database.system() as session:
        tenant = await session.get(Tenant, __import__("uuid").UUID(tenant_id))
        assert tenant.cnpj == "12ABC34501DE35" and tenant.timezone == "America/Recife"
    base = f"/staff/onboarding/{tenant_id}"

    wrong = await _post(admin_client, f"{base}/branding", f"{base}/branding", {"primary": "red"})
    assert wrong.status_code == 422 and 'id="e-primary"' in wrong.text
    saved = await _post(admin_client, f"{base}/branding", f"{base}/branding", {"primary": "#0a7d5a"})
    assert saved.status_code == 303 and saved.headers["location"] == f"{base}/host"

    # Leaving and coming back: the flow resumes at the first step not done.
    resumed = await admin_client.get(base)
    assert resumed.status_code == 200 and f'href="{base}/host"' in resumed.text
    listed = await admin_client.get("/staff/onboarding")
    assert f'href="/staff/onboarding/{tenant_id}/host"' in listed.text

    with dns_server() as dns:
        admin_client.client.app.state.settings = admin_client.client.app.state.settings.model_copy(
            update={"dns_nameserver": dns.nameserver})
        asked = await _post(admin_client, f"{base}/host", f"{base}/host", {"custom_host": "portal.gama.example"})
        assert asked.status_code == 200
        name = re.search(r'id="txt-name">([^<]+)<', asked.text).group(1)
        value = re.search(r'id="txt-value">([^<]+)<', asked.text).group(1)
        assert name == "_backoffice-verify.portal.gama.example" and value.startswith("bo-verify=")
        early = await _post(admin_client, f"{base}/host", f"{base}/host/verify", {})
        assert early.status_code == 422 and 'id="verify-error"' in early.text
        assert "nenhum registro TXT" in early.text  # said in the staff member's language
        dns.publish(name, value)
        verified = await _post(admin_client, f"{base}/host", f"{base}/host/verify", {})
        assert verified.status_code == 200 and "portal.gama.example" in verified.text

    done = await _post(admin_client, f"{base}/connectors", f"{base}/connectors/done", {})
    assert done.headers["location"] == f"{base}/policy"

    preview = await admin_client.client.post(
        f"{base}/policy/preview", headers={**admin_client.headers, "hx-request": "true"},
        data={"_csrf_token": csrf_of((await admin_client.get(f"{base}/policy")).text), "kind": "dunning.notice",
              "tlocale": "pt-BR", "title": "Fatura de {{ customer.name }}", "body": "Vence {{ deadline_at|date }}."})
    assert preview.status_code == 200 and "Fatura de Casa do Pão Ltda" in preview.text and "<html" not in preview.text
    refused_preview = await admin_client.client.post(
        f"{base}/policy/preview", headers={**admin_client.headers, "hx-request": "true"},
        data={"_csrf_token": csrf_of((await admin_client.get(f"{base}/policy")).text), "kind": "dunning.notice",
              "tlocale": "pt-BR", "title": "{{ customer.__class__ }}", "body": "x"})
    assert 'class="error"' in refused_preview.text

    policy = {"grace_days": "7", "reminder_offsets_days": "5, 2", "reminder_hour_local": "10", "auto_block": "on",
              "auto_unblock": "on", "reconciliation_auto_repair": "on", "terminate_after_days": "",
              "create_customers_from_gateway": "on", "late_fine_percent": "2", "late_interest_percent_month": "0,5",
              "kind": "dunning.notice", "tlocale": "pt-BR",
              "title": "Fatura de {{ customer.name }}", "body": "Olá, {{ customer.name }}. Vence {{ deadline_at|date }}."}
    wrong = await _post(admin_client, f"{base}/policy", f"{base}/policy", {**policy, "reminder_offsets_days": "9"})
    assert wrong.status_code == 422 and "reminder_offsets_days" in wrong.text
    above_the_law = await _post(admin_client, f"{base}/policy", f"{base}/policy", {**policy, "late_fine_percent": "2,5"})
    assert above_the_law.status_code == 422 and "late_fine_percent" in above_the_law.text
    saved = await _post(admin_client, f"{base}/policy", f"{base}/policy", policy)
    assert saved.status_code == 303 and saved.headers["location"] == f"{base}/admin"
    async with database.provider(__import__("uuid").UUID(tenant_id)) as session:
        version, config = await current_policy(session)
        assert config.grace_days == 7 and config.reminder_offsets_days == [5, 2]
        assert config.reconciliation_auto_repair is True
        assert config.create_customers_from_gateway is True
        assert (config.late_fine_percent, config.late_interest_percent_month) == (2, __import__("decimal").Decimal("0.5"))
        assert config.templates["dunning.notice"]["pt-BR"].title == "Fatura de {{ customer.name }}"

    admin_page = await admin_client.get(f"{base}/admin")  # no e-mail connector: said before inviting
    assert ('id="no-mail"' in admin_page.text) == (not database.settings.embedded)
    invited = await _post(admin_client, f"{base}/admin", f"{base}/admin", {"name": "Rita", "email": "rita@gama.example"})
    assert invited.status_code == 303
    async with database.provider(__import__("uuid").UUID(tenant_id)) as session:
        user = (await session.execute(select(TenantUser))).scalar_one()
        message = (await session.execute(select(OutboundMessage))).scalar_one()
    assert user.role.value == "tenant_admin" and user.password_hash is None
    assert "/gama/password/reset/" in message.payload["text"]
    finished = await admin_client.get(invited.headers["location"])
    assert finished.status_code == 200 and "rita@gama.example" in finished.text


async def test_an_operator_cannot_create_a_company(database, operator_client):
    page = await operator_client.get("/staff/onboarding")
    assert page.status_code == 200 and 'action="/staff/onboarding"' not in page.text
    answer = await _post(operator_client, "/staff/onboarding", "/staff/onboarding", COMPANY)
    assert answer.status_code == 403
    async with database.system() as session:
        assert (await session.execute(select(Tenant).where(Tenant.slug == "gama"))).first() is None


async def test_settings_page_changes_are_audited_and_hidden_from_unassigned_operators(database, operator_client):
    tenants = operator_client.tenants
    own, foreign = f"/staff/tenants/{tenants.a.id}/settings", f"/staff/tenants/{tenants.b.id}/settings"
    page = await operator_client.get(own)
    assert page.status_code == 200
    saved = await _post(operator_client, own, own, {"timezone": "America/Manaus", "locale": "en",
                                                     "api_key_max_days": "60", "api_rate_limit_per_minute": "",
                                                     "reason": "cliente pediu"})
    assert saved.status_code == 303
    refused = await _post(operator_client, own, own, {"timezone": "Nowhere", "locale": "pt-BR",
                                                       "api_key_max_days": "", "api_rate_limit_per_minute": ""})
    assert refused.status_code == 422 and 'id="e-timezone"' in refused.text
    suspended = await _post(operator_client, own, f"{own}/status", {"action": "suspend", "reason": ""})
    assert suspended.status_code == 422 and 'id="e-reason"' in suspended.text

    assert (await operator_client.get(foreign)).status_code == 404
    token = csrf_of(page.text)
    for action in ("", "/status", "/host", "/branding"):
        answer = await operator_client.client.post(f"{foreign}{action}", headers=operator_client.headers,
                                                   data={"_csrf_token": token, "timezone": "UTC", "action": "suspend",
                                                         "reason": "x", "custom_host": "evil.example"})
        assert answer.status_code == 404, action
    async with database.system() as session:
        a, b = await session.get(Tenant, tenants.a.id), await session.get(Tenant, tenants.b.id)
        assert (a.timezone, a.locale, a.api_key_max_days) == ("America/Manaus", "en", 60)
        assert (b.timezone, b.status.value, b.pending_host) == ("America/Sao_Paulo", "active", None)
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.action == "tenant.timezone_changed"))
                   ).scalars().all()
    assert [(e.tenant_id, e.actor_label, e.detail["before"], e.detail["after"], e.reason) for e in entries] == [
        (tenants.a.id, "otto@provider.example", "America/Sao_Paulo", "America/Manaus", "cliente pediu")]
