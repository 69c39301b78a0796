"""Writing to the outbox (in the caller's transaction) and completing entries (in the job's)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.worker.registry import Deferral


def add_to_outbox(session: AsyncSession, tenant_id: uuid.UUID, job: str, **payload: Any) -> OutboxEntry:
    """Queue ``job`` for the tenant; it is handed to the workers only once this transaction commits."""
    now = clock.now()
    entry = OutboxEntry(tenant_id=tenant_id, job=job, payload=payload, created_at=now, available_at=now)
    session.add(entry)
    return entry


async def complete_outbox_entry(session: AsyncSession, tenant_id: uuid.UUID, outbox_id: uuid.UUID) -> None:
    """Mark the entry done in the job's own transaction: done exactly when the job's work commits."""
    await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.tenant_id == tenant_id, OutboxEntry.id == outbox_id, OutboxEntry.completed_at.is_(None))
        .values(completed_at=clock.now(), lease_until=None)
    )


async def settle_outbox_entries(session: AsyncSession, tenant_id: uuid.UUID, done: list[uuid.UUID],
                                deferred: dict[uuid.UUID, Deferral]) -> None:
    """A batch job's rows: the done ones completed in one statement, the deferred ones made available again
    at their retry time (lease released, reason kept) in another, so the relay hands them out then."""
    if done:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.tenant_id == tenant_id, OutboxEntry.id.in_(done), OutboxEntry.completed_at.is_(None))
            .values(completed_at=clock.now(), lease_until=None)
            .execution_options(synchronize_session=False)
        )
    if deferred:
        table = OutboxEntry.__table__
        await session.execute(
            update(table)
            .where(table.c.tenant_id == bindparam("b_tenant"), table.c.id == bindparam("b_id"),
                   table.c.completed_at.is_(None))
            .values(available_at=bindparam("b_until"), lease_until=None, last_error=bindparam("b_reason")),
            [{"b_tenant": tenant_id, "b_id": outbox_id, "b_until": deferral.retry_at, "b_reason": deferral.reason[:2000]}
             for outbox_id, deferral in deferred.items()],
        )
