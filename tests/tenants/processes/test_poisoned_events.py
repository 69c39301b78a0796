"""An event stored before intake applied the input rule (a NUL kept by the ``json`` column) is dead-lettered
with the reason by the process step, and does not hold back the events it shares a batch with."""

from __future__ import annotations

import pytest

from backoffice.platform import clock
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.tenants.events.intake import PROCESS_JOB
from backoffice.tenants.events.models import Event, EventStatus
from tests.tenants.processes.conftest import new_customer
from tests.tenants.processes.test_scenarios import cleared, rows

pytestmark = pytest.mark.postgres_only  # the json column keeps \u0000 on PostgreSQL; its text columns refuse it


async def test_an_event_stored_with_a_nul_is_dead_lettered_and_its_batch_goes_on(spine):
    a = spine.tenants.a
    for n in range(3):
        await new_customer(spine.database, a.id, a.admin_id, name=f"Cliente {n}", tax_id=["39053344705",
                           "11144477735", "12345678909"][n], external={"asaas": f"cus_p{n}"})
    good = [cleared(f"evt_ok_{n}", {"external_id": f"cus_p{n}", "source": "asaas"}, charge_id=f"pay_ok_{n}")
            for n in (0, 2)]
    poisoned = cleared("evt_poisoned", {"external_id": "cus_p1", "source": "asaas"}, charge_id="pay_p")
    # Used only by the notification's text, written when the batch ends: the whole batch failed with it.
    poisoned["data"]["documents"][0]["number"] = "34191\x0079001"
    async with spine.database.tenant(a.id) as session:
        for raw in (good[0], poisoned, good[1]):  # as intake stored them before the rule: one batch
            event = Event(type=raw["type"], source=raw["source"], external_id=raw["external_id"],
                          subject=raw["customer"], data=raw["data"], status=EventStatus.PENDING,
                          occurred_at=clock.now(), received_at=clock.now())
            session.add(event)
            await session.flush()
            add_to_outbox(session, a.id, PROCESS_JOB, event_id=str(event.id))
    await spine.settle()
    by_id = {e.external_id: e for e in await rows(spine, a.id, Event)}
    assert by_id["evt_ok_0"].status == by_id["evt_ok_2"].status == EventStatus.PROCESSED
    dead = by_id["evt_poisoned"]
    assert dead.status == EventStatus.FAILED
    assert dead.error.startswith("refused by the input rule: data.documents[0].number: contains a NUL")
