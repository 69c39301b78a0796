"""Testing a connector's connection: one cheap documented call to the provider's stand-in on loopback, its
answer shown (success and refusal), the instance's health updated and the test audited; Asaas's account
read, Focus NFe's probe, an SMTP server's replies, a chat webhook and the tenant's platform ping."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from backoffice.connectors.checks import check_connection
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import NotFound
from tests.connectors.conftest import FAST_HTTP, Answer, connector_settings, make_instance
from tests.connectors.test_ports import smtp_config, smtp_server  # noqa: F401  fixture
from tests.providers.asaas import FakeAsaas, serving

STAFF = Actor(type="staff", label="ana@provider.example", id=str(uuid.uuid4()))


async def _check(database, tenant_id, instance_id):
    async with database.provider(tenant_id) as session:
        return await check_connection(session, instance_id, acting=STAFF, settings=connector_settings(database),
                                      http_options=FAST_HTTP)


async def _instance(database, tenant_id, instance_id) -> ConnectorInstance:
    async with database.provider(tenant_id) as session:
        return await session.get(ConnectorInstance, (tenant_id, instance_id))


async def test_asaas_answers_with_the_account_and_a_wrong_key_with_its_refusal(database, tenants):
    with serving(FakeAsaas()) as fake:
        fake.account("key-alfa").company_name = "Alfa Comércio Ltda"
        good = await make_instance(database, tenants.a.id, "asaas",
                                   {"base_url": fake.url, "api_key": "key-alfa", "webhook_token": "hook"})
        bad = await make_instance(database, tenants.a.id, "asaas",
                                  {"base_url": fake.url, "api_key": "key-unknown", "webhook_token": "hook"},
                                  name="Asaas wrong key")
        ok = await _check(database, tenants.a.id, good)
        refused = await _check(database, tenants.a.id, bad)
        seen = fake.calls("GET", "/v3/myAccount/commercialInfo/")
    assert (ok.ok, ok.status) == (True, "200") and "Alfa Comércio Ltda" in ok.message
    assert (refused.ok, refused.status) == (False, "401")
    assert "A chave de API informada é inválida." in refused.message and "key-unknown" not in refused.message
    assert [call.token for call in seen] == ["key-alfa", "key-unknown"]
    assert (await _instance(database, tenants.a.id, good)).health == Health.OK
    failing = await _instance(database, tenants.a.id, bad)
    assert failing.health == Health.FAILING and "inválida" in failing.last_error
    async with database.system() as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.action == "connector.tested")
                                         .order_by(AuditEntry.occurred_at))).scalars().all()
    assert {(e.tenant_id, e.detail["ok"], e.detail["status"]) for e in entries} == {
        (tenants.a.id, True, "200"), (tenants.a.id, False, "401")}
    assert all(e.actor_label == STAFF.label for e in entries)


async def test_another_tenants_connector_is_not_found(database, tenants):
    with serving(FakeAsaas()) as fake:
        fake.account("key-alfa")
        instance = await make_instance(database, tenants.a.id, "asaas",
                                       {"base_url": fake.url, "api_key": "key-alfa", "webhook_token": "hook"})
        with pytest.raises(NotFound):
            await _check(database, tenants.b.id, instance)
        assert fake.calls() == []


async def test_focusnfe_probe_accepts_a_404_and_reports_a_refused_token(database, tenants, provider):
    provider.on("GET", "/v2/nfse/backoffice-connection-test",
                Answer(404, {"codigo": "nao_encontrado", "mensagem": "Nota fiscal não encontrada"}),
                Answer(401, {"codigo": "permissao_negada", "mensagem": "Token inválido ou expirado"}))
    instance = await make_instance(database, tenants.a.id, "focusnfe", {"base_url": provider.url, "token": "tok"})
    ok = await _check(database, tenants.a.id, instance)
    refused = await _check(database, tenants.a.id, instance)
    assert ok.ok is True and ok.status == "404"
    assert (refused.ok, refused.status) == (False, "401") and "Token inválido ou expirado" in refused.message
    assert provider.requests("GET", "/v2/nfse/backoffice-connection-test")[0].headers["authorization"].startswith("Basic ")


async def test_smtp_check_logs_in_and_sends_nothing(database, tenants, smtp_server):  # noqa: F811
    inbox, port = smtp_server()
    good = await make_instance(database, tenants.a.id, "smtp", smtp_config(port))
    bad = await make_instance(database, tenants.a.id, "smtp", smtp_config(port, password="wrong-password"),
                              name="smtp wrong")
    ok = await _check(database, tenants.a.id, good)
    refused = await _check(database, tenants.a.id, bad)
    assert ok.ok is True and ok.status == "250" and "logged in as aurora" in ok.message
    assert refused.ok is False and "535" in refused.message
    assert inbox.messages == []


async def test_chat_posts_a_test_message_and_the_platform_a_signed_ping(database, tenants, provider):
    provider.on("POST", "/hooks/chat", Answer(200, {"ok": True}))
    provider.on("POST", "/platform", Answer(204), Answer(422, {"error": "unknown command"}))
    chat = await make_instance(database, tenants.a.id, "chat", {"webhook_url": provider.url + "/hooks/chat"})
    platform = await make_instance(database, tenants.a.id, "tenant_platform",
                                   {"url": provider.url + "/platform", "secret": "whsec_" + "A" * 32})
    said = await _check(database, tenants.a.id, chat)
    pinged = await _check(database, tenants.a.id, platform)
    refused = await _check(database, tenants.a.id, platform)
    assert said.ok is True and provider.requests("POST", "/hooks/chat")[0].json()["text"].startswith("Teste")
    assert pinged.ok is True and pinged.status == "204"
    ping = provider.requests("POST", "/platform")[0]
    assert ping.json()["command"] == "ping" and ping.headers["webhook-signature"].startswith("v1,")
    assert (refused.ok, refused.status) == (False, "422")


async def test_webhook_only_kinds_say_there_is_nothing_to_call(database, tenants):
    instance = await make_instance(database, tenants.a.id, "stripe", {"webhook_secret": "whsec_test"})
    result = await _check(database, tenants.a.id, instance)
    assert result.ok is None and "only receives webhooks" in result.message
    assert (await _instance(database, tenants.a.id, instance)).health == Health.UNKNOWN


async def test_stripe_reads_the_balance_with_its_key_and_shows_stripes_refusal(database, tenants, provider):
    provider.on("GET", "/v1/balance",
                Answer(200, {"object": "balance", "livemode": False,
                             "available": [{"amount": 0, "currency": "brl"}], "pending": []}),
                Answer(401, {"error": {"message": "Invalid API Key provided: rk_test_****mbda",
                                       "type": "invalid_request_error"}}))
    instance = await make_instance(database, tenants.a.id, "stripe", {
        "webhook_secret": "whsec_test", "api_key": "rk_test_lambda", "base_url": provider.url})
    ok = await _check(database, tenants.a.id, instance)
    refused = await _check(database, tenants.a.id, instance)
    assert (ok.ok, ok.status) == (True, "200") and "BRL" in ok.message
    assert (refused.ok, refused.status) == (False, "401")
    assert refused.message == "Invalid API Key provided: rk_test_****mbda (HTTP 401)"
    assert provider.requests("GET", "/v1/balance")[0].headers["authorization"] == "Bearer rk_test_lambda"


async def test_clicksign_lists_one_envelope_with_its_token(database, tenants, provider):
    provider.on("GET", "/api/v3/envelopes",
                Answer(200, {"data": [], "meta": {"record_count": 3}, "links": {}}),
                Answer(401, {"errors": [{"status": "401", "title": "Unauthorized",
                                         "detail": "Access Token inválido"}]}))
    instance = await make_instance(database, tenants.a.id, "clicksign", {
        "hmac_secret": "segredo", "access_token": "tok-clicksign", "base_url": provider.url})
    ok = await _check(database, tenants.a.id, instance)
    refused = await _check(database, tenants.a.id, instance)
    assert (ok.ok, ok.message) == (True, "envelopes: 3")
    assert (refused.ok, refused.message) == (False, "Access Token inválido (HTTP 401)")
    seen = provider.requests("GET", "/api/v3/envelopes")[0]
    assert seen.headers["authorization"] == "tok-clicksign" and "page%5Bsize%5D=1" in seen.query
