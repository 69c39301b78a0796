"""Running routines: starting a run, listing its items, working them one by one on the shared workers,
counting progress, finishing; retrying a run's failed items; pausing and resuming a routine for a tenant.

Every step is a tenant job handed over through the outbox (``routines.plan`` for a run, ``routines.item``
for each item), so a run is spread over every worker, fair across tenants (the relay's per-tenant cap),
and nothing is lost: a worker that dies mid-item leaves its outbox row leased, the lease runs out, and the
item is worked again. The item's row is locked while it is worked and its status is checked first, so a
redelivered or duplicated message does nothing to a settled item; ``work`` itself must be idempotent
towards the provider (see ``catalogue.py``).

Progress: each settled item adds one to its run's ``items_done`` or ``items_failed`` in the same
transaction, with an atomic ``UPDATE ... SET n = n + 1 RETURNING``, so concurrent items never lose a count
and exactly one of them sees the last count and finishes the run.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock, metrics
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import TENANT_KEY, dialect_insert, get_owned
from backoffice.platform.errors import Conflict, FieldError, ValidationFailed
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.timers.clock import tenant_now
from backoffice.tenants.connections import CallFailed, directory
from backoffice.tenants.notifications.live import announce_run
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.catalogue import Outcome, Routine, UnknownRoutine, get_routine, valid_period
from backoffice.tenants.routines.models import (
    ACTIVE_STATUSES, FINISHED_STATUSES, ItemStatus, RoutineRun, RoutineSetting, RunItem, RunStatus, Trigger,
)

log = logging.getLogger(__name__)

PLAN_JOB = "routines.plan"
ITEM_JOB = "routines.item"
ITEM_FAILED_EVENT = "routine.item_failed"
# Seconds before the next attempt of an item after a retryable provider failure (then ±20% jitter).
BACKOFF = (10, 60, 300, 900, 3600)
CHUNK = 1000  # rows per statement


class RoutineUnavailable(Exception):
    """The routine cannot run for this tenant now (no connector configured, ...): the run fails with this
    reason instead of retrying, and staff see why."""


def tenant_of(session: AsyncSession) -> uuid.UUID:
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise RuntimeError("routines work through a tenant session")
    return tenant_id


def routine_named(name: str) -> Routine:
    try:
        return get_routine(name)
    except UnknownRoutine as error:
        raise ValidationFailed(FieldError("routine", str(error))) from None


# --- settings ------------------------------------------------------------------------------------------

async def setting_for(session: AsyncSession, routine: str) -> RoutineSetting | None:
    return (await session.execute(select(RoutineSetting).where(RoutineSetting.routine == routine))).scalar_one_or_none()


async def _setting(session: AsyncSession, routine: str) -> RoutineSetting:
    setting = await setting_for(session, routine)
    if setting is None:
        setting = RoutineSetting(routine=routine, paused=False, updated_at=clock.now())
        session.add(setting)
    return setting


async def current_period(session: AsyncSession, routine: Routine) -> str:
    """The period a run started now is for, by the tenant's own clock (a shifted demo or staging tenant's
    "this month" is its own, as the scheduler's ``due_periods`` sees it)."""
    tenant = await session.get(Tenant, tenant_of(session))
    setting = await setting_for(session, routine.name)
    period, _ = routine.schedule.latest(tenant.timezone, await tenant_now(session, tenant.id),
                                        hour=setting.hour if setting else None, day=setting.day if setting else None)
    return period


async def pause(session: AsyncSession, name: str, *, actor: Actor, reason: str | None = None) -> RoutineSetting:
    """Stop a routine for the session's tenant: no scheduled run starts, and the items of a running one
    wait (a worker holding one finishes it) until :func:`resume`."""
    routine = routine_named(name)
    setting = await _setting(session, routine.name)
    if not setting.paused:
        setting.paused, setting.paused_at, setting.paused_by = True, clock.now(), actor.label
        setting.pause_reason = (reason or "").strip()[:500] or None
        await record(session, actor=actor, action="routine.pause", target_type="routine", target_id=routine.name,
                     tenant_id=tenant_of(session), reason=reason)
    await session.flush()
    return setting


