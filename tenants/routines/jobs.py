"""The routine jobs the workers run: listing a run's items, and working one item."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.worker.jobs import tenant_job
from backoffice.tenants.routines import engine


@tenant_job(engine.PLAN_JOB, queue="routines", min_backoff=1_000, max_backoff=300_000)
async def plan(session: AsyncSession, *, tenant_id: uuid.UUID, run_id: str) -> None:
    await engine.plan_run(session, uuid.UUID(run_id))


@tenant_job(engine.ITEM_JOB, queue="routines", min_backoff=1_000, max_backoff=300_000)
async def item(session: AsyncSession, *, tenant_id: uuid.UUID, item_id: str) -> None:
    await engine.work_item(session, uuid.UUID(item_id))
