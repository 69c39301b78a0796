"""Outbound calls as each provider documents them, against the local provider server."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from backoffice.connectors.asaas import Asaas
from backoffice.connectors.directory import connection_of
from backoffice.connectors.focusnfe import FocusNfe, FocusNfeIssuer, make_ref
from backoffice.connectors.http import ProviderError
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.common import segment
from backoffice.connectors.kinds import MalformedPayload
from backoffice.connectors.service import create_instance, get_instance, open_context
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.events.models import Event
from tests.connectors.conftest import FAST_HTTP, PROVIDER_ADMIN, Answer, connector_settings, make_instance
from tests.platform.security.test_outbound import dns  # noqa: F401  (plays DNS for the check)


async def _context(database, tenant_id, kind, config):
    instance_id = await make_instance(database, tenant_id, kind, config)
    async with database.tenant(tenant_id) as session:
        instance = await get_instance(session, instance_id)
    return instance, open_context(instance, connector_settings(database), **FAST_HTTP)


async def test_asaas_creates_customer_and_charge_with_the_access_token(database, tenants, provider):
    _, ctx = await _context(database, tenants.a.id, "asaas",
                            {"base_url": provider.url, "api_key": "$aact_key", "webhook_token": "t"})
    provider.on("POST", "/v3/customers", Answer(200, {"id": "cus_new"}))
    provider.on("POST", "/v3/payments", Answer(200, {"id": "pay_new", "status": "PENDING"}))
    customer = await Asaas().create_customer(ctx, name="Padaria Estrela", tax_id="11222333000181",
                                             email="p@example.com")
    charge = await Asaas().create_charge(ctx, customer=customer["id"], amount_cents=19990, due_date="2026-12-05",
                                         billing_type="PIX", description="Plano Pro")
    assert charge["id"] == "pay_new"
    [sent_customer] = provider.requests("POST", "/v3/customers")
    [sent_charge] = provider.requests("POST", "/v3/payments")
    assert sent_customer.headers["access_token"] == sent_charge.headers["access_token"] == "$aact_key"
    assert sent_customer.json() == {"name": "Padaria Estrela", "cpfCnpj": "11222333000181", "email": "p@example.com"}
    assert sent_charge.json() == {"customer": "cus_new", "billingType": "PIX", "value": "199.90",
                                  "dueDate": "2026-12-05", "description": "Plano Pro"}


async def test_asaas_charge_is_not_repeated_on_a_500(database, tenants, provider):
    # Asaas has no idempotency key: a repeat could charge twice, so the failure goes back to the caller.
    _, ctx = await _context(database, tenants.a.id, "asaas",
                            {"base_url": provider.url, "api_key": "k", "webhook_token": "t"})
    provider.on("POST", "/v3/payments", Answer(500), Answer(200, {"id": "pay_new"}))
    with pytest.raises(ProviderError) as failed:
        await Asaas().create_charge(ctx, customer="cus_1", amount_cents=100, due_date="2026-12-05")
    assert failed.value.retryable and len(provider.requests("POST", "/v3/payments")) == 1


async def test_focusnfe_issue_is_idempotent_by_ref_and_retried(database, tenants, provider):
    _, ctx = await _context(database, tenants.a.id, "focusnfe", {"base_url": provider.url, "token": "tok"})
    ref = make_ref(tenants.a.customer_ids[0], "2026-11")
    provider.on("POST", "/v2/nfse", Answer(502), Answer(202, {"ref": ref, "status": "processando_autorizacao"}))
    answer = await FocusNfe().issue(ctx, ref, {"data_emissao": "2026-11-02", "servico": {"valor_servicos": 199.9}})
    assert answer["status"] == "processando_autorizacao"
    sent = provider.requests("POST", "/v2/nfse")
    assert len(sent) == 2 and {s.query for s in sent} == {f"ref={ref}"}
    assert sent[0].headers["authorization"] == "Basic " + base64.b64encode(b"tok:").decode()


async def test_focusnfe_polling_stores_the_same_event_as_the_hook_once(database, tenants, provider):
    a = tenants.a
    ref = make_ref(a.customer_ids[0], "2026-11")
    instance, _ = await _context(database, a.id, "focusnfe", {"base_url": provider.url, "token": "tok"})
    provider.on("GET", f"/v2/nfse/{ref}", Answer(200, {"ref": ref, "status": "processando_autorizacao"}),
                Answer(200, {"ref": ref, "status": "autorizado", "numero": "77", "url": "https://nf.example/77"}))
    for _ in range(3):
        async with database.tenant(a.id) as session:
            instance = await session.get(ConnectorInstance, (a.id, instance.id))
            ctx = open_context(instance, connector_settings(database), **FAST_HTTP)
            nota = await FocusNfeIssuer(ctx, instance, connection_of(instance)).status(ref)
            for event in nota.events:  # what the invoices routine does with a nota it follows
                await ingest(session, a.id, event)
    async with database.tenant(a.id) as session:
        stored = list((await session.execute(select(Event))).scalars())
    assert [(e.type, e.external_id, e.data["document"]["number"]) for e in stored] == [
        ("invoice.issued", f"{ref}:autorizado", "77")]
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(Event))).all() == []


# --- where calls may go ---------------------------------------------------------------------------------

async def test_a_host_that_resolves_inward_after_the_save_is_refused_at_connect_time(database, tenants, provider, dns):
    """Saved with strict settings while the name pointed at a public address; it now resolves to the loopback
    address the stand-in listens on. The call is refused there, and the tenant's key goes nowhere."""
    port = int(provider.url.rsplit(":", 1)[1])
    strict = database.settings.model_copy(update={"allow_private_targets": False})
    dns["asaas-proxy.example.com"] = ["200.147.67.142"]
    async with database.provider(tenants.a.id) as session:
        instance = await create_instance(
            session, kind="asaas", name="asaas", acting=PROVIDER_ADMIN, settings=strict,
            host_override="asaas-proxy.example.com",
            config={"base_url": f"http://asaas-proxy.example.com:{port}", "api_key": "$aact_key", "webhook_token": "t"})
    provider.on("GET", "/v3/payments/pay_1", Answer(200, {"id": "pay_1"}))
    dns["asaas-proxy.example.com"] = ["127.0.0.1"]
    with pytest.raises(ProviderError) as refused:
        await Asaas().fetch_payment(open_context(instance, strict, **FAST_HTTP), "pay_1")
    assert not refused.value.retryable and "asaas-proxy.example.com resolves to 127.0.0.1" in str(refused.value)
    assert provider.seen == []
    # The same call with private targets allowed does reach the stand-in: the refusal above was the check's.
    assert await Asaas().fetch_payment(open_context(instance, connector_settings(database), **FAST_HTTP),
                                       "pay_1") == {"id": "pay_1"}


