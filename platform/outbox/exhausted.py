"""Giving up on outbox rows whose job never completes, with the reason, so nothing loops forever.

A row is re-dispatched each time its lease runs out. A job that fails every time (a bug, a row its job
cannot handle) would otherwise be sent again every lease period for ever. After ``MAX_DISPATCHES``, and
no sooner than ``GIVE_UP_AFTER`` after the row was written (leases are 30 s: a backlog in the broker longer
than that re-dispatches rows that merely wait, and those must not be given up on), the row is closed with the reason in ``last_error``; if it was an event's process step, the event is marked
``failed`` with that reason, so staff see it among the dead letters and can replay it; if it was a
routine's item (or a run's planning), the item (or run) fails with that reason, so the run finishes and
staff can retry its failed items.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update

from backoffice.platform import clock, metrics
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.events.intake import PROCESS_JOB
from backoffice.tenants.events.models import Event, EventStatus

log = logging.getLogger(__name__)
MAX_DISPATCHES = 12
GIVE_UP_AFTER = timedelta(hours=1)


async def give_up_exhausted(database: Database, *, max_dispatches: int = MAX_DISPATCHES, limit: int = 200) -> int:
    from backoffice.tenants.routines import engine as routines

    now = clock.now()
    routine_work: list[tuple[OutboxEntry, str]] = []
    async with database.system() as session:
        query = (
            select(OutboxEntry)
            .where(OutboxEntry.completed_at.is_(None), OutboxEntry.attempts >= max_dispatches,
                   OutboxEntry.created_at <= now - GIVE_UP_AFTER,
                   or_(OutboxEntry.lease_until.is_(None), OutboxEntry.lease_until < now))
            .limit(limit)
        )
        if database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list((await session.execute(query)).scalars())
        for row in rows:
            reason = f"gave up after {row.attempts} dispatches: the {row.job} job never completed"
            row.completed_at = now
            row.last_error = ((row.last_error + " | ") if row.last_error else "") + reason
            log.error("outbox %s (tenant %s): %s", row.id, row.tenant_id, reason)
            event_id = row.payload.get("event_id") if row.job == PROCESS_JOB else None
            if event_id:
                await session.execute(
                    update(Event)
                    .where(Event.tenant_id == row.tenant_id, Event.id == uuid.UUID(event_id),
                           Event.status == EventStatus.PENDING)
                    .values(status=EventStatus.FAILED, error=reason, processed_at=now)
                )
            if row.job in (routines.ITEM_JOB, routines.PLAN_JOB):
                routine_work.append((row, reason))
    # The routine's bookkeeping runs in the tenant's own session, as the job would have.
    for row, reason in routine_work:
        async with database.provider(row.tenant_id) as session:
            if row.job == routines.ITEM_JOB:
                await routines.give_up_item(session, row.tenant_id, uuid.UUID(row.payload["item_id"]), reason)
            else:
                await routines.give_up_plan(session, row.tenant_id, uuid.UUID(row.payload["run_id"]), reason)
    metrics.DEAD_LETTERS.labels("outbox").inc(len(rows))
    return len(rows)
