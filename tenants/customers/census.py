"""Jobs of the platform itself."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.worker.jobs import tenant_job
from backoffice.tenants.customers.models import Customer


@tenant_job("platform.tenant_census", max_retries=3)
async def tenant_census(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, int]:
    """Counts what a tenant has; used by operators (and tests) to check that a worker runs jobs in
    the right tenant's scope end to end."""
    customers = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    return {"customers": customers}
