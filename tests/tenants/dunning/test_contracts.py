"""Late payment per subscription, driven only by Asaas-shaped webhooks on POST /hooks/{tenant}/{instance}:
a customer with two subscriptions, one late, has that one blocked and keeps the other (grace -> block ->
payment -> unblock); the policy "whole customer" blocks both. The Asaas stand-in (tests/providers/asaas.py)
answers the re-fetch of each payment, with the ``subscription`` it belongs to."""

from __future__ import annotations

import json
import uuid

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Lifecycle, LifecycleTransition
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.notifications.models import Notification
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings
from tests.providers.asaas import FakeAsaas, connect, serving
from tests.tenants.conftest import new_customer

pytestmark = pytest.mark.postgres_only
TOKEN = "$aact_contracts_a"
OTHER = "$aact_contracts_b"


@pytest.fixture
async def web(spine):
    async with AsyncTestClient(app=create_app(connector_settings(spine.database))) as client:
        yield client


@pytest.fixture
def asaas():
    with serving(FakeAsaas()) as fake:
        yield fake


async def _hook(web, spine, tenant, instance_id, event: str, payment: dict, evt: str) -> None:
    body = {"id": evt, "event": event, "dateCreated": "2026-11-02 10:00:00",
            "payment": {"object": "payment", "id": payment["id"], "customer": payment["customer"],
                        "value": payment["value"], "status": payment["status"], "dueDate": payment["dueDate"],
                        "subscription": payment.get("subscription")}}
    response = await web.post(f"/hooks/{tenant.slug}/{instance_id}", content=json.dumps(body).encode(),
                              headers={"content-type": "application/json", "asaas-access-token": f"hook-{TOKEN}"})
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    await spine.settle()


async def _two_subscriptions(spine, asaas) -> tuple[uuid.UUID, uuid.UUID, dict[str, uuid.UUID], str]:
    """Tenant A's customer at Asaas with two subscriptions (ERP and PDV), started; tenant B has Asaas too."""
    a = spine.tenants.a
    instance_id = await connect(spine.database, a.id, asaas, TOKEN)
    await connect(spine.database, spine.tenants.b.id, asaas, OTHER)
    cus = asaas.add_customer(TOKEN, name="Mercado Central", cpf_cnpj="04252011000110")["id"]
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Mercado Central",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE, external={"asaas": cus})
    contracts = {}
    async with spine.database.tenant(a.id) as session:
        for code, name, sub in (("erp", "ERP Completo", "sub_erp1"), ("pdv", "PDV Loja", "sub_pdv1")):
            contract = Contract(customer_id=customer_id, plan_code=code, plan_name=name, price_cents=19990,
                                status=ContractStatus.ACTIVE, source="asaas", external_id=sub)
            session.add(contract)
            await session.flush()
            contracts[code] = contract.id
    return instance_id, customer_id, contracts, cus


async def _read(spine, tenant_id, model, *where):
    async with spine.database.tenant(tenant_id) as session:
        return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())


async def _stages(spine, tenant_id, customer_id) -> tuple[Lifecycle, dict[str, Lifecycle]]:
    contracts = await _read(spine, tenant_id, Contract, Contract.customer_id == customer_id)
    return (await spine.customer(tenant_id, customer_id)).lifecycle, {c.plan_code: c.lifecycle for c in contracts}