async def resume(session: AsyncSession, name: str, *, actor: Actor, reason: str | None = None) -> RoutineSetting:
    """Let the routine run again; the runs it held go on from their pending items."""
    routine = routine_named(name)
    setting = await _setting(session, routine.name)
    if setting.paused:
        setting.paused, setting.paused_at, setting.paused_by, setting.pause_reason = False, None, None, None
        await record(session, actor=actor, action="routine.resume", target_type="routine", target_id=routine.name,
                     tenant_id=tenant_of(session), reason=reason)
        # Running runs too: an item that saw the pause just before this resume committed left itself pending
        # without its run showing paused yet. A second message for a pending item is harmless.
        held = (await session.execute(select(RoutineRun).where(
            RoutineRun.routine == routine.name, RoutineRun.status.in_([RunStatus.PAUSED, RunStatus.RUNNING])
        ))).scalars()
        for run in held:
            await _requeue(session, run)
    await session.flush()
    return setting


async def _requeue(session: AsyncSession, run: RoutineRun) -> None:
    tenant_id = tenant_of(session)
    if run.started_at is None:  # paused before its items were listed
        run.status = RunStatus.QUEUED
        add_to_outbox(session, tenant_id, PLAN_JOB, run_id=str(run.id))
        return
    run.status = RunStatus.RUNNING
    pending = (await session.execute(select(RunItem).where(
        RunItem.run_id == run.id, RunItem.status.in_([ItemStatus.PENDING, ItemStatus.WAITING])))).scalars()
    for item in pending:
        item.next_attempt_at = None
        add_to_outbox(session, tenant_id, ITEM_JOB, item_id=str(item.id))


async def set_schedule(session: AsyncSession, name: str, *, hour: int | None, day: int | None, actor: Actor,
                       reason: str | None = None) -> RoutineSetting:
    """Move the routine's local hour (and day of the month, for monthly routines); None: the default."""
    routine = routine_named(name)
    errors = []
    if hour is not None and not (isinstance(hour, int) and 0 <= hour <= 23):
        errors.append(FieldError("hour", "expected a whole hour from 0 to 23"))
    if day is not None:
        if routine.schedule.kind != "monthly":
            errors.append(FieldError("day", f"{routine.name} runs daily: it takes no day of the month"))
        elif not (isinstance(day, int) and 1 <= day <= 28):
            errors.append(FieldError("day", "expected a day of the month from 1 to 28"))
    if errors:
        raise ValidationFailed(errors)
    setting = await _setting(session, routine.name)
    before = {"hour": setting.hour, "day": setting.day}
    setting.hour, setting.day = hour, day
    await record(session, actor=actor, action="routine.schedule", target_type="routine", target_id=routine.name,
                 tenant_id=tenant_of(session), reason=reason, detail={"before": before, "after": {"hour": hour, "day": day}})
    await session.flush()
    return setting


# --- starting runs -------------------------------------------------------------------------------------

async def active_run(session: AsyncSession, routine: str, period: str) -> RoutineRun | None:
    return (await session.execute(select(RoutineRun).where(
        RoutineRun.routine == routine, RoutineRun.period == period, RoutineRun.status.in_(ACTIVE_STATUSES)
    ).limit(1))).scalar_one_or_none()


def _staff_id(actor: Actor) -> uuid.UUID | None:
    """A run a staff member starts is theirs to follow up until handed over."""
    if actor.type != "staff" or not actor.id:
        return None
    try:
        return uuid.UUID(actor.id)
    except ValueError:
        return None


async def _has_connector(session: AsyncSession, kinds: tuple[str, ...]) -> bool:
    return bool(await directory().connections(session, kinds))


