"""A change of plan with a future ``effective_at`` is a durable timer: the front office is told now with the
date (pt-BR), the contract and the platform's entitlement change at that date and not before, once even when
the timer's event is delivered again; a canceled change never applies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.timers.models import Timer
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.events.intake import PROCESS_JOB
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.notifications.models import Notification
from tests.tenants.conftest import START, new_customer

pytestmark = pytest.mark.postgres_only
PRO = {"code": "pro", "name": "Plano Pro", "price_cents": 19990}
MAX = {"code": "max", "name": "Plano Max", "price_cents": 29990}
EFFECTIVE = START + timedelta(days=3)  # 2026-11-05 15:00 UTC, 12:00 in São Paulo


async def _customer_with_contract(spine):
    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Academia Forte",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE)
    async with spine.database.tenant(a.id) as session:
        session.add(Contract(customer_id=customer_id, plan_code="pro", plan_name="Plano Pro", price_cents=19990,
                             status=ContractStatus.ACTIVE, source="api", external_id="sub_77"))
    return customer_id


def _change(customer_id, external_id="chg-1") -> dict:
    return {"type": "subscription.changed", "source": "api", "external_id": external_id,
            "customer": {"id": str(customer_id)},
            "data": {"subscription_external_id": "sub_77", "before": PRO, "after": MAX,
                     "effective_at": EFFECTIVE.isoformat()}}


async def _read(spine, tenant_id, model, *where):
    async with spine.database.tenant(tenant_id) as session:
        return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())


async def test_a_scheduled_change_applies_at_its_date_once(spine):
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await _customer_with_contract(spine)
    await spine.ingest(a.id, _change(customer_id))
    await spine.settle()
    [note] = await _read(spine, a.id, Notification)
    assert note.kind == "subscription.changed" and "05/11/2026" in note.body  # when it takes effect, pt-BR
    [contract] = await _read(spine, a.id, Contract)
    assert contract.plan_code == "pro" and spine.sent(Channel.PLATFORM, a.id) == []  # not yet

    await spine.advance(days=2, hours=23)  # an hour before
    [contract] = await _read(spine, a.id, Contract)
    assert contract.plan_code == "pro" and spine.sent(Channel.PLATFORM, a.id) == []
    await spine.advance(hours=2)
    [contract] = await _read(spine, a.id, Contract)
    assert (contract.plan_code, contract.price_cents) == ("max", 29990)
    [command] = spine.sent(Channel.PLATFORM, a.id)
    assert command.payload["command"] == "provision" and command.payload["data"]["plan"]["code"] == "max"
    assert command.payload["data"]["contract"]["external_id"] == "sub_77"

    # The timer's event delivered again changes nothing.
    [due] = await _read(spine, a.id, Event, Event.type == "subscription.change_due")
    assert due.status == EventStatus.PROCESSED
    async with spine.database.tenant(a.id) as session:
        add_to_outbox(session, a.id, PROCESS_JOB, event_id=str(due.id))
    await spine.settle()
    assert len(spine.sent(Channel.PLATFORM, a.id)) == 1
    assert await _read(spine, b.id, Notification) == [] and await _read(spine, b.id, Timer) == []


async def test_a_canceled_change_never_applies(spine):
    a = spine.tenants.a
    customer_id = await _customer_with_contract(spine)
    await spine.ingest(a.id, _change(customer_id))
    await spine.settle()
    await spine.ingest(a.id, {"type": "subscription.change_canceled", "source": "api", "external_id": "chg-1-off",
                              "customer": {"id": str(customer_id)},
                              "data": {"subscription_external_id": "sub_77", "reason": "O cliente desistiu"}})
    await spine.settle()
    [timer] = await _read(spine, a.id, Timer, Timer.event_type == "subscription.change_due")
    assert timer.canceled_at is not None and timer.fired_at is None
    await spine.advance(days=4)
    [contract] = await _read(spine, a.id, Contract)
    assert contract.plan_code == "pro" and spine.sent(Channel.PLATFORM, a.id) == []
    assert await _read(spine, a.id, Event, Event.type == "subscription.change_due") == []