async def test_a_late_subscription_is_blocked_and_the_other_goes_on(spine, asaas, web):
    a, b = spine.tenants.a, spine.tenants.b
    instance_id, customer_id, contracts, cus = await _two_subscriptions(spine, asaas)
    late = asaas.plant(TOKEN, customer=cus, value="199.90", status="OVERDUE", due_date="2026-11-01",
                       subscription="sub_erp1")
    await _hook(web, spine, a, instance_id, "PAYMENT_OVERDUE", late, "evt_overdue_1")

    [case] = await _read(spine, a.id, DunningCase)
    assert case.status == CaseStatus.GRACE and case.contract_id == contracts["erp"]
    assert await _stages(spine, a.id, customer_id) == (Lifecycle.IN_GRACE, {"erp": Lifecycle.IN_GRACE,
                                                                            "pdv": Lifecycle.ACTIVE})
    await spine.advance(days=6)  # past the 5 days of grace
    assert await _stages(spine, a.id, customer_id) == (Lifecycle.IN_GRACE, {"erp": Lifecycle.BLOCKED,
                                                                            "pdv": Lifecycle.ACTIVE})
    [block] = spine.sent(Channel.PLATFORM, a.id)
    data = block.payload["data"]
    assert block.payload["command"] == "block" and data["scope"] == "contract"
    assert data["contract"]["external_id"] == "sub_erp1" and data["entitlement"] == "erp"
    assert data["contract"]["plan"]["name"] == "ERP Completo"
    [told] = await _read(spine, a.id, Notification, Notification.kind == "dunning.blocked")
    assert "Assinatura: ERP Completo (erp)" in told.body  # the front office reads which subscription
    history = await _read(spine, a.id, LifecycleTransition, LifecycleTransition.contract_id == contracts["erp"])
    assert [t.to_state for t in history] == ["in_grace", "blocked"]

    asaas.settle(TOKEN, late["id"], payment_date="2026-11-08")
    await _hook(web, spine, a, instance_id, "PAYMENT_RECEIVED", {**late, "status": "RECEIVED"}, "evt_paid_1")
    assert await _stages(spine, a.id, customer_id) == (Lifecycle.ACTIVE, {"erp": Lifecycle.ACTIVE,
                                                                          "pdv": Lifecycle.ACTIVE})
    block, unblock = spine.sent(Channel.PLATFORM, a.id)
    assert unblock.payload["command"] == "unblock" and unblock.payload["data"]["scope"] == "contract"
    assert unblock.payload["data"]["contract"]["external_id"] == "sub_erp1"
    # The other company saw nothing of it.
    assert spine.sent(Channel.PLATFORM, b.id) == [] and await _read(spine, b.id, DunningCase) == []


async def test_policy_whole_customer_blocks_every_subscription(spine, asaas, web):
    a = spine.tenants.a
    await spine.set_policy(a.id, block_scope="customer")
    instance_id, customer_id, contracts, cus = await _two_subscriptions(spine, asaas)
    late = asaas.plant(TOKEN, customer=cus, value="199.90", status="OVERDUE", due_date="2026-11-01",
                       subscription="sub_erp1")
    await _hook(web, spine, a, instance_id, "PAYMENT_OVERDUE", late, "evt_overdue_2")
    [case] = await _read(spine, a.id, DunningCase)
    assert case.contract_id is None
    await spine.advance(days=6)
    assert await _stages(spine, a.id, customer_id) == (Lifecycle.BLOCKED, {"erp": Lifecycle.BLOCKED,
                                                                           "pdv": Lifecycle.BLOCKED})
    [block] = spine.sent(Channel.PLATFORM, a.id)
    assert block.payload["data"]["scope"] == "customer"
    assert sorted(c["external_id"] for c in block.payload["data"]["contracts"]) == ["sub_erp1", "sub_pdv1"]

    asaas.settle(TOKEN, late["id"], payment_date="2026-11-08")
    await _hook(web, spine, a, instance_id, "PAYMENT_RECEIVED", {**late, "status": "RECEIVED"}, "evt_paid_2")
    assert await _stages(spine, a.id, customer_id) == (Lifecycle.ACTIVE, {"erp": Lifecycle.ACTIVE,
                                                                          "pdv": Lifecycle.ACTIVE})
    _, unblock = spine.sent(Channel.PLATFORM, a.id)
    assert unblock.payload["command"] == "unblock" and unblock.payload["data"]["scope"] == "customer"


async def test_the_block_scope_is_validated(spine):
    from backoffice.platform.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        await spine.set_policy(spine.tenants.a.id, block_scope="everything")
    assert any(problem.field == "block_scope" for problem in refused.value.errors)
