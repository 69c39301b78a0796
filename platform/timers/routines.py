"""Daily routines that run at a local hour in each tenant's own time zone (the dunning sweep at 06:00).

A routine's *period* for a tenant is the local date of its most recent local run hour: at 05:59 in São
Paulo the period is still yesterday, at 06:00 it becomes today. When a tenant's current period has no
marker, the routine runs for it with that date, and then a marker is stored: a :class:`Timer` row keyed
``routine:<name>:<YYYY-MM-DD>`` with ``fired_at`` set (never picked up by :func:`fire_due_timers`, which
takes unfired rows only). So a restart does not run a day twice, and a scheduler that was down for a day
runs the missed period as soon as it is back (the sweep is cumulative, so the latest period covers every
earlier one). The marker is written after the routine commits: a crash in between only repeats a routine,
and routines are idempotent.

Local times go through ``zoneinfo``: a run hour that does not exist on a spring-forward day runs at the
first instant after the gap, and one that happens twice on a fall-back day runs at the first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import Database
from backoffice.platform.timers.models import Timer
from backoffice.tenants.dunning.sweep import sweep_overdue
from backoffice.platform.db.session import dialect_insert
from backoffice.tenants.registry.models import Tenant, TenantStatus

log = logging.getLogger(__name__)

# Rows or keys per statement: asyncpg takes at most 32,767 bind parameters in one statement.
CHUNK = 1000

RunForDates = Callable[[Database, dict[uuid.UUID, date]], Awaitable[int]]


@dataclass(frozen=True)
class DailyRoutine:
    name: str
    hour: int  # local hour of the tenant's time zone
    run: RunForDates  # (database, {tenant_id: local date of the period}) -> how much it did

    def marker_key(self, day: date) -> str:
        return f"routine:{self.name}:{day.isoformat()}"


def _local_run(zone: ZoneInfo, day: date, hour: int) -> datetime:
    # fold=0: a skipped hour maps past the gap, a repeated hour to its first occurrence.
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def next_local_run(tz: str, hour: int, after: datetime) -> datetime:
    """The first instant strictly after ``after`` at which it is ``hour``:00 in ``tz`` (returned in UTC)."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = ZoneInfo(tz)
    day = after.astimezone(zone).date()
    for offset in range(3):  # today's or tomorrow's; the third day only guards odd zones
        candidate = _local_run(zone, day + timedelta(days=offset), hour)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a local hour recurs within two days")


def current_period(tz: str, hour: int, now: datetime) -> date:
    """The local date of the latest ``hour``:00 in ``tz`` at or before ``now``."""
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    return today if _local_run(zone, today, hour) <= now else today - timedelta(days=1)


async def run_daily_routine(database: Database, routine: DailyRoutine) -> list[uuid.UUID]:
    """Run ``routine`` for every active tenant whose current period has not run yet; returns those tenants."""
    now = clock.now()
    async with database.system() as session:
        tenants = (await session.execute(
            select(Tenant.id, Tenant.timezone).where(Tenant.status == TenantStatus.ACTIVE)
        )).all()
        periods = {t.id: current_period(t.timezone, routine.hour, now) for t in tenants}
        if not periods:
            return []
        done: set[uuid.UUID] = set()
        keys = [(tenant_id, routine.marker_key(day)) for tenant_id, day in periods.items()]
        for chunk in _chunks(keys):
            # (tenant_id, key) is the timers' unique index: exact lookups, whatever the table's size.
            done.update((await session.execute(
                select(Timer.tenant_id).where(tuple_(Timer.tenant_id, Timer.key).in_(chunk))
            )).scalars())
    due = {tenant_id: day for tenant_id, day in periods.items() if tenant_id not in done}
    if not due:
        return []
    result = await routine.run(database, due)
    zones = {t.id: ZoneInfo(t.timezone) for t in tenants}
    markers = [
        {"tenant_id": tenant_id, "id": new_id(), "key": routine.marker_key(day), "event_type": f"routine.{routine.name}",
         "due_at": _local_run(zones[tenant_id], day, routine.hour), "payload": {}, "created_at": now, "fired_at": now}
        for tenant_id, day in due.items()
    ]
    async with database.system() as session:
        for chunk in _chunks(markers):
            await session.execute(
                dialect_insert(session)(Timer).values(chunk).on_conflict_do_nothing(index_elements=["tenant_id", "key"])
            )
    log.info("routine %s ran for %d tenant(s): %s", routine.name, len(due), result)
    return list(due)


def _chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


async def _sweep(database: Database, dates: dict[uuid.UUID, date]) -> int:
    return await sweep_overdue(database, tenant_ids=list(dates), today_by_tenant=dates)


DUNNING_SWEEP = DailyRoutine("dunning_sweep", hour=6, run=_sweep)
ROUTINES: tuple[DailyRoutine, ...] = (DUNNING_SWEEP,)


async def run_due_routines(database: Database) -> dict[str, list[uuid.UUID]]:
    """Every routine's due tenants; one routine failing does not hold back the others."""
    ran: dict[str, list[uuid.UUID]] = {}
    for routine in ROUTINES:
        try:
            ran[routine.name] = await run_daily_routine(database, routine)
        except Exception:
            log.exception("routine %s failed; it is retried on the next check", routine.name)
    return ran
