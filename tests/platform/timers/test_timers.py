"""Durable timers: scheduled once per key, canceled for good, fired once into the right tenant's spine.
(The routines that run at a local hour of each tenant's time zone: tests/tenants/routines.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.session import TenantMismatch
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.timers.models import Timer
from backoffice.platform.timers.service import cancel_timers, fire_due_timers, schedule_timer
from backoffice.tenants.events.models import Event

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo


@pytest.fixture
def frozen() -> FrozenClock:
    frozen = FrozenClock(START)
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


async def schedule(database, tenant_id, key, *, minutes=10, case_id=None, customer_id=None, reminder=1) -> Timer:
    async with database.tenant(tenant_id) as session:
        return await schedule_timer(
            session, tenant_id, key=key, event_type="dunning.reminder_due",
            due_at=clock.now() + timedelta(minutes=minutes), customer_id=customer_id,
            payload={"case_id": str(case_id or uuid.uuid4()), "reminder": reminder},
        )


async def rows(database, model, tenant_id=None) -> list:
    async with database.system() as session:
        query = select(model)
        if tenant_id is not None:
            query = query.where(model.tenant_id == tenant_id)
        return list((await session.execute(query)).scalars())


# --- scheduling and canceling ------------------------------------------------------------------------

async def test_scheduling_the_same_key_twice_makes_one_timer(database, tenants, frozen):
    first = await schedule(database, tenants.a.id, "dunning:1:reminder:1", minutes=10, reminder=1)
    again = await schedule(database, tenants.a.id, "dunning:1:reminder:1", minutes=99, reminder=2)

    assert again.id == first.id and again.due_at == first.due_at and again.payload == first.payload
    assert len(await rows(database, Timer, tenants.a.id)) == 1
    # The same key is another timer in another tenant, and B sees only its own.
    other = await schedule(database, tenants.b.id, "dunning:1:reminder:1")
    assert other.id != first.id and other.tenant_id == tenants.b.id
    async with database.tenant(tenants.b.id) as session:
        assert [t.id for t in (await session.execute(select(Timer))).scalars()] == [other.id]


async def test_a_timer_that_could_never_become_an_event_is_refused_when_scheduled(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed):
            await schedule_timer(session, tenants.a.id, key="bad", event_type="dunning.reminder_due",
                                 due_at=START, payload={"case_id": "not-a-uuid"})
        with pytest.raises(ValidationFailed):
            await schedule_timer(session, tenants.a.id, key="bad", event_type="no.such_event", due_at=START)
        with pytest.raises(TenantMismatch):  # a tenant-bound session never schedules for another tenant
            await schedule_timer(session, tenants.b.id, key="x", event_type="dunning.reminder_due",
                                 due_at=START, payload={"case_id": str(uuid.uuid4())})
    assert await rows(database, Timer) == []


async def test_a_canceled_timer_never_fires(database, tenants, frozen):
    for key in ("dunning:1:reminder:1", "dunning:1:deadline", "dunning:10:deadline", "dunning:1%:x"):
        await schedule(database, tenants.a.id, key)
    await schedule(database, tenants.b.id, "dunning:1:deadline")

    async with database.tenant(tenants.a.id) as session:
        assert await cancel_timers(session, tenants.a.id, key_prefix="dunning:1:") == 2
        # LIKE wildcards in a prefix are literal: "dunning:1%" matches only that key.
        assert await cancel_timers(session, tenants.a.id, key_prefix="dunning:1%") == 1
        assert await cancel_timers(session, tenants.a.id, keys=["dunning:1:deadline"]) == 0  # already
        with pytest.raises(ValueError):
            await cancel_timers(session, tenants.a.id)

    frozen.advance(hours=1)
    assert await fire_due_timers(database) == 2  # A's dunning:10:deadline and B's timer
    events = {(e.tenant_id, e.external_id) for e in await rows(database, Event)}
    assert events == {(tenants.a.id, "dunning:10:deadline"), (tenants.b.id, "dunning:1:deadline")}
    canceled = {t.key for t in await rows(database, Timer, tenants.a.id) if t.canceled_at is not None}
    assert canceled == {"dunning:1:reminder:1", "dunning:1:deadline", "dunning:1%:x"}
    b_timer, = await rows(database, Timer, tenants.b.id)
    assert b_timer.canceled_at is None and b_timer.fired_at is not None  # A's cancel never touched B


# --- firing --------------------------------------------------------------------------------------------

async def test_a_due_timer_fires_once_as_an_event_of_its_own_tenant(database, tenants, frozen):
    case_id, customer_id = uuid.uuid4(), tenants.a.customer_ids[0]
    timer = await schedule(database, tenants.a.id, "dunning:7:deadline", minutes=30, case_id=case_id,
                           customer_id=customer_id)
    later = await schedule(database, tenants.b.id, "dunning:8:deadline", minutes=90)

    frozen.advance(minutes=29)
    assert await fire_due_timers(database) == 0
    frozen.advance(minutes=1)
    assert await fire_due_timers(database) == 1
    assert await fire_due_timers(database) == 0  # fired once

    event, = await rows(database, Event)
    assert (event.tenant_id, event.type, event.source, event.external_id) == \
        (tenants.a.id, "dunning.reminder_due", "timer", "dunning:7:deadline")
    assert event.occurred_at == timer.due_at
    assert event.subject == {"id": str(customer_id)}
    assert event.data == {"case_id": str(case_id), "reminder": 1}
    entry, = await rows(database, OutboxEntry)
    assert (entry.tenant_id, entry.job, entry.payload) == (tenants.a.id, "spine.process_event",
                                                           {"event_id": str(event.id)})
    fired = {t.key: t.fired_at for t in await rows(database, Timer)}
    assert fired == {"dunning:7:deadline": clock.now(), "dunning:8:deadline": None}  # B's is not due yet
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(Event))).scalars().all() == []

    frozen.advance(hours=1)
    assert await fire_due_timers(database) == 1
    assert {(e.tenant_id, e.external_id) for e in await rows(database, Event)} == \
        {(tenants.a.id, "dunning:7:deadline"), (tenants.b.id, later.key)}


async def test_two_schedulers_firing_at_once_fire_each_timer_once(database, tenants, frozen):
    for i in range(30):
        await schedule(database, tenants.a.id, f"a:{i}", minutes=1 + i % 5)
        await schedule(database, tenants.b.id, f"b:{i}", minutes=1 + i % 5)
    frozen.advance(minutes=10)
    other = type(database)(database.settings)
    try:
        fired = 0
        for _ in range(10):
            counts = await asyncio.gather(fire_due_timers(database, limit=7), fire_due_timers(other, limit=7))
            fired += sum(counts)
            if sum(counts) == 0:
                break
    finally:
        await other.dispose()
    assert fired == 60
    events = await rows(database, Event)
    assert len(events) == 60 and len(await rows(database, OutboxEntry)) == 60
    assert {e.tenant_id for e in events if e.external_id.startswith("a:")} == {tenants.a.id}
    assert {e.tenant_id for e in events if e.external_id.startswith("b:")} == {tenants.b.id}


@pytest.mark.postgres_only
async def test_timers_locked_by_another_scheduler_are_skipped_not_waited_for(database, tenants, frozen):
    for i in range(4):
        await schedule(database, tenants.a.id, f"t:{i}", minutes=1 + i)
    frozen.advance(minutes=10)
    async with database.system() as holder:
        held = (await holder.execute(
            select(Timer.key).order_by(Timer.due_at).limit(2).with_for_update())).scalars().all()
        assert await asyncio.wait_for(fire_due_timers(database), 5) == 2
    assert {t.key for t in await rows(database, Timer) if t.fired_at is None} == set(held)
    assert await fire_due_timers(database) == 2


# --- wiring: the scheduler process runs the loops ----------------------------------------------------

async def test_a_running_scheduler_fires_timers_and_relays_their_events(database, tenants):
    """What ``backoffice scheduler`` and the embedded mode run: the loops of web/entry/loops.py
    (timers, routines, and the relay started as its own task) under a leading Scheduler."""
    from backoffice.platform.outbox.relay import stop_background
    from backoffice.platform.scheduler.service import Scheduler
    from backoffice.platform.worker.broker import build_broker

    broker = build_broker(database.settings)
    timer = await schedule(database, tenants.a.id, "dunning:9:deadline", minutes=-1)
    scheduler = Scheduler(database, broker, tick=0.05)
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(200):
            if broker.queues["events"].qsize():
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.stop.set()
        await asyncio.wait_for(task, 10)
        await stop_background()
    message = dramatiq.Message.decode(broker.queues["events"].get_nowait())
    event, = await rows(database, Event)
    assert (event.tenant_id, event.external_id) == (tenants.a.id, timer.key)
    [item] = message.kwargs["batch"]  # spine.process_event takes a tenant's events in batches
    assert message.kwargs["tenant_id"] == str(tenants.a.id) and item["event_id"] == str(event.id)
    assert await rows(database, Event, tenants.b.id) == []
    broker.flush_all()


# --- the process steps' deferred form --------------------------------------------------------------------

async def test_deferred_timers_are_written_once_in_one_statement_and_a_cancel_sees_them(database, tenants, frozen):
    """A batch of steps defers its timers and writes them once per wave; a cancel in the same transaction
    (a later step of the same customer) flushes them first, so it finds them; a key already stored keeps
    its first timer, and the tenant door holds for the deferred rows too."""
    from backoffice.platform.timers.service import defer_timer, flush_timers, forget_timers

    existing = await schedule(database, tenants.a.id, "case:1:deadline", minutes=5)
    due = clock.now() + timedelta(days=3)
    async with database.tenant(tenants.a.id) as session:
        for key in ("case:1:deadline", "case:2:reminder:1", "case:2:deadline", "case:3:deadline"):
            defer_timer(session, tenants.a.id, key=key, event_type="dunning.deadline_reached", due_at=due,
                        payload={"case_id": str(uuid.uuid4())})
        defer_timer(session, tenants.a.id, key="case:2:deadline", event_type="dunning.deadline_reached",
                    due_at=due + timedelta(days=9), payload={"case_id": str(uuid.uuid4())})  # first one wins
        with pytest.raises(TenantMismatch):
            defer_timer(session, tenants.b.id, key="case:9:deadline", event_type="dunning.deadline_reached",
                        due_at=due, payload={"case_id": str(uuid.uuid4())})
        with pytest.raises(ValidationFailed):
            defer_timer(session, tenants.a.id, key="case:4:deadline", event_type="no.such_event", due_at=due)
        assert await cancel_timers(session, tenants.a.id, key_prefix="case:2:") == 2  # flushed, then canceled
        defer_timer(session, tenants.a.id, key="case:5:deadline", event_type="dunning.deadline_reached",
                    due_at=due, payload={"case_id": str(uuid.uuid4())})
        forget_timers(session)  # its step's savepoint rolled back
        assert await flush_timers(session) == 0
    stored = {t.key: t for t in await rows(database, Timer, tenants.a.id)}
    assert set(stored) == {"case:1:deadline", "case:2:reminder:1", "case:2:deadline", "case:3:deadline"}
    assert stored["case:1:deadline"].id == existing.id and stored["case:1:deadline"].due_at == existing.due_at
    assert stored["case:2:deadline"].due_at == due and stored["case:2:deadline"].canceled_at is not None
    assert stored["case:3:deadline"].canceled_at is None
    assert await rows(database, Timer, tenants.b.id) == []
