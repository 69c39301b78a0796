"""Writing to the outbox (in the caller's transaction) and completing entries (in the job's)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import String, case, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import UTCDateTime
from backoffice.platform.outbox.lease import LeaseLost
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.worker.jobs import Deferral


def add_to_outbox(session: AsyncSession, tenant_id: uuid.UUID, job: str, **payload: Any) -> OutboxEntry:
    """Queue ``job`` for the tenant; it is handed to the workers only once this transaction commits."""
    now = clock.now()
    entry = OutboxEntry(tenant_id=tenant_id, job=job, payload=payload, created_at=now, available_at=now)
    session.add(entry)
    return entry


async def complete_outbox_entry(session: AsyncSession, tenant_id: uuid.UUID, outbox_id: uuid.UUID,
                                *, token: uuid.UUID | None = None) -> None:
    """Mark the entry done in the job's own transaction: done exactly when the job's work commits.

    ``token``: the job's lease token (``lease.py``); the row is completed only while the job still holds
    it, else :class:`LeaseLost` rolls the job back (another job has the row now)."""
    await settle_outbox_entries(session, tenant_id, [outbox_id], {}, token=token)


async def settle_outbox_entries(session: AsyncSession, tenant_id: uuid.UUID, done: list[uuid.UUID],
                                deferred: dict[uuid.UUID, Deferral], *, token: uuid.UUID | None = None) -> None:
    """A batch job's rows: the done ones completed in one statement, the deferred ones made available again
    at their retry time (lease released, reason kept) in another, so the relay hands them out then.

    With ``token`` only rows the job still holds are touched, and a row it no longer holds raises
    :class:`LeaseLost` (the caller's transaction rolls back, so neither its work nor a stale completion or
    deferral lands on a row another job runs now). Without one (work sent directly, not through the
    relay) the rows are settled as they are."""
    table = OutboxEntry.__table__
    owned = [table.c.tenant_id == tenant_id, table.c.completed_at.is_(None)]
    if token is not None:
        owned.append(table.c.lease_token == token)
    settled = 0
    if done:
        result = await session.execute(
            update(table)
            .where(table.c.id.in_(done), *owned)
            .values(completed_at=clock.now(), lease_until=None, lease_token=None)
            .returning(table.c.id)
        )
        settled += len(result.all())
    if deferred:
        # One statement for every deferred row: each gets its own time and reason by id.
        result = await session.execute(
            update(table)
            .where(table.c.id.in_(list(deferred)), *owned)
            .values(available_at=case({i: literal(d.retry_at, UTCDateTime()) for i, d in deferred.items()},
                                      value=table.c.id),
                    last_error=case({i: literal(d.reason[:2000], String()) for i, d in deferred.items()},
                                    value=table.c.id),
                    lease_until=None, lease_token=None)
            .returning(table.c.id)
        )
        settled += len(result.all())
    if token is not None and settled != len(set(done) | set(deferred)):
        raise LeaseLost(f"tenant {tenant_id}: {len(set(done) | set(deferred)) - settled} outbox row(s) of this job "
                        "were taken by another job after its lease ran out")
