"""The end of one subscription of a customer who keeps another ends that contract alone (its entitlement
deprovisioned, the customer still active); the end of the last one ends the relationship."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel
from tests.tenants.conftest import new_customer

pytestmark = pytest.mark.postgres_only


def _canceled(customer_id, subscription: str) -> dict:
    return {"type": "subscription.canceled", "source": "api", "external_id": f"end-{subscription}",
            "customer": {"id": str(customer_id)},
            "data": {"subscription_external_id": subscription, "reason": "Cliente cancelou"}}


async def test_one_subscription_ends_alone_then_the_last_ends_the_relationship(spine):
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Mercado Central",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE)
    async with spine.database.tenant(a.id) as session:
        for code, sub in (("erp", "sub_erp"), ("pdv", "sub_pdv")):
            session.add(Contract(customer_id=customer_id, plan_code=code, plan_name=code.upper(), price_cents=100,
                                 status=ContractStatus.ACTIVE, source="api", external_id=sub))
    await spine.ingest(a.id, _canceled(customer_id, "sub_erp"))
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        statuses = {c.plan_code: c.status for c in (await session.execute(select(Contract))).scalars()}
    assert statuses == {"erp": ContractStatus.CANCELED, "pdv": ContractStatus.ACTIVE}
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    [command] = spine.sent(Channel.PLATFORM, a.id)
    assert command.payload["command"] == "deprovision" and command.payload["data"]["scope"] == "contract"
    assert command.payload["data"]["contract"]["external_id"] == "sub_erp"

    await spine.ingest(a.id, _canceled(customer_id, "sub_pdv"))
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.TERMINATED
    _, last = spine.sent(Channel.PLATFORM, a.id)
    assert last.payload["command"] == "deprovision" and [p["code"] for p in last.payload["data"]["plans"]] == ["pdv"]
    assert spine.sent(Channel.PLATFORM, b.id) == []