async def test_a_provider_connector_calls_only_its_providers_hosts(database, tenants, provider):
    """A row changed behind the service's back (or an override withdrawn) still cannot send the key elsewhere."""
    instance, _ = await _context(database, tenants.a.id, "asaas",
                                 {"base_url": provider.url, "api_key": "k", "webhook_token": "t"})
    instance.config = {**instance.config, "host_override": None}
    with pytest.raises(ProviderError, match="127.0.0.1 is not one of this connector's hosts") as refused:
        await Asaas().fetch_payment(open_context(instance, connector_settings(database), **FAST_HTTP), "pay_1")
    assert not refused.value.retryable and provider.seen == []


async def test_an_smtp_server_that_resolves_inward_is_refused_at_connect_time(database, dns):
    from email.message import EmailMessage

    from backoffice.connectors.smtp import SmtpConfig, send_message
    from backoffice.tenants.effects.ports import DeliveryError

    dns["smtp.example.com"] = ["169.254.169.254"]
    config = SmtpConfig(host="smtp.example.com", port=587, sender_address="no-reply@example.com")
    with pytest.raises(DeliveryError, match="smtp.example.com resolves to 169.254.169.254") as refused:
        await send_message(config, EmailMessage(), database.settings.model_copy(update={"allow_private_targets": False}))
    assert not refused.value.retryable


# --- ids in paths ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("hostile", ["../../v3/customers?x=", "pay_1/../../customers", "pay_1?limit=100", "pay_1#",
                                     "pay_%2e%2e", "pay_1\n", "cus_1", "", None, 42])
async def test_an_asaas_payment_id_out_of_shape_is_never_put_in_a_path(database, tenants, provider, hostile):
    _, ctx = await _context(database, tenants.a.id, "asaas",
                            {"base_url": provider.url, "api_key": "k", "webhook_token": "t"})
    with pytest.raises(MalformedPayload, match="payment.id: expected an Asaas payment id"):
        await Asaas().fetch_payment(ctx, hostile)
    assert provider.seen == []


@pytest.mark.parametrize("hostile", ["../nfe/1", "a/b", "a?b=c", "ref\n", "x" * 101, ""])
async def test_a_focusnfe_ref_out_of_shape_is_never_put_in_a_path(database, tenants, provider, hostile):
    _, ctx = await _context(database, tenants.a.id, "focusnfe", {"base_url": provider.url, "token": "tok"})
    with pytest.raises(MalformedPayload, match="ref: expected"):
        await FocusNfe().status(ctx, hostile)
    assert provider.seen == []


def test_ids_are_escaped_as_one_path_segment():
    import re

    assert segment("pay_1", re.compile(r".+"), "id", "anything") == "pay_1"
    assert segment("a/../b?c#d", re.compile(r".+"), "id", "anything") == "a%2F..%2Fb%3Fc%23d"
