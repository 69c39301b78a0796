"""Provider staff configure a tenant's connectors through the staff API: secrets in once, redacted out,
audited, and only for the tenants the staff member serves."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import load_config
from backoffice.platform.audit.models import AuditEntry
from tests.platform.security.test_outbound import dns  # noqa: F401  fixture
from tests.web.api.test_staff import _token, staff  # noqa: F401  fixture

ASAAS_ADDRESS = "18.231.0.10"  # a public address, as api.asaas.com's are
ASAAS = {"kind": "asaas", "name": "Asaas produção",
         "config": {"base_url": "https://api.asaas.com", "api_key": "aact_live_SECRET123", "webhook_token": "tok-SECRET"}}


async def test_staff_configure_a_tenants_connector_with_secrets_kept_encrypted(client, database, tenants, staff, dns):
    a, b = tenants.a, tenants.b
    dns["api.asaas.com"] = [ASAAS_ADDRESS]  # the save resolves and checks the host
    operator = await _token(client, "op@provider.example")
    kinds = (await client.get("/api/v1/staff/connector-kinds", headers=operator)).json()["data"]
    asaas = next(k for k in kinds if k["name"] == "asaas")
    assert asaas["inbound"] is True and set(asaas["secret_fields"]) == {"api_key", "webhook_token"}
    assert "api.asaas.com" in asaas["hosts"]

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
    assert [c["id"] for c in listed.json()["data"]] == [body["id"]] and "SECRET" not in listed.text

    disabled = await client.patch(f"/api/v1/staff/tenants/{a.id}/connectors/{body['id']}",
                                  json={"enabled": False, "reason": "rotating the gateway"}, headers=operator)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False

    # Another tenant: the operator is not mobilised on B (404), and A's connector id under B is 404 too.
    assert (await client.get(f"/api/v1/staff/tenants/{b.id}/connectors", headers=operator)).status_code == 404
    admin = await _token(client, "admin@provider.example")
    assert (await client.get(f"/api/v1/staff/tenants/{b.id}/connectors", headers=admin)).json() == {"data": [], "next_cursor": None}
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


# --- where a connector may point ------------------------------------------------------------------------

def _asaas(base_url: str, **extra) -> dict:
    return {**ASAAS, "config": {**ASAAS["config"], "base_url": base_url}, **extra}


async def _connectors(database, tenant_id) -> list[ConnectorInstance]:
    async with database.provider(tenant_id) as session:
        return list((await session.execute(select(ConnectorInstance))).scalars())


async def test_a_connector_pointed_inward_is_refused_when_saved_naming_the_field(client, database, tenants, staff, dns):
    a = tenants.a
    admin = await _token(client, "admin@provider.example")
    url = f"/api/v1/staff/tenants/{a.id}/connectors"
    # Even a provider admin's override does not let a provider connector reach the platform's network.
    for target in ("127.0.0.1", "169.254.169.254", "100.64.0.1", "[::ffff:10.0.0.1]", "[2002:a9fe:a9fe::1]"):
        refused = await client.post(url, headers=admin, json=_asaas(f"https://{target}", host_override=target))
        assert refused.status_code == 422, (target, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["config.base_url"]
        assert "not a public address" in refused.json()["errors"][0]["message"]
    dns["metadata.example.com"] = ["169.254.169.254"]
    refused = await client.post(url, headers=admin, json=_asaas("https://metadata.example.com",
                                                                host_override="metadata.example.com"))
    assert refused.status_code == 422 and "metadata.example.com resolves to 169.254.169.254" in refused.text
    # The tenant's own addresses (SMTP, chat, its platform) are checked the same way.
    smtp = {"kind": "smtp", "name": "mail", "config": {"host": "127.0.0.1", "sender_address": "no-reply@a.example"}}
    refused = await client.post(url, headers=admin, json=smtp)
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["config.host"]
    chat = {"kind": "chat", "name": "chat", "config": {"webhook_url": "https://[fd00:ec2::254]/hook/SECRET"}}
    refused = await client.post(url, headers=admin, json=chat)
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["config.webhook_url"]
    assert "SECRET" not in refused.text
    assert await _connectors(database, a.id) == []

    # An update is checked like a create.
    dns["api.asaas.com"] = [ASAAS_ADDRESS]
    created = await client.post(url, headers=admin, json=ASAAS)
    assert created.status_code == 201, created.text
    moved = await client.patch(f"{url}/{created.json()['id']}", headers=admin,
                               json={"config": {"base_url": "https://169.254.169.254"}})
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "config.base_url"
    [kept] = await _connectors(database, a.id)
    assert kept.config["base_url"] == "https://api.asaas.com/"


async def test_only_a_provider_admin_takes_a_provider_connector_off_its_documented_hosts(
        client, database, tenants, staff, dns):
    a = tenants.a
    operator = await _token(client, "op@provider.example")
    admin = await _token(client, "admin@provider.example")
    url = f"/api/v1/staff/tenants/{a.id}/connectors"
    dns["api.asaas.com"] = [ASAAS_ADDRESS]
    dns["asaas-proxy.example.com"] = ["200.147.67.142"]  # public: only the host list stands in the way

    for base_url in ("https://asaas-proxy.example.com", "https://api.asaas.com.evil.example"):
        refused = await client.post(url, headers=operator, json=_asaas(base_url))
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == "config.base_url" and "not one of Asaas (payments)'s hosts" in error["message"]
    sneaked = await client.post(url, headers=operator, json=_asaas(
        "https://asaas-proxy.example.com", config={**ASAAS["config"], "base_url": "https://asaas-proxy.example.com",
                                                   "host_override": "asaas-proxy.example.com"}))
    assert sneaked.status_code == 422 and sneaked.json()["errors"][0]["field"] == "config.host_override"
    forbidden = await client.post(url, headers=operator, json=_asaas("https://asaas-proxy.example.com",
                                                                     host_override="asaas-proxy.example.com"))
    assert forbidden.status_code == 403
    assert await _connectors(database, a.id) == []

    # The operator's own connector on the documented host; only the admin may move it off.
    created = await client.post(url, headers=operator, json=ASAAS)
    assert created.status_code == 201, created.text
    connector = f"{url}/{created.json()['id']}"
    moved = await client.patch(connector, headers=operator, json={"host_override": "asaas-proxy.example.com"})
    assert moved.status_code == 403
    allowed = await client.patch(connector, headers=admin, json={
        "host_override": "asaas-proxy.example.com", "config": {"base_url": "https://asaas-proxy.example.com/"},
        "reason": "the client routes Asaas through its egress proxy"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["config"]["host_override"] == "asaas-proxy.example.com"
    assert allowed.json()["config"]["base_url"] == "https://asaas-proxy.example.com/"
    # The operator may now edit the connector, but not pick yet another host.
    other = await client.patch(connector, headers=operator, json={"config": {"base_url": "https://elsewhere.example"}})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "config.base_url"

    async with database.provider(a.id) as session:
        [entry] = (await session.execute(select(AuditEntry).where(AuditEntry.action == "connector.host_override"))
                   ).scalars().all()
    assert (entry.actor_type, entry.actor_label) == ("staff", "admin@provider.example")
    assert entry.detail["before"] is None and entry.detail["after"] == "asaas-proxy.example.com"
    assert entry.reason == "the client routes Asaas through its egress proxy"
    assert "api.asaas.com" in entry.detail["documented_hosts"]

    # A create with an override, by the admin, is audited the same way.
    created = await client.post(url, headers=admin, json=_asaas(
        "https://asaas-proxy.example.com", name="Asaas via proxy", host_override="asaas-proxy.example.com"))
    assert created.status_code == 201, created.text
    async with database.provider(a.id) as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.action == "connector.host_override"))
                   ).scalars().all()
    assert len(entries) == 2 and {e.actor_label for e in entries} == {"admin@provider.example"}
