"""Starting scheduled runs: the scheduler's periodic check (every 30 s, one scheduler at a time).

For each routine, every active tenant whose routine is not paused has a *current period*: the period of
the latest scheduled instant in the tenant's time zone, at the tenant's hour and day if it moved them
(``RoutineSetting``). A period with no run yet starts now, provided its instant is recent (the schedule's
``catch_up``: a scheduler down for an hour still bills the month, a routine switched on mid-month does not
bill a month already past; staff start such a period by hand). A manual run of the period counts as its
run. The unique index on scheduled runs makes a second scheduler's insert a no-op, so a period is started
once whatever happens.

A routine that ``requires`` a connector (the billing run needs a payment gateway) is not scheduled for a
tenant without an enabled instance of one of those kinds: nothing to run is not a failure every day.

A routine with ``run_for_tenants`` (the dunning sweep) does every due tenant's work at once, set-based,
and records their runs finished; the others get a queued run and a ``routines.plan`` outbox row per
tenant, in one transaction per chunk of tenants.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import select, tuple_

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import Database, dialect_insert
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.timers.clock import offsets
from backoffice.tenants.connections import directory
from backoffice.tenants.registry.models import Tenant, TenantStatus
from backoffice.tenants.routines.catalogue import Routine, routines
from backoffice.tenants.routines.engine import PLAN_JOB
from backoffice.tenants.routines.models import RoutineRun, RoutineSetting, RunStatus, Trigger

log = logging.getLogger(__name__)
CHUNK = 1000
SCHEDULER = "system:scheduler"


async def due_periods(database: Database, routine: Routine) -> dict[uuid.UUID, str]:
    """The tenants for which ``routine`` should start a run now, with the period. A tenant whose clock runs
    ahead (demo, staging: platform/timers/clock.py) is scheduled by its own time: its "today" moves with it."""
    real_now = clock.now()
    async with database.system() as session:
        tenants = (await session.execute(
            select(Tenant.id, Tenant.timezone).where(Tenant.status == TenantStatus.ACTIVE))).all()
        shifted = await offsets(session)
        settings = {s.tenant_id: s for s in (await session.execute(
            select(RoutineSetting).where(RoutineSetting.routine == routine.name))).scalars()}
        equipped = None
        if routine.requires:
            equipped = await directory().tenants_with(session, routine.requires)
        wanted: dict[uuid.UUID, str] = {}
        for tenant in tenants:
            setting = settings.get(tenant.id)
            if setting is not None and setting.paused:
                continue
            if equipped is not None and tenant.id not in equipped:
                continue
            now = real_now + shifted[tenant.id] if tenant.id in shifted else real_now
            period, instant = routine.schedule.latest(tenant.timezone, now, hour=setting.hour if setting else None,
                                                      day=setting.day if setting else None)
            if now - instant <= routine.schedule.catch_up:
                wanted[tenant.id] = period
        started: set[uuid.UUID] = set()
        pairs = list(wanted.items())
        for chunk in _chunks(pairs):
            # (tenant_id, routine, period) leads the run indexes: exact lookups, whatever the table's size.
            started.update((await session.execute(select(RoutineRun.tenant_id).where(
                RoutineRun.routine == routine.name, tuple_(RoutineRun.tenant_id, RoutineRun.period).in_(chunk)
            ))).scalars())
    return {tenant_id: period for tenant_id, period in wanted.items() if tenant_id not in started}


async def start_scheduled(database: Database, routine: Routine) -> list[uuid.UUID]:
    """Start ``routine``'s due periods; returns the tenants it started for."""
    due = await due_periods(database, routine)
    if not due:
        return []
    started_at = clock.now()
    if routine.run_for_tenants is not None:
        counts = await routine.run_for_tenants(database, due)
        finished = clock.now()
        rows = [_run_row(tenant_id, routine, period, started_at, RunStatus.SUCCEEDED, finished=finished,
                         done=counts.get(tenant_id, 0)) for tenant_id, period in due.items()]
        async with database.system() as session:
            for chunk in _chunks(rows):
                await session.execute(dialect_insert(session)(RoutineRun).values(chunk).on_conflict_do_nothing())
    else:
        async with database.system() as session:
            for chunk in _chunks(list(due.items())):
                rows = [_run_row(tenant_id, routine, period, started_at, RunStatus.QUEUED) for tenant_id, period in chunk]
                inserted = (await session.execute(
                    dialect_insert(session)(RoutineRun).values(rows).on_conflict_do_nothing()
                    .returning(RoutineRun.tenant_id, RoutineRun.id))).all()
                if inserted:
                    await session.execute(dialect_insert(session)(OutboxEntry).values([
                        {"tenant_id": row.tenant_id, "id": new_id(), "job": PLAN_JOB, "payload": {"run_id": str(row.id)},
                         "created_at": started_at, "available_at": started_at, "attempts": 0}
                        for row in inserted]))
    log.info("routine %s started for %d tenant(s)", routine.name, len(due))
    return list(due)


def _run_row(tenant_id: uuid.UUID, routine: Routine, period: str, now, status: RunStatus, *, finished=None,
             done: int = 0) -> dict:
    return {"tenant_id": tenant_id, "id": new_id(), "routine": routine.name, "period": period,
            "trigger": Trigger.SCHEDULE.value, "status": status.value, "requested_by": SCHEDULER,
            "items_total": done, "items_done": done, "items_failed": 0,
            "summary": {}, "created_at": now,
            "started_at": now if finished else None, "finished_at": finished, "updated_at": finished or now}


async def start_due_runs(database: Database) -> dict[str, list[uuid.UUID]]:
    """Every routine's due periods; one routine failing does not hold back the others."""
    ran: dict[str, list[uuid.UUID]] = {}
    for routine in routines():
        try:
            ran[routine.name] = await start_scheduled(database, routine)
        except Exception:
            log.exception("routine %s could not be scheduled; the next check tries again", routine.name)
    return ran


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    return (items[start:start + size] for start in range(0, len(items), size))