async def start_run(session: AsyncSession, name: str, *, period: str | None = None, actor: Actor,
                    trigger: Trigger = Trigger.MANUAL, reason: str | None = None,
                    parent: RoutineRun | None = None) -> RoutineRun:
    """Queue a run of the routine for the session's tenant (default: the current period). Refused while
    another run of the same routine and period is under way; a paused routine runs nothing by hand either."""
    routine = routine_named(name)
    tenant_id = tenant_of(session)
    period = (period or "").strip() or await current_period(session, routine)
    if not valid_period(routine.schedule, period):
        expected = "YYYY-MM" if routine.schedule.kind == "monthly" else "YYYY-MM-DD"
        raise ValidationFailed(FieldError("period", f"expected a {routine.schedule.kind} period, {expected}"))
    setting = await setting_for(session, routine.name)
    if setting is not None and setting.paused:
        raise Conflict(FieldError("routine", f"{routine.name} is paused for this company; resume it first"))
    if routine.requires and not await _has_connector(session, routine.requires):
        # Refused at the door, with the reason, rather than a run that fails a moment later (the plan step
        # still checks: a connector can be disabled between the start and the plan).
        raise Conflict(FieldError("routine", f"{routine.name} needs an enabled {' or '.join(routine.requires)} "
                                             "connector and this company has none; configure one first"))
    running = await active_run(session, routine.name, period)
    if running is not None:
        raise Conflict(FieldError("period", f"a run of {routine.name} for {period} is already {running.status.value} "
                                            f"(run {running.id})"))
    now = clock.now()
    run = RoutineRun(routine=routine.name, period=period, trigger=trigger, status=RunStatus.QUEUED,
                     parent_run_id=parent.id if parent else None, requested_by=actor.label[:200],
                     handled_by=_staff_id(actor), items_total=0,
                     items_done=0, items_failed=0, summary={}, created_at=now, updated_at=now)
    session.add(run)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # Another request started the same period between our check and our insert.
        raise Conflict(FieldError("period", f"a run of {routine.name} for {period} is already under way")) from None
    add_to_outbox(session, tenant_id, PLAN_JOB, run_id=str(run.id))
    if trigger != Trigger.SCHEDULE:
        await record(session, actor=actor, action=f"routine.{trigger.value}", target_type="routine_run",
                     target_id=run.id, tenant_id=tenant_id, reason=reason,
                     detail={"routine": routine.name, "period": period,
                             **({"parent_run_id": str(parent.id)} if parent else {})})
    return run


async def retry_failed(session: AsyncSession, run_id: uuid.UUID, *, actor: Actor, reason: str | None = None) -> RoutineRun:
    """A new run (trigger ``retry``) of the same routine and period over the failed items of ``run_id``."""
    parent = await get_owned(session, RoutineRun, run_id)
    if parent.status not in FINISHED_STATUSES:
        raise Conflict(FieldError("run", f"run {parent.id} is still {parent.status.value}; retry it once it finishes"))
    failed = (await session.execute(select(func.count()).select_from(RunItem).where(
        RunItem.run_id == parent.id, RunItem.status == ItemStatus.FAILED))).scalar_one()
    if not failed:
        raise Conflict(FieldError("run", f"run {parent.id} has no failed items to retry"))
    return await start_run(session, parent.routine, period=parent.period, actor=actor, trigger=Trigger.RETRY,
                           reason=reason, parent=parent)


# --- the jobs' work ------------------------------------------------------------------------------------

