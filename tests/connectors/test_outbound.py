"""Outbound calls as each provider documents them, against the local provider server."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from backoffice.connectors.asaas import Asaas
from backoffice.connectors.focusnfe import FocusNfe, make_ref, poll
from backoffice.connectors.http import ProviderError
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import get_instance, open_context
from backoffice.tenants.events.models import Event
from tests.connectors.conftest import FAST_HTTP, Answer, connector_settings, make_instance


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
            await poll(session, instance, ref, connector_settings(database), **FAST_HTTP)
    async with database.tenant(a.id) as session:
        stored = list((await session.execute(select(Event))).scalars())
    assert [(e.type, e.external_id, e.data["document"]["number"]) for e in stored] == [
        ("invoice.issued", f"{ref}:autorizado", "77")]
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(Event))).all() == []
