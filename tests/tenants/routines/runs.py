"""Reading a run back in the routines' tests."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backoffice.platform.db.session import get_owned
from backoffice.tenants.routines.models import RoutineRun, RunItem


async def run_and_items(spine, tenant_id: uuid.UUID, run_id: uuid.UUID) -> tuple[RoutineRun, list[RunItem]]:
    """The run, through its tenant's session, and its items by label."""
    async with spine.database.tenant(tenant_id) as session:
        run = await get_owned(session, RoutineRun, run_id)
        items = (await session.execute(select(RunItem).where(RunItem.run_id == run_id).order_by(RunItem.label))).scalars()
        return run, list(items)