async def plan_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    """List the run's items and queue them (the ``routines.plan`` job)."""
    run = await _locked(session, RoutineRun, run_id)
    if run.status != RunStatus.QUEUED:
        return  # a redelivery: already planned (or finished)
    routine = get_routine(run.routine)
    setting = await setting_for(session, routine.name)
    if setting is not None and setting.paused:
        run.status = RunStatus.PAUSED
        return
    now = clock.now()
    run.started_at = now
    if run.parent_run_id is not None:
        specs = await _failed_items_of(session, run.parent_run_id)
        done_inline, summary = 0, {}
    else:
        try:
            async with session.begin_nested():
                plan = await routine.plan(session, run)
        except (RoutineUnavailable, CallFailed) as error:
            run.status, run.error, run.finished_at = RunStatus.FAILED, str(error)[:2000], clock.now()
            metrics.ROUTINE_RUNS.labels(run.routine, run.status.value).inc()
            log.warning("routine %s for tenant %s could not run: %s", run.routine, run.tenant_id, error)
            return
        specs = [{"key": s.key, "label": s.label[:300], "customer_id": s.customer_id, "data": s.data}
                 for s in plan.items]
        done_inline, summary = plan.done_inline, plan.summary
    tenant_id = tenant_of(session)
    rows = [{"tenant_id": tenant_id, "id": new_id(), "run_id": run.id, "status": ItemStatus.PENDING.value, "attempts": 0,
             "result": {}, "created_at": now, "updated_at": now, **spec} for spec in specs]
    for start in range(0, len(rows), CHUNK):
        await session.execute(dialect_insert(session)(RunItem).values(rows[start:start + CHUNK]))
        for row in rows[start:start + CHUNK]:
            add_to_outbox(session, tenant_id, ITEM_JOB, item_id=str(row["id"]))
    run.items_total = len(rows) + done_inline
    run.items_done = done_inline
    run.summary = {**(run.summary or {}), **summary}
    run.status = RunStatus.RUNNING
    if not rows:
        await _finish(session, run, routine)


async def _failed_items_of(session: AsyncSession, run_id: uuid.UUID) -> list[dict[str, Any]]:
    items = (await session.execute(select(RunItem).where(
        RunItem.run_id == run_id, RunItem.status == ItemStatus.FAILED).order_by(RunItem.id))).scalars()
    return [{"key": i.key, "label": i.label, "customer_id": i.customer_id, "data": i.data} for i in items]


async def work_item(session: AsyncSession, item_id: uuid.UUID) -> None:
    """Work one item (the ``routines.item`` job)."""
    item = await _locked(session, RunItem, item_id)
    if item.status in (ItemStatus.DONE, ItemStatus.FAILED):
        return  # settled by an earlier delivery
    now = clock.now()
    if item.next_attempt_at is not None and item.next_attempt_at > now:
        return  # a duplicate message ahead of the item's scheduled attempt; that one's outbox row will come
    # The run is read, not locked: its items are worked in parallel, and each takes the run's row only for
    # the instant of its count (the UPDATE in _settle), never across the provider's calls.
    run = await get_owned(session, RoutineRun, item.run_id)
    routine = get_routine(run.routine)
    setting = await setting_for(session, routine.name)
    if setting is not None and setting.paused:  # the setting is the authority; the run's status follows it
        if run.status == RunStatus.RUNNING:
            run.status = RunStatus.PAUSED
        return  # the item stays pending; resume() queues it again
    if run.status == RunStatus.PAUSED:
        run.status = RunStatus.RUNNING  # resumed while this item's message was on its way
    if run.status != RunStatus.RUNNING:
        return
    item.attempts += 1
    try:
        async with session.begin_nested():
            outcome = await routine.work(session, run, item)
    except CallFailed as error:
        await _note_connector_failure(session, error)
        retryable = getattr(error, "retryable", False)
        if retryable and item.attempts < routine.max_attempts:
            _try_again(session, item, str(error))
            return
        outcome = Outcome.failed(str(error))
    await _settle(session, run, routine, item, outcome)


def failing_connector(error: CallFailed, connection_id: uuid.UUID) -> CallFailed:
    """Mark a provider error with the connection it came from, for a routine to raise: the item's savepoint
    rolls back whatever the routine wrote, so the engine records the connection's failure after it."""
    error.connector_id = connection_id
    return error


async def _note_connector_failure(session: AsyncSession, error: CallFailed) -> None:
    connector_id = getattr(error, "connector_id", None)
    if connector_id is not None:
        await directory().note_failure(session, connector_id, str(error))


def _try_again(session: AsyncSession, item: RunItem, reason: str, delay: float | None = None) -> None:
    if delay is None:
        delay = BACKOFF[min(item.attempts - 1, len(BACKOFF) - 1)] * random.uniform(0.8, 1.2)
    item.error = reason[:2000]
    item.next_attempt_at = clock.now() + timedelta(seconds=delay)
    entry = add_to_outbox(session, item.tenant_id, ITEM_JOB, item_id=str(item.id))
    entry.available_at = item.next_attempt_at


