"""Durable timers: scheduled once per key, canceled for good, fired once into the right tenant's spine;
and the daily routines that run at a local hour of each tenant's own time zone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import dramatiq
import pytest
from sqlalchemy import select, update

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.session import TenantMismatch
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.timers.models import Timer
from backoffice.platform.timers.routines import DUNNING_SWEEP, current_period, next_local_run, run_due_routines
from backoffice.platform.timers.service import cancel_timers, fire_due_timers, schedule_timer
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant

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


# --- routines in the tenant's time zone ----------------------------------------------------------------

def test_next_local_run_in_sao_paulo():
    # São Paulo has had no daylight saving since 2019: 06:00 there is always 09:00 UTC.
    assert next_local_run("America/Sao_Paulo", 6, datetime(2026, 11, 2, 8, 59, tzinfo=UTC)) == \
        datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert next_local_run("America/Sao_Paulo", 6, datetime(2026, 11, 2, 9, 0, tzinfo=UTC)) == \
        datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # strictly after
    # Late evening in São Paulo is already tomorrow in UTC: the next run is still São Paulo's tomorrow.
    assert next_local_run("America/Sao_Paulo", 6, datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == \
        datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


def test_next_local_run_across_daylight_saving_changes():
    ny = "America/New_York"
    # Spring forward on 8 March 2026: 06:00 is 11:00 UTC the day before and 10:00 UTC that day.
    assert next_local_run(ny, 6, datetime(2026, 3, 7, 10, 0, tzinfo=UTC)) == datetime(2026, 3, 7, 11, 0, tzinfo=UTC)
    assert next_local_run(ny, 6, datetime(2026, 3, 7, 11, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    # 02:00 does not exist that day: the run happens at the first instant after the gap (03:00 EDT).
    assert next_local_run(ny, 2, datetime(2026, 3, 8, 0, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # Fall back on 1 November 2026: 06:00 moves from 10:00 UTC to 11:00 UTC ...
    assert next_local_run(ny, 6, datetime(2026, 10, 31, 10, 0, tzinfo=UTC)) == datetime(2026, 11, 1, 11, 0, tzinfo=UTC)
    # ... and 01:00, which happens twice, runs once, at its first occurrence (01:00 EDT).
    first = next_local_run(ny, 1, datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert next_local_run(ny, 1, first) == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def test_the_current_period_turns_at_the_local_hour():
    assert current_period("America/Sao_Paulo", 6, datetime(2026, 11, 2, 8, 59, tzinfo=UTC)) == date(2026, 11, 1)
    assert current_period("America/Sao_Paulo", 6, datetime(2026, 11, 2, 9, 0, tzinfo=UTC)) == date(2026, 11, 2)
    assert current_period("Asia/Tokyo", 6, datetime(2026, 11, 2, 8, 59, tzinfo=UTC)) == date(2026, 11, 2)


async def _charge(database, tenant, due: date, external_id: str) -> None:
    async with database.tenant(tenant.id) as session:
        session.add(Charge(customer_id=tenant.customer_ids[0], amount_cents=9900, due_date=due, source="asaas",
                           external_id=external_id, description="Plano mensal"))


async def _statuses(database) -> dict[tuple[uuid.UUID, str], ChargeStatus]:
    return {(c.tenant_id, c.external_id): c.status for c in await rows(database, Charge)}


async def test_the_daily_sweep_runs_once_per_local_day_at_six_and_catches_up(database, tenants, frozen):
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.b.id).values(timezone="Asia/Tokyo"))
    for tenant in (tenants.a, tenants.b):
        await _charge(database, tenant, date(2026, 11, 1), "due-nov-1")
        await _charge(database, tenant, date(2026, 11, 2), "due-nov-2")

    # 05:30 in São Paulo, whose current period is still 1 November (nothing was due before it);
    # 17:30 in Tokyo, whose period is 2 November. Neither period has run yet.
    frozen.set(datetime(2026, 11, 2, 8, 30, tzinfo=UTC))
    assert set((await run_due_routines(database))[DUNNING_SWEEP.name]) == {tenants.a.id, tenants.b.id}
    assert await _statuses(database) == {
        (tenants.a.id, "due-nov-1"): ChargeStatus.PENDING, (tenants.a.id, "due-nov-2"): ChargeStatus.PENDING,
        (tenants.b.id, "due-nov-1"): ChargeStatus.OVERDUE, (tenants.b.id, "due-nov-2"): ChargeStatus.PENDING,
    }
    assert await run_due_routines(database) == {DUNNING_SWEEP.name: []}  # a second check runs nothing

    frozen.set(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # 06:00 in São Paulo
    assert await run_due_routines(database) == {DUNNING_SWEEP.name: [tenants.a.id]}
    assert (await _statuses(database))[(tenants.a.id, "due-nov-1")] == ChargeStatus.OVERDUE
    markers = {(t.tenant_id, t.key): t for t in await rows(database, Timer)}
    assert set(markers) == {(tenants.a.id, "routine:dunning_sweep:2026-11-01"),
                            (tenants.a.id, "routine:dunning_sweep:2026-11-02"),
                            (tenants.b.id, "routine:dunning_sweep:2026-11-02")}
    assert all(t.fired_at is not None for t in markers.values())
    assert await fire_due_timers(database) == 0  # markers are records, not timers to fire

    # The scheduler is down for two days; back at 07:00 São Paulo on 5 November it catches up once.
    frozen.set(datetime(2026, 11, 5, 10, 0, tzinfo=UTC))
    assert sorted(map(str, (await run_due_routines(database))[DUNNING_SWEEP.name])) == \
        sorted(map(str, (tenants.a.id, tenants.b.id)))
    assert set((await _statuses(database)).values()) == {ChargeStatus.OVERDUE}
    assert await run_due_routines(database) == {DUNNING_SWEEP.name: []}
    events = await rows(database, Event)  # one payment.overdue per charge, none twice
    assert sorted((e.tenant_id == tenants.a.id, e.type) for e in events) == \
        [(False, "payment.overdue")] * 2 + [(True, "payment.overdue")] * 2
    assert len({(e.tenant_id, e.external_id) for e in events}) == 4


# --- wiring: the scheduler process runs the loops ----------------------------------------------------

async def test_a_running_scheduler_fires_timers_and_relays_their_events(database, tenants):
    """What ``backoffice scheduler`` and the embedded mode run: the loops of platform/scheduler/loops.py
    (timers, routines, and the relay started as its own task) under a leading Scheduler."""
    import backoffice.platform.scheduler.loops  # noqa: F401  (registers the loops, as runtime.py does)
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
    assert message.kwargs["tenant_id"] == str(tenants.a.id) and message.kwargs["event_id"] == str(event.id)
    assert await rows(database, Event, tenants.b.id) == []
    broker.flush_all()
