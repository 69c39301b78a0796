"""A tenant's settings through the staff API: the same service calls as the console and the CLI, fields
named in refusals, a custom host verified against a local DNS server, 404 for an unassigned operator."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.web.app import create_app
from tests.providers.dns import dns_server
from tests.web.api.test_staff import _token, staff  # noqa: F401  fixture


async def test_settings_and_custom_host_through_the_staff_api(database, tenants, staff):  # noqa: F811
    with dns_server() as dns:
        settings = database.settings.model_copy(update={"dns_nameserver": dns.nameserver})
        async with AsyncTestClient(app=create_app(settings)) as client:
            admin = await _token(client, "admin@provider.example")
            operator = await _token(client, "op@provider.example")
            base = f"/api/v1/staff/tenants/{tenants.a.id}"

            answer = await client.patch(f"{base}/settings", headers=operator,
                                        json={"timezone": "America/Recife", "api_key_max_days": 30})
            assert answer.status_code == 200, answer.text
            assert (answer.json()["timezone"], answer.json()["api_key_max_days"]) == ("America/Recife", 30)
            refused = await client.patch(f"{base}/settings", headers=operator, json={"timezone": "Nowhere/Town"})
            assert refused.status_code == 422 and "timezone" in refused.text

            # The operator serves tenant A only: B is a 404 like a missing tenant, and nothing changes.
            hidden = await client.patch(f"/api/v1/staff/tenants/{tenants.b.id}/settings", headers=operator,
                                        json={"locale": "en"})
            assert hidden.status_code == 404

            asked = await client.put(f"{base}/custom-host", headers=admin, json={"host": "portal.alfa.example"})
            proof = asked.json()["host_verification"]
            assert asked.json()["pending_host"] == "portal.alfa.example" and asked.json()["custom_host"] is None
            early = await client.post(f"{base}/custom-host/verify", headers=admin)
            assert early.status_code == 422 and "custom_host" in early.text
            dns.publish(proof["name"], proof["value"])
            verified = await client.post(f"{base}/custom-host/verify", headers=admin)
            assert verified.status_code == 200 and verified.json()["custom_host"] == "portal.alfa.example"

    async with database.system() as session:
        actions = set((await session.execute(select(AuditEntry.action).where(AuditEntry.tenant_id == tenants.a.id)))
                      .scalars())
        assert {"tenant.timezone_changed", "tenant.api_key_max_days_changed", "tenant.custom_host_requested",
                "tenant.custom_host_verified"} <= actions
        assert not (await session.execute(select(AuditEntry).where(AuditEntry.tenant_id == tenants.b.id,
                                                                   AuditEntry.action.like("tenant.%changed")))).first()