async def _settle(session: AsyncSession, run: RoutineRun, routine: Routine, item: RunItem, outcome: Outcome) -> None:
    now = clock.now()
    item.result = {**(item.result or {}), **outcome.result}
    if outcome.status == "waiting":
        item.status = ItemStatus.WAITING
        _try_again(session, item, "", delay=(outcome.check_again_in or timedelta(minutes=1)).total_seconds())
        item.error = None
        return
    item.next_attempt_at = None
    item.finished_at = now
    if outcome.status == "done":
        item.status, item.error = ItemStatus.DONE, None
        column = RoutineRun.items_done
    else:
        item.status, item.error = ItemStatus.FAILED, outcome.error or "failed without a reason"
        column = RoutineRun.items_failed
        if outcome.notify and item.customer_id is not None:
            await _tell_front_office(session, run, routine, item)
    await session.flush()
    counts = (await session.execute(
        update(RoutineRun).where(RoutineRun.tenant_id == run.tenant_id, RoutineRun.id == run.id)
        .values({column: column + 1, RoutineRun.updated_at: now})
        .returning(RoutineRun.items_total, RoutineRun.items_done, RoutineRun.items_failed)
        .execution_options(synchronize_session=False)
    )).one()
    await session.refresh(run)
    settled = counts.items_done + counts.items_failed
    announce_run(session, run.tenant_id, run.id, settled=settled, total=counts.items_total,
                 finished=settled >= counts.items_total)
    if counts.items_done + counts.items_failed >= counts.items_total:
        await _finish(session, run, routine)


async def _finish(session: AsyncSession, run: RoutineRun, routine: Routine) -> None:
    if run.status in FINISHED_STATUSES:
        return
    if routine.finish is not None:
        await routine.finish(session, run)
    if run.items_failed == 0:
        run.status = RunStatus.SUCCEEDED
    elif run.items_done == 0:
        run.status = RunStatus.FAILED
    else:
        run.status = RunStatus.PARTIAL
    run.finished_at = clock.now()
    metrics.ROUTINE_RUNS.labels(run.routine, run.status.value).inc()
    log.info("routine %s for tenant %s, %s: %s (%d done, %d failed of %d)", run.routine, run.tenant_id, run.period,
             run.status.value, run.items_done, run.items_failed, run.items_total)


async def _tell_front_office(session: AsyncSession, run: RoutineRun, routine: Routine, item: RunItem) -> None:
    """A failed item of a customer reaches the customer's front-office people through the spine (the
    ``routine.item_failed`` event; its process step notifies per the tenant's policy)."""
    from backoffice.tenants.events.intake import ingest

    data = {"routine": routine.name, "routine_title": routine.label("en"), "period": run.period,
            "run_id": str(run.id), "item": item.label, "reason": item.error}
    if (item.data or {}).get("charge"):  # the charge the item was about (the billing run's)
        data["charge"] = item.data["charge"]
    await ingest(session, run.tenant_id, {
        "type": ITEM_FAILED_EVENT, "source": "routine", "external_id": f"{run.id}:{item.key}",
        "customer": {"id": str(item.customer_id)}, "data": data,
    })


async def give_up_item(session: AsyncSession, tenant_id: uuid.UUID, item_id: uuid.UUID, reason: str) -> None:
    """The outbox gave up on an item's job (it crashed every time): fail the item with that reason so the
    run finishes and the item can be retried. Called with a session of the item's tenant."""
    item = await session.get(RunItem, (tenant_id, item_id))
    if item is None or item.status in (ItemStatus.DONE, ItemStatus.FAILED):
        return
    run = await session.get(RoutineRun, (tenant_id, item.run_id))
    await _settle(session, run, get_routine(run.routine), item, Outcome.failed(reason, notify=False))


async def give_up_plan(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, reason: str) -> None:
    run = await session.get(RoutineRun, (tenant_id, run_id))
    if run is not None and run.status == RunStatus.QUEUED:
        run.status, run.error, run.finished_at = RunStatus.FAILED, reason[:2000], clock.now()
        metrics.ROUTINE_RUNS.labels(run.routine, run.status.value).inc()


