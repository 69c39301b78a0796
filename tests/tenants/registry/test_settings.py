"""Changing a company's settings after creation: each change one audited action with its value before and
after, all or nothing; the custom host routes only once its DNS TXT proof is seen (a local DNS server)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.tenants.apikeys.service import create_api_key
from backoffice.tenants.registry.models import Tenant, TenantStatus
from backoffice.tenants.registry.onboarding import STEPS, complete_step, next_step
from backoffice.tenants.registry.queries import tenant_slug_for_host
from backoffice.tenants.registry.service import (
    reactivate_tenant, suspend_tenant, update_branding,
)
from backoffice.tenants.registry.settings import (
    HostNotVerified, change_settings, remove_custom_host, request_custom_host, verification_record,
    verify_custom_host,
)
from tests.providers.dns import dns_server

STAFF = Actor(type="staff", label="ana@provider.example", id="00000000-0000-0000-0000-000000000001")


async def _audit(database, tenant_id, prefix="tenant.") -> list[AuditEntry]:
    async with database.system() as session:
        rows = (await session.execute(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id,
                                                               AuditEntry.action.startswith(prefix))
                                      .order_by(AuditEntry.occurred_at, AuditEntry.action))).scalars().all()
    return [row for row in rows if row.action != "tenant.created"]


async def test_each_setting_change_is_audited_with_before_and_after(database, tenants):
    async with database.system() as session:
        tenant = await change_settings(session, tenants.a.id, {
            "timezone": "America/Manaus", "locale": "en", "api_key_max_days": "90",
            "api_rate_limit_per_minute": 120}, acting=STAFF, reason="contract signed")
        assert (tenant.timezone, tenant.locale, tenant.api_key_max_days, tenant.api_rate_limit_per_minute) == (
            "America/Manaus", "en", 90, 120)
    entries = {e.action: e for e in await _audit(database, tenants.a.id)}
    assert entries["tenant.timezone_changed"].detail["before"] == "America/Sao_Paulo"
    assert entries["tenant.timezone_changed"].detail["after"] == "America/Manaus"
    assert entries["tenant.locale_changed"].detail == {"before": "pt-BR", "after": "en", "setting": "locale"}
    assert entries["tenant.api_key_max_days_changed"].detail["after"] == 90
    assert entries["tenant.api_rate_limit_changed"].detail["before"] is None
    assert all(e.actor_label == STAFF.label and e.reason == "contract signed" for e in entries.values())
    assert await _audit(database, tenants.b.id) == []  # the other company untouched

    # A change to the same value changes nothing and records nothing.
    async with database.system() as session:
        await change_settings(session, tenants.a.id, {"locale": "en"}, acting=STAFF)
    assert len(await _audit(database, tenants.a.id)) == 4


async def test_bad_settings_name_each_field_and_write_nothing(database, tenants):
    with pytest.raises(ValidationFailed) as refused:
        async with database.system() as session:
            await change_settings(session, tenants.a.id, {"timezone": "Mars/Olympus", "locale": "fr",
                                                          "api_key_max_days": 0, "api_rate_limit_per_minute": "lots",
                                                          "slug": "x"}, acting=STAFF)
    fields = {e.field for e in refused.value.errors}
    assert fields == {"timezone", "locale", "api_key_max_days", "api_rate_limit_per_minute", "slug"}
    async with database.system() as session:
        tenant = await session.get(Tenant, tenants.a.id)
        assert (tenant.timezone, tenant.locale, tenant.api_key_max_days) == ("America/Sao_Paulo", "pt-BR", None)
    assert await _audit(database, tenants.a.id) == []


async def test_the_rate_cap_is_a_new_keys_rate_and_its_ceiling(database, tenants):
    async with database.system() as session:
        await change_settings(session, tenants.a.id, {"api_rate_limit_per_minute": 120}, acting=STAFF)
    async with database.provider(tenants.a.id) as session:
        new = await create_api_key(session, name="erp", scopes=["customers:read"], acting=STAFF)
        assert new.key.rate_limit_per_minute == 120
    with pytest.raises(ValidationFailed) as refused:
        async with database.provider(tenants.a.id) as session:
            await create_api_key(session, name="erp2", scopes=["customers:read"], rate_limit_per_minute=600,
                                 acting=STAFF)
    assert refused.value.errors[0].field == "rate_limit_per_minute"
    async with database.provider(tenants.b.id) as session:  # another company keeps the default
        assert (await create_api_key(session, name="erp", scopes=["customers:read"], acting=STAFF)
                ).key.rate_limit_per_minute == 600


async def test_status_and_branding_changes_record_before_and_after(database, tenants):
    async with database.system() as session:
        tenant = await session.get(Tenant, tenants.a.id)
        await suspend_tenant(session, tenant, reason="contract ended", acting=STAFF)
        await reactivate_tenant(session, tenant, reason="renewed", acting=STAFF)
        await update_branding(session, tenants.a.id, colours={"primary": "#112233"}, acting=STAFF)
        assert tenant.status == TenantStatus.ACTIVE
    entries = {e.action: e for e in await _audit(database, tenants.a.id)}
    assert entries["tenant.suspended"].detail == {"before": "active", "after": "suspended"}
    assert entries["tenant.suspended"].reason == "contract ended"
    assert entries["tenant.reactivated"].detail == {"before": "suspended", "after": "active"}
    branding = entries["tenant.branding_changed"].detail
    assert branding["before"]["primary"] == "#1f4e79" and branding["after"]["primary"] == "#112233"


async def test_a_custom_host_routes_only_once_its_txt_record_is_seen(database, tenants):
    with dns_server() as dns:
        settings = database.settings.model_copy(update={"dns_nameserver": dns.nameserver})
        async with database.system() as session:
            tenant = await request_custom_host(session, tenants.a.id, "Portal.Alfa.example.com.br.",
                                               settings=settings, acting=STAFF)
            proof = verification_record(tenant)
        assert proof["name"] == "_backoffice-verify.portal.alfa.example.com.br"
        assert proof["value"].startswith("bo-verify=") and len(proof["value"]) > 30
        async with database.anonymous() as session:  # not routed while unproven
            assert await tenant_slug_for_host(session, "portal.alfa.example.com.br") is None

        # No record yet, then a wrong one: refused with what was found, nothing written.
        for published in ((), ("bo-verify=someone-elses-token",)):
            if published:
                dns.publish(proof["name"], *published)
            with pytest.raises(HostNotVerified) as refused:
                async with database.system() as session:
                    await verify_custom_host(session, tenants.a.id, settings=settings, acting=STAFF)
            assert refused.value.errors[0].field == "custom_host"
            assert proof["value"] in refused.value.errors[0].message
        assert "someone-elses-token" in refused.value.errors[0].message

        # Asking again for the same host keeps the token (a record already published stays valid).
        async with database.system() as session:
            again = await request_custom_host(session, tenants.a.id, "portal.alfa.example.com.br",
                                              settings=settings, acting=STAFF)
            assert verification_record(again) == proof

        dns.publish(proof["name"], "v=spf1 -all", proof["value"])
        async with database.system() as session:
            tenant = await verify_custom_host(session, tenants.a.id, settings=settings, acting=STAFF)
            assert tenant.custom_host == "portal.alfa.example.com.br" and tenant.pending_host is None
            assert tenant.host_verified_at is not None
        assert (proof["name"], "TXT") in dns.questions
    async with database.anonymous() as session:
        assert await tenant_slug_for_host(session, "portal.alfa.example.com.br") == tenants.a.slug
    actions = [(e.action, e.detail.get("after")) for e in await _audit(database, tenants.a.id)]
    assert actions == [("tenant.custom_host_requested", "portal.alfa.example.com.br"),
                       ("tenant.custom_host_verified", "portal.alfa.example.com.br")]

    # Another company cannot ask for it; removing it stops the routing.
    with pytest.raises(Conflict):
        async with database.system() as session:
            await request_custom_host(session, tenants.b.id, "portal.alfa.example.com.br", settings=settings,
                                      acting=STAFF)
    async with database.system() as session:
        await remove_custom_host(session, tenants.a.id, acting=STAFF, reason="moved")
    async with database.anonymous() as session:
        assert await tenant_slug_for_host(session, "portal.alfa.example.com.br") is None


@pytest.mark.parametrize("host", ["https://portal.example.com", "portal", "10.0.0.1", "localhost", "a..b.com",
                                  "portal.example.com:8443", "-x.example.com"])
async def test_bad_hosts_are_refused_by_name(database, tenants, host):
    with pytest.raises(ValidationFailed) as refused:
        async with database.system() as session:
            await request_custom_host(session, tenants.a.id, host, settings=database.settings, acting=STAFF)
    assert refused.value.errors[0].field == "custom_host"
    async with database.system() as session:
        assert (await session.get(Tenant, tenants.a.id)).pending_host is None


async def test_a_host_set_before_verification_existed_keeps_routing(database, tenants):
    """Hosts set directly (before this revision) stay in use; asking for another waits for its proof
    while the old one keeps serving."""
    from sqlalchemy import update

    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.a.id).values(custom_host="old.alfa.example"))
    async with database.system() as session:
        await request_custom_host(session, tenants.a.id, "new.alfa.example", settings=database.settings,
                                  acting=STAFF)
    async with database.anonymous() as session:
        assert await tenant_slug_for_host(session, "old.alfa.example") == tenants.a.slug
        assert await tenant_slug_for_host(session, "new.alfa.example") is None


async def test_onboarding_resumes_at_the_first_step_not_done(database, tenants):
    async with database.system() as session:
        tenant = await session.get(Tenant, tenants.a.id)
        assert next_step(tenant) == "branding"
        await complete_step(session, tenants.a.id, "host", acting=STAFF, skipped=True)
        await complete_step(session, tenants.a.id, "branding", acting=STAFF)
        await complete_step(session, tenants.a.id, "branding", acting=STAFF)  # once only
        assert next_step(tenant) == "connectors"
        with pytest.raises(ValidationFailed):
            await complete_step(session, tenants.a.id, "nope", acting=STAFF)
    async with database.system() as session:
        assert next_step(await session.get(Tenant, tenants.a.id)) == "connectors"
    steps = [e.detail["step"] for e in await _audit(database, tenants.a.id, "tenant.onboarding")]
    assert steps == ["host", "branding"]
    assert STEPS[0] == "tenant"


async def test_only_companies_started_in_the_flow_are_listed_as_being_onboarded(database, tenants):
    from backoffice.tenants.registry.queries import onboarding_in_progress

    async with database.system() as session:
        assert await onboarding_in_progress(session) == []  # created elsewhere: not in the flow
        await complete_step(session, tenants.a.id, "tenant", acting=STAFF)
        await complete_step(session, tenants.b.id, "tenant", acting=STAFF)
        assert {t.id for t in await onboarding_in_progress(session)} == {tenants.a.id, tenants.b.id}
        assert [t.id for t in await onboarding_in_progress(session, only=[tenants.b.id])] == [tenants.b.id]
        for step in STEPS[1:]:
            await complete_step(session, tenants.a.id, step, acting=STAFF)
        assert [t.id for t in await onboarding_in_progress(session)] == [tenants.b.id]
