"""Writing to the outbox (in the caller's transaction) and completing entries (in the job's)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.outbox.models import OutboxEntry


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
