"""Provider staff configure a tenant's connectors through the staff API: secrets in once, redacted out,
audited, and only for the tenants the staff member serves."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import load_config
from backoffice.platform.audit.models import AuditEntry
from tests.web.api.test_staff import _token, staff  # noqa: F401  fixture

ASAAS = {"kind": "asaas", "name": "Asaas produção",
         "config": {"base_url": "https://api.asaas.com", "api_key": "aact_live_SECRET123", "webhook_token": "tok-SECRET"}}


async def test_staff_configure_a_tenants_connector_with_secrets_kept_encrypted(client, database, tenants, staff):
    a, b = tenants.a, tenants.b
    operator = await _token(client, "op@provider.example")
    kinds = (await client.get("/api/v1/staff/connector-kinds", headers=operator)).json()
    asaas = next(k for k in kinds if k["name"] == "asaas")
    assert asaas["inbound"] is True and set(asaas["secret_fields"]) == {"api_key", "webhook_token"}

    created = await client.post(f"/api/v1/staff/tenants/{a.id}/connectors", json=ASAAS, headers=operator)
    assert created.status_code == 201, created.text
    body = created.json()
    assert "SECRET" not in created.text and body["config"]["base_url"] == "https://api.asaas.com/"
    assert body["config"]["api_key"] != "aact_live_SECRET123" and body["enabled"] is True

    async with database.tenant(a.id) as session:
        [instance] = (await session.execute(select(ConnectorInstance))).scalars().all()
        assert "SECRET" not in str(instance.config)  # encrypted at rest
        assert load_config(instance, client.app.state.settings).api_key.get_secret_value() == "aact_live_SECRET123"
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "connector.create"))).scalars().all()
    assert len(audit) == 1 and audit[0].actor_type == "staff" and "SECRET" not in str(audit[0].detail)

    listed = await client.get(f"/api/v1/staff/tenants/{a.id}/connectors", headers=operator)
    assert [c["id"] for c in listed.json()] == [body["id"]] and "SECRET" not in listed.text

    disabled = await client.patch(f"/api/v1/staff/tenants/{a.id}/connectors/{body['id']}",
                                  json={"enabled": False, "reason": "rotating the gateway"}, headers=operator)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False

    # Another tenant: the operator is not mobilised on B (404), and A's connector id under B is 404 too.
    assert (await client.get(f"/api/v1/staff/tenants/{b.id}/connectors", headers=operator)).status_code == 404
    admin = await _token(client, "admin@provider.example")
    assert (await client.get(f"/api/v1/staff/tenants/{b.id}/connectors", headers=admin)).json() == []
    foreign = await client.get(f"/api/v1/staff/tenants/{b.id}/connectors/{body['id']}", headers=admin)
    assert foreign.status_code == 404


async def test_bad_connector_input_names_the_field_and_writes_nothing(client, database, tenants, staff):
    a = tenants.a
    admin = await _token(client, "admin@provider.example")
    unknown = await client.post(f"/api/v1/staff/tenants/{a.id}/connectors", headers=admin,
                                json={**ASAAS, "kind": "paypal"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "kind"
    missing = await client.post(f"/api/v1/staff/tenants/{a.id}/connectors", headers=admin,
                                json={**ASAAS, "config": {"api_key": "x"}})
    assert missing.status_code == 422
    assert "config.webhook_token" in {e["field"] for e in missing.json()["errors"]}
    async with database.tenant(a.id) as session:
        assert (await session.execute(select(ConnectorInstance))).all() == []
