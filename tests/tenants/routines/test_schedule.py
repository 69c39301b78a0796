"""When routines run: at a local hour (and day) of each tenant's own time zone, once per period, catching
up a recent missed period but not an old one, never for a paused tenant; the dunning sweep as the
set-based routine that records a finished run per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.catalogue import Daily, Monthly, Plan, Routine
from backoffice.tenants.routines.overdue_sweep import OVERDUE_SWEEP
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from backoffice.tenants.routines.schedule import start_scheduled

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo
STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")


@pytest.fixture
def frozen():
    frozen = FrozenClock(START)
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


async def rows(database, model) -> list:
    async with database.system() as session:
        return list((await session.execute(select(model).order_by(model.id))).scalars())


# --- schedules in the tenant's time zone ----------------------------------------------------------------

def test_daily_next_run_in_sao_paulo():
    daily = Daily(hour=6)
    # São Paulo has had no daylight saving since 2019: 06:00 there is always 09:00 UTC.
    assert daily.next("America/Sao_Paulo", datetime(2026, 11, 2, 8, 59, tzinfo=UTC)) == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert daily.next("America/Sao_Paulo", datetime(2026, 11, 2, 9, 0, tzinfo=UTC)) == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    # Late evening in São Paulo is already tomorrow in UTC: the next run is still São Paulo's tomorrow.
    assert daily.next("America/Sao_Paulo", datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


def test_daily_runs_across_daylight_saving_changes():
    ny = "America/New_York"
    six, two, one = Daily(hour=6), Daily(hour=2), Daily(hour=1)
    # Spring forward on 8 March 2026: 06:00 is 11:00 UTC the day before and 10:00 UTC that day.
    assert six.next(ny, datetime(2026, 3, 7, 10, 0, tzinfo=UTC)) == datetime(2026, 3, 7, 11, 0, tzinfo=UTC)
    assert six.next(ny, datetime(2026, 3, 7, 11, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    # 02:00 does not exist that day: the run happens at the first instant after the gap (03:00 EDT).
    assert two.next(ny, datetime(2026, 3, 8, 0, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # Fall back on 1 November 2026: 01:00, which happens twice, runs once, at its first occurrence.
    first = one.next(ny, datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert one.next(ny, first) == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def test_periods_turn_at_the_local_hour():
    six = Daily(hour=6)
    assert six.latest("America/Sao_Paulo", datetime(2026, 11, 2, 8, 59, tzinfo=UTC))[0] == "2026-11-01"
    assert six.latest("America/Sao_Paulo", datetime(2026, 11, 2, 9, 0, tzinfo=UTC))[0] == "2026-11-02"
    assert six.latest("Asia/Tokyo", datetime(2026, 11, 2, 8, 59, tzinfo=UTC))[0] == "2026-11-02"
    # Reconciliation runs in the morning for the day before.
    assert Daily(hour=8, offset_days=-1).latest("America/Sao_Paulo", datetime(2026, 11, 2, 12, tzinfo=UTC))[0] == "2026-11-01"
    monthly = Monthly(day=1, hour=5)
    assert monthly.latest("America/Sao_Paulo", datetime(2026, 11, 1, 7, 59, tzinfo=UTC)) == \
        ("2026-10", datetime(2026, 10, 1, 8, 0, tzinfo=UTC))
    assert monthly.latest("America/Sao_Paulo", datetime(2026, 11, 1, 8, 0, tzinfo=UTC))[0] == "2026-11"
    assert monthly.next("America/Sao_Paulo", datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 1, 8, 0, tzinfo=UTC)
    assert monthly.latest("America/Sao_Paulo", datetime(2026, 11, 20, tzinfo=UTC), day=25)[0] == "2026-10"


# --- the dunning sweep, set-based ---------------------------------------------------------------------

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
    assert set(await start_scheduled(database, OVERDUE_SWEEP)) == {tenants.a.id, tenants.b.id}
    assert await _statuses(database) == {
        (tenants.a.id, "due-nov-1"): ChargeStatus.PENDING, (tenants.a.id, "due-nov-2"): ChargeStatus.PENDING,
        (tenants.b.id, "due-nov-1"): ChargeStatus.OVERDUE, (tenants.b.id, "due-nov-2"): ChargeStatus.PENDING,
    }
    assert await start_scheduled(database, OVERDUE_SWEEP) == []  # a second check runs nothing

    frozen.set(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # 06:00 in São Paulo
    assert await start_scheduled(database, OVERDUE_SWEEP) == [tenants.a.id]
    assert (await _statuses(database))[(tenants.a.id, "due-nov-1")] == ChargeStatus.OVERDUE
    runs = {(r.tenant_id, r.period): r for r in await rows(database, RoutineRun)}
    assert set(runs) == {(tenants.a.id, "2026-11-01"), (tenants.a.id, "2026-11-02"), (tenants.b.id, "2026-11-02")}
    assert {r.status for r in runs.values()} == {RunStatus.SUCCEEDED}
    assert {r.trigger for r in runs.values()} == {Trigger.SCHEDULE}
    # Each run counts what it turned overdue, for its own tenant only.
    assert (runs[(tenants.a.id, "2026-11-01")].items_done, runs[(tenants.a.id, "2026-11-02")].items_done,
            runs[(tenants.b.id, "2026-11-02")].items_done) == (0, 1, 1)

    # The scheduler is down for two days; back at 07:00 São Paulo on 5 November it catches up once.
    frozen.set(datetime(2026, 11, 5, 10, 0, tzinfo=UTC))
    assert sorted(map(str, await start_scheduled(database, OVERDUE_SWEEP))) == sorted(map(str, (tenants.a.id, tenants.b.id)))
    assert set((await _statuses(database)).values()) == {ChargeStatus.OVERDUE}
    assert await start_scheduled(database, OVERDUE_SWEEP) == []
    events = await rows(database, Event)  # one payment.overdue per charge, none twice
    assert sorted((e.tenant_id == tenants.a.id, e.type) for e in events) == \
        [(False, "payment.overdue")] * 2 + [(True, "payment.overdue")] * 2
    assert len({(e.tenant_id, e.external_id) for e in events}) == 4


async def test_a_paused_tenant_is_not_swept_and_runs_again_once_resumed(database, tenants, frozen):
    for tenant in (tenants.a, tenants.b):
        await _charge(database, tenant, date(2026, 11, 1), "due-nov-1")
    async with database.provider(tenants.a.id) as session:
        await engine.pause(session, OVERDUE_SWEEP.name, actor=STAFF, reason="client migrating gateways")
    assert await start_scheduled(database, OVERDUE_SWEEP) == [tenants.b.id]
    assert (await _statuses(database))[(tenants.a.id, "due-nov-1")] == ChargeStatus.PENDING
    async with database.provider(tenants.a.id) as session:
        await engine.resume(session, OVERDUE_SWEEP.name, actor=STAFF)
    assert await start_scheduled(database, OVERDUE_SWEEP) == [tenants.a.id]
    assert (await _statuses(database))[(tenants.a.id, "due-nov-1")] == ChargeStatus.OVERDUE


# --- queued routines: an old period is not caught up, a recent one is -----------------------------------

async def _nothing(session, run) -> Plan:
    return Plan()


async def test_a_routine_that_needs_a_connector_is_scheduled_only_where_one_is_enabled(database, tenants, frozen):
    from tests.connectors.conftest import make_instance

    needs_gateway = Routine(name="test_gateway", title={"en": "Test"}, item_noun={"en": "things"},
                            schedule=Daily(hour=5), plan=_nothing, requires=("asaas",))
    await make_instance(database, tenants.a.id, "asaas", {"base_url": "http://127.0.0.1:9", "api_key": "k",
                                                          "webhook_token": "t"})
    assert await start_scheduled(database, needs_gateway) == [tenants.a.id]


MONTHLY = Routine(name="test_monthly", title={"en": "Test"}, item_noun={"en": "things"},
                  schedule=Monthly(day=1, hour=5), plan=_nothing)


async def test_a_monthly_routine_starts_its_period_once_and_never_a_stale_one(database, tenants, frozen):
    # 20 November: November's instant (1 Nov 05:00 local) is 19 days old, past the catch-up window, so a
    # routine switched on mid-month does not bill a month already under way; staff start it by hand.
    frozen.set(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    assert await start_scheduled(database, MONTHLY) == []
    # 1 December, 05:30 in São Paulo: December is due for both tenants, once.
    frozen.set(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert set(await start_scheduled(database, MONTHLY)) == {tenants.a.id, tenants.b.id}
    assert await start_scheduled(database, MONTHLY) == []
    runs = await rows(database, RoutineRun)
    assert {(r.tenant_id, r.period, r.status, r.trigger) for r in runs} == {
        (tenants.a.id, "2026-12", RunStatus.QUEUED, Trigger.SCHEDULE),
        (tenants.b.id, "2026-12", RunStatus.QUEUED, Trigger.SCHEDULE)}
    plans = [o for o in await rows(database, OutboxEntry) if o.job == engine.PLAN_JOB]
    assert sorted((o.tenant_id, o.payload["run_id"]) for o in plans) == sorted((r.tenant_id, str(r.id)) for r in runs)
