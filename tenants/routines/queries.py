"""Reading routine runs for the people who watch them: staff across their tenants, the tenant's systems
(API), the front office (portal) and operators (CLI).

Runs are listed newest first with filters, as a query the edge paginates with its cursor. A run's detail
lists its items failed first, capped, with the count of every status, so a run of 40,000 items answers
in one page and still says how many are left; a reconciliation run adds its findings, discrepancies first.
Everything but :func:`staff_runs_query` and :func:`tenants_by_id` reads through a tenant session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import get_owned
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.catalogue import get_routine
from backoffice.tenants.routines.engine import routine_overview
from backoffice.tenants.routines.models import (
    FindingKind, ItemStatus, ReconciliationFinding, RoutineRun, RoutineSetting, RunItem, RunStatus, Trigger,
)

ITEMS_SHOWN = 100  # items of a run's detail unless asked for fewer or more
ITEMS_MAX = 1000
# What a person looks at first: what went wrong, then what is still open.
ITEM_ORDER = case({ItemStatus.FAILED.value: 0, ItemStatus.WAITING.value: 1, ItemStatus.PENDING.value: 2},
                  value=RunItem.status, else_=3)
FINDING_ORDER = case({FindingKind.AMOUNT_MISMATCH.value: 0, FindingKind.UNKNOWN.value: 1,
                      FindingKind.UNRECORDED.value: 2, FindingKind.MISSING.value: 3},
                     value=ReconciliationFinding.kind, else_=4)


def runs_query(*, routine: str | None = None, statuses: list[RunStatus] | None = None, period: str | None = None,
               trigger: Trigger | None = None) -> Select:
    """Runs matching the filters; through a tenant session, that tenant's only. The caller orders and pages."""
    query = select(RoutineRun)
    if routine:
        query = query.where(RoutineRun.routine == routine)
    if statuses:
        query = query.where(RoutineRun.status.in_(list(statuses)))
    if period:
        query = query.where(RoutineRun.period == period)
    if trigger is not None:
        query = query.where(RoutineRun.trigger == trigger)
    return query


def staff_runs_query(tenant_ids: list[uuid.UUID] | None, **filters: Any) -> Select:
    """Runs across tenants, for a system session: ``tenant_ids`` are the tenants the staff member serves
    (None: every tenant, for provider admins)."""
    query = runs_query(**filters)
    if tenant_ids is not None:
        query = query.where(RoutineRun.tenant_id.in_(tenant_ids))
    return query


async def tenants_by_id(session: AsyncSession, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, Tenant]:
    """The tenants of a page of runs (their names and locales), in one query."""
    if not tenant_ids:
        return {}
    rows = await session.execute(select(Tenant).where(Tenant.id.in_(tenant_ids)))
    return {tenant.id: tenant for tenant in rows.scalars()}


async def recent_runs(session: AsyncSession, routine: str, limit: int = 5) -> list[RoutineRun]:
    query = runs_query(routine=routine).order_by(RoutineRun.created_at.desc(), RoutineRun.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


@dataclass
class RunDetail:
    run: RoutineRun
    items: list[RunItem]  # failed first, at most the limit asked for
    item_counts: dict[str, int]  # every status, whatever the filter and the cap
    items_matching: int  # items the status filter matches (all of them without one)
    findings: list[ReconciliationFinding]  # discrepancies first, at most the limit
    finding_counts: dict[str, int]

    @property
    def items_truncated(self) -> bool:
        return len(self.items) < self.items_matching


async def run_detail(session: AsyncSession, run_id: uuid.UUID, *, item_status: ItemStatus | None = None,
                     limit: int = ITEMS_SHOWN) -> RunDetail:
    """One run of the session's tenant (another tenant's id is NotFound) with its items and findings."""
    run = await get_owned(session, RoutineRun, run_id)
    limit = max(1, min(limit, ITEMS_MAX))
    counted = dict((await session.execute(
        select(RunItem.status, func.count()).where(RunItem.run_id == run.id).group_by(RunItem.status))).all())
    item_counts = {status.value: int(counted.get(status, 0)) for status in ItemStatus}
    items_query = select(RunItem).where(RunItem.run_id == run.id)
    if item_status is not None:
        items_query = items_query.where(RunItem.status == item_status)
    items = list((await session.execute(
        items_query.order_by(ITEM_ORDER, RunItem.label, RunItem.id).limit(limit))).scalars())
    matching = item_counts[item_status.value] if item_status is not None else sum(item_counts.values())
    found = dict((await session.execute(
        select(ReconciliationFinding.kind, func.count()).where(ReconciliationFinding.run_id == run.id)
        .group_by(ReconciliationFinding.kind))).all())
    finding_counts = {kind.value: int(found[kind]) for kind in FindingKind if found.get(kind)}
    findings = []
    if finding_counts:
        findings = list((await session.execute(
            select(ReconciliationFinding).where(ReconciliationFinding.run_id == run.id)
            .order_by(FINDING_ORDER, ReconciliationFinding.day, ReconciliationFinding.reference)
            .limit(limit))).scalars())
    return RunDetail(run, items, item_counts, matching, findings, finding_counts)


async def routine_statuses(session: AsyncSession, *, locale: str | None = None) -> list[dict[str, Any]]:
    """The engine's overview of each routine, plus the effective schedule as numbers (what a schedule
    change edits): ``schedule_kind``, ``hour`` and ``day`` (monthly), and whether the tenant moved them."""
    settings = {s.routine: s for s in (await session.execute(select(RoutineSetting))).scalars()}
    overview = await routine_overview(session, locale=locale)
    for entry in overview:
        schedule = get_routine(entry["routine"]).schedule
        setting = settings.get(entry["routine"])
        hour = setting.hour if setting and setting.hour is not None else schedule.hour
        day = None
        if schedule.kind == "monthly":
            day = setting.day if setting and setting.day is not None else schedule.day
        entry.update(schedule_kind=schedule.kind, hour=hour, day=day,
                     custom_schedule=bool(setting and (setting.hour is not None or setting.day is not None)))
    return overview


async def routine_status(session: AsyncSession, name: str, *, locale: str | None = None) -> dict[str, Any]:
    return next(entry for entry in await routine_statuses(session, locale=locale) if entry["routine"] == name)
