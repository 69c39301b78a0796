"""A tenant's clock, run forward in demo and staging so a late payment can be walked through in minutes.

A tenant's time is the real time plus its offset (a ``tenant_clocks`` row; none is no shift). Business time
follows it everywhere the platform decides something by the calendar: due timers (``fire_due_timers``:
grace deadlines, reminders, blocks, terminations), the routines' schedule (the dunning sweep's "today"),
and the process steps (``Step.now``: a grace deadline counts from the tenant's now). Records of when
something actually happened (audit, timeline, delivery times) and the platform's own machinery (outbox
leases and retries) keep real time, so a shifted tenant's work is never held back.

Advancing is refused in production (``BACKOFFICE_ENVIRONMENT``), always audited, and only forward (a
clock that went back would fire nothing twice but would confuse everyone); ``reset_clock`` puts a tenant
back on real time, in any environment. Both go through the provider door: the CLI and the staff API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import dialect_insert, ensure_scope
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.timers.models import TenantClock

MAX_STEP = timedelta(days=400)  # one step; a year of dunning is plenty to show


class ClockShiftRefused(Exception):
    """This deployment is production: a tenant's clock never moves there."""

    def __init__(self, environment: str) -> None:
        super().__init__(f"a tenant's clock can be advanced only in staging, demo or test; this deployment is "
                         f"{environment} (BACKOFFICE_ENVIRONMENT)")


async def offsets(session: AsyncSession, tenant_ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, timedelta]:
    """The shifted tenants among ``tenant_ids`` (every one when None), in one statement."""
    query = select(TenantClock.tenant_id, TenantClock.offset_seconds).where(TenantClock.offset_seconds != 0)
    if tenant_ids is not None:
        query = query.where(TenantClock.tenant_id.in_(list(tenant_ids)))
    return {tenant_id: timedelta(seconds=seconds) for tenant_id, seconds in (await session.execute(query)).all()}


async def tenant_now(session: AsyncSession, tenant_id: uuid.UUID) -> datetime:
    return clock.now() + (await offsets(session, [tenant_id])).get(tenant_id, timedelta(0))


async def advance_clock(session: AsyncSession, tenant_id: uuid.UUID, *, by: timedelta, environment: str,
                        acting: Actor, reason: str | None = None) -> timedelta:
    """Move the tenant's clock ``by`` forward; returns the tenant's offset now. One statement and the audit
    entry, in the caller's transaction (a provider session on the tenant)."""
    ensure_scope(session, tenant_id)
    if environment == "production":
        raise ClockShiftRefused(environment)
    if by <= timedelta(0) or by > MAX_STEP:
        raise ValidationFailed([FieldError("by", f"expected more than 0 and at most {MAX_STEP.days} days")])
    seconds = int(by.total_seconds())
    insert = dialect_insert(session)(TenantClock).values(
        tenant_id=tenant_id, id=uuid.uuid4(), offset_seconds=seconds, updated_at=clock.now(), updated_by=acting.label)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={"offset_seconds": TenantClock.offset_seconds + seconds, "updated_at": clock.now(),
              "updated_by": acting.label}))
    total = (await offsets(session, [tenant_id])).get(tenant_id, timedelta(0))
    await record(session, actor=acting, action="tenant.clock_advanced", target_type="tenant", target_id=tenant_id,
                 tenant_id=tenant_id, reason=reason,
                 detail={"environment": environment, "advanced_seconds": seconds,
                         "offset_seconds": int(total.total_seconds()), "tenant_now": (clock.now() + total).isoformat()})
    return total


async def reset_clock(session: AsyncSession, tenant_id: uuid.UUID, *, acting: Actor, reason: str | None = None) -> None:
    """Back on real time (timers already fired stay fired; those still due in the future wait again)."""
    ensure_scope(session, tenant_id)
    before = (await offsets(session, [tenant_id])).get(tenant_id, timedelta(0))
    await session.execute(delete(TenantClock).where(TenantClock.tenant_id == tenant_id))
    await record(session, actor=acting, action="tenant.clock_reset", target_type="tenant", target_id=tenant_id,
                 tenant_id=tenant_id, reason=reason, detail={"offset_seconds_before": int(before.total_seconds())})
