"""The overdue sweep: pending charges past due in the tenant's own calendar become overdue, each with one
``payment.overdue`` event and its outbox row; nothing twice, nothing of a tenant that was not swept."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.dunning.sweep import sweep_overdue
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant, TenantStatus
from tests.tenants.conftest import spine  # noqa: F401  (the running spine fixture)

# 01:30 UTC on 3 November is still 22:30 on 2 November in São Paulo (and 10:30 on 3 November in Tokyo).
NOW = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)
NOV = {day: date(2026, 11, day) for day in range(1, 5)}


@pytest.fixture
def frozen() -> FrozenClock:
    frozen = FrozenClock(NOW)
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


async def add_charge(database, tenant, external_id: str, due: date, *, status=ChargeStatus.PENDING,
                     description: str | None = "Plano Pro - novembro", amount: int = 19900) -> Charge:
    async with database.tenant(tenant.id) as session:
        charge = Charge(customer_id=tenant.customer_ids[0], amount_cents=amount, due_date=due, source="asaas",
                        external_id=external_id, description=description, status=status)
        session.add(charge)
    return charge


async def statuses(database, tenant) -> dict[str, ChargeStatus]:
    async with database.tenant(tenant.id) as session:
        return {c.external_id: c.status for c in (await session.execute(select(Charge))).scalars()}


async def events(database, tenant) -> list[Event]:
    async with database.tenant(tenant.id) as session:
        return list((await session.execute(select(Event).order_by(Event.external_id))).scalars())


async def outbox(database, tenant) -> list[OutboxEntry]:
    async with database.tenant(tenant.id) as session:
        return list((await session.execute(select(OutboxEntry))).scalars())


async def test_one_overdue_event_per_past_due_charge_in_the_tenants_local_calendar(database, tenants, frozen):
    late = await add_charge(database, tenants.a, "ch-oct-31", date(2026, 10, 31), description=None, amount=4500)
    await add_charge(database, tenants.a, "ch-nov-1", NOV[1])
    # Due 2 November: past due by UTC's date (3 November), but in São Paulo it is still the 2nd.
    await add_charge(database, tenants.a, "ch-nov-2", NOV[2])
    await add_charge(database, tenants.a, "ch-nov-4", NOV[4])
    await add_charge(database, tenants.a, "ch-paid", NOV[1], status=ChargeStatus.PAID)
    await add_charge(database, tenants.a, "ch-already", date(2026, 10, 1), status=ChargeStatus.OVERDUE)
    await add_charge(database, tenants.b, "ch-nov-1", NOV[1])

    assert sum((await sweep_overdue(database, tenant_ids=[tenants.a.id])).values()) == 2

    assert await statuses(database, tenants.a) == {
        "ch-oct-31": ChargeStatus.OVERDUE, "ch-nov-1": ChargeStatus.OVERDUE, "ch-nov-2": ChargeStatus.PENDING,
        "ch-nov-4": ChargeStatus.PENDING, "ch-paid": ChargeStatus.PAID, "ch-already": ChargeStatus.OVERDUE,
    }
    emitted = await events(database, tenants.a)
    assert [(e.type, e.source) for e in emitted] == [("payment.overdue", "sweep")] * 2
    first = next(e for e in emitted if e.external_id == f"overdue:{late.id}")
    assert first.subject == {"id": str(tenants.a.customer_ids[0])}
    assert first.data == {"charge": {"source": "asaas", "external_id": "ch-oct-31", "amount_cents": 4500,
                                     "due_date": "2026-10-31"}}
    assert first.occurred_at == NOW and first.status == "pending"
    second = next(e for e in emitted if e.external_id != first.external_id)
    assert second.data["charge"] == {"source": "asaas", "external_id": "ch-nov-1", "amount_cents": 19900,
                                     "due_date": "2026-11-01", "description": "Plano Pro - novembro"}
    queued = await outbox(database, tenants.a)
    assert sorted((q.job, q.payload["event_id"]) for q in queued) == \
        sorted(("spine.process_event", str(e.id)) for e in emitted)
    # Tenant B was not swept: its past-due charge is untouched, and it has no events or outbox rows.
    assert await statuses(database, tenants.b) == {"ch-nov-1": ChargeStatus.PENDING}
    assert await events(database, tenants.b) == [] and await outbox(database, tenants.b) == []


async def test_a_second_sweep_emits_nothing(database, tenants, frozen):
    await add_charge(database, tenants.a, "ch-1", NOV[1])
    await add_charge(database, tenants.b, "ch-1", NOV[1])
    assert sum((await sweep_overdue(database)).values()) == 2
    frozen.advance(hours=1)
    assert sum((await sweep_overdue(database)).values()) == 0
    for tenant in (tenants.a, tenants.b):
        assert len(await events(database, tenant)) == 1 and len(await outbox(database, tenant)) == 1


async def test_an_event_already_stored_is_not_emitted_again(database, tenants, frozen):
    """A charge put back to pending after its event was stored (say, a manual correction): the charge
    turns overdue again, but the event and its outbox row exist once."""
    charge = await add_charge(database, tenants.a, "ch-1", NOV[1])
    assert sum((await sweep_overdue(database, tenant_ids=[tenants.a.id])).values()) == 1
    async with database.tenant(tenants.a.id) as session:
        await session.execute(update(Charge).values(status=ChargeStatus.PENDING))
    assert sum((await sweep_overdue(database, tenant_ids=[tenants.a.id])).values()) == 0
    assert (await statuses(database, tenants.a))["ch-1"] == ChargeStatus.OVERDUE
    stored = await events(database, tenants.a)
    assert [e.external_id for e in stored] == [f"overdue:{charge.id}"] and len(await outbox(database, tenants.a)) == 1
    assert await events(database, tenants.b) == []


async def test_each_tenant_is_swept_by_its_own_time_zone_in_one_pass(database, tenants, frozen):
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.b.id).values(timezone="Asia/Tokyo"))
    for tenant in (tenants.a, tenants.b):
        await add_charge(database, tenant, "ch-nov-1", NOV[1])
        await add_charge(database, tenant, "ch-nov-2", NOV[2])
        await add_charge(database, tenant, "ch-nov-3", NOV[3])

    assert sum((await sweep_overdue(database)).values()) == 3  # every active tenant: A's 1st, B's 1st and 2nd
    assert await statuses(database, tenants.a) == {
        "ch-nov-1": ChargeStatus.OVERDUE, "ch-nov-2": ChargeStatus.PENDING, "ch-nov-3": ChargeStatus.PENDING}
    assert await statuses(database, tenants.b) == {
        "ch-nov-1": ChargeStatus.OVERDUE, "ch-nov-2": ChargeStatus.OVERDUE, "ch-nov-3": ChargeStatus.PENDING}
    assert {e.tenant_id for e in await events(database, tenants.b)} == {tenants.b.id}
    assert len(await events(database, tenants.a)) == 1


async def test_the_routine_can_sweep_for_a_given_local_date(database, tenants, frozen):
    await add_charge(database, tenants.a, "ch-nov-1", NOV[1])
    await add_charge(database, tenants.a, "ch-nov-2", NOV[2])
    await add_charge(database, tenants.b, "ch-nov-1", NOV[1])
    assert sum((await sweep_overdue(database, tenant_ids=[tenants.a.id], today_by_tenant={tenants.a.id: NOV[4]})).values()) == 2
    assert set((await statuses(database, tenants.a)).values()) == {ChargeStatus.OVERDUE}
    assert await statuses(database, tenants.b) == {"ch-nov-1": ChargeStatus.PENDING}


async def test_a_suspended_tenant_is_left_out_unless_named(database, tenants, frozen):
    await add_charge(database, tenants.a, "ch-1", NOV[1])
    await add_charge(database, tenants.b, "ch-1", NOV[1])
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.b.id).values(status=TenantStatus.SUSPENDED))
    assert sum((await sweep_overdue(database)).values()) == 1
    assert await statuses(database, tenants.b) == {"ch-1": ChargeStatus.PENDING}
    assert sum((await sweep_overdue(database, tenant_ids=[tenants.b.id])).values()) == 1
    assert await statuses(database, tenants.b) == {"ch-1": ChargeStatus.OVERDUE}


async def test_the_sweeps_event_is_a_valid_catalogue_event(database, tenants, frozen):
    """What the PostgreSQL statement builds in SQL passes the same validation as any intake."""
    await add_charge(database, tenants.a, "ch-1", NOV[1])
    await sweep_overdue(database)
    stored, = await events(database, tenants.a)
    async with database.tenant(tenants.a.id) as session:
        again = await ingest(session, tenants.a.id, {
            "type": stored.type, "source": stored.source, "external_id": stored.external_id,
            "customer": stored.subject, "data": stored.data})
    assert (again.event_id, again.status) == (stored.id, "duplicate")
    assert isinstance(stored.id, uuid.UUID) and stored.id.version == 7


async def test_the_sweeps_event_marks_the_gateways_charge_overdue_without_a_second_charge(spine):
    """The sweep's event names the charge with its issuer, so the late-payment case opens on the gateway's
    charge (once found by ("sweep", id), it created a copy and the overdue amount counted twice)."""
    from backoffice.tenants.customers.models import Lifecycle
    from backoffice.tenants.dunning.models import DunningCase
    from tests.tenants.conftest import new_customer

    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Oficina Bom Motor",
                                     tax_id="390.533.447-05", lifecycle=Lifecycle.ACTIVE)
    async with spine.database.tenant(a.id) as session:
        session.add(Charge(customer_id=customer_id, amount_cents=19900, due_date=date(2020, 1, 5),
                           source="asaas", external_id="pay_sweep", status=ChargeStatus.PENDING))
    await sweep_overdue(spine.database)
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        charges = list((await session.execute(select(Charge))).scalars())
        cases = list((await session.execute(select(DunningCase))).scalars())
    assert [(c.source, c.external_id, c.status) for c in charges] == [("asaas", "pay_sweep", ChargeStatus.OVERDUE)]
    assert [case.charge_id for case in cases] == [charges[0].id]