async def _locked(session: AsyncSession, model, ident: uuid.UUID):
    row = await get_owned(session, model, ident)
    if session.bind.dialect.name == "postgresql":
        await session.refresh(row, with_for_update=True)
    return row


# --- reading -------------------------------------------------------------------------------------------

def run_view(run: RoutineRun, routine: Routine | None = None, locale: str = "en") -> dict[str, Any]:
    routine = routine or get_routine(run.routine)
    settled = run.items_done + run.items_failed
    return {
        "id": str(run.id), "tenant_id": str(run.tenant_id), "routine": run.routine,
        "title": routine.label(locale), "period": run.period, "trigger": run.trigger.value,
        "status": run.status.value, "requested_by": run.requested_by,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
        "items_total": run.items_total, "items_done": run.items_done, "items_failed": run.items_failed,
        "items_pending": max(0, run.items_total - settled),
        "progress": round(settled / run.items_total, 4) if run.items_total else (1.0 if run.finished_at else 0.0),
        "summary": run.summary or {}, "error": run.error,
        "created_at": _iso(run.created_at), "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
    }


def item_view(item: RunItem) -> dict[str, Any]:
    return {
        "id": str(item.id), "key": item.key, "label": item.label,
        "customer_id": str(item.customer_id) if item.customer_id else None, "status": item.status.value,
        "attempts": item.attempts, "result": item.result or {}, "error": item.error,
        "next_attempt_at": _iso(item.next_attempt_at), "finished_at": _iso(item.finished_at),
    }


async def routine_overview(session: AsyncSession, *, locale: str | None = None) -> list[dict[str, Any]]:
    """Each routine for the session's tenant: schedule, paused or not, last run, next scheduled run."""
    from backoffice.tenants.routines.catalogue import routines

    tenant = await session.get(Tenant, tenant_of(session))
    locale = locale or tenant.locale
    settings = {s.routine: s for s in (await session.execute(select(RoutineSetting))).scalars()}
    wanted = {kind for routine in routines() for kind in routine.requires}
    kinds = {connection.kind for connection in await directory().connections(session, wanted)} if wanted else set()
    now = clock.now()
    overview = []
    for routine in routines():
        setting = settings.get(routine.name)
        hour, day = (setting.hour, setting.day) if setting else (None, None)
        last = (await session.execute(select(RoutineRun).where(RoutineRun.routine == routine.name)
                                      .order_by(RoutineRun.created_at.desc(), RoutineRun.id.desc()).limit(1))).scalar_one_or_none()
        paused = bool(setting and setting.paused)
        configured = not routine.requires or bool(kinds & set(routine.requires))
        overview.append({
            "routine": routine.name, "title": routine.label(locale), "item_noun": routine.item_noun.get(locale)
            or routine.item_noun["en"], "schedule": routine.schedule.describe(hour=hour, day=day),
            "timezone": tenant.timezone, "paused": paused, "configured": configured,
            "requires": list(routine.requires),
            "paused_at": _iso(setting.paused_at) if paused else None,
            "paused_by": setting.paused_by if paused else None, "pause_reason": setting.pause_reason if paused else None,
            "next_run_at": None if paused or not configured else _iso(routine.schedule.next(tenant.timezone, now, hour=hour, day=day)),
            "last_run": run_view(last, routine, locale) if last else None,
        })
    return overview


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def give_up_item_job(session: AsyncSession, tenant_id: uuid.UUID, payload: dict[str, Any], reason: str) -> None:
    """The outbox's give-up hook for :data:`ITEM_JOB` (registered by the composition root)."""
    await give_up_item(session, tenant_id, uuid.UUID(str(payload["item_id"])), reason)


async def give_up_plan_job(session: AsyncSession, tenant_id: uuid.UUID, payload: dict[str, Any], reason: str) -> None:
    """The outbox's give-up hook for :data:`PLAN_JOB`."""
    await give_up_plan(session, tenant_id, uuid.UUID(str(payload["run_id"])), reason)
