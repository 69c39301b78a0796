"""Reads of the tenant registry for the staff console (through ``Database.system()``, with explicit filters)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.onboarding import STEPS

SHOWN = 50


def tenants_query(*, only: Collection[uuid.UUID] | None = None) -> Select:
    """The tenants a staff member serves (``only``: their assigned ids; None: all, for a provider admin),
    for a paginated list through ``Database.system()``."""
    query = select(Tenant)
    return query if only is None else query.where(Tenant.id.in_(list(only)))


async def tenant_slug_for_host(session: AsyncSession, host: str) -> str | None:
    """The slug of the tenant whose portal is served on this host: a host is routed only once its DNS proof
    was seen (``custom_host``; a pending one is not). Readable through ``Database.anonymous()``."""
    return (await session.execute(select(Tenant.slug).where(Tenant.custom_host == host.lower()))).scalar()


async def onboarding_in_progress(session: AsyncSession, *, only: Collection[uuid.UUID] | None = None,
                                 limit: int = SHOWN) -> list[Tenant]:
    """Companies whose onboarding was started in the console and is not finished, newest first; ``only``:
    the ones a staff member serves (None: all, for a provider admin). One statement; the step count is read
    from the JSON list."""
    steps = func.json_array_length(Tenant.onboarding_steps)
    query = select(Tenant).where(steps >= 1, steps < len(STEPS))  # started in the flow, not finished
    if only is not None:
        query = query.where(Tenant.id.in_(list(only)))
    query = query.order_by(Tenant.created_at.desc(), Tenant.id).limit(limit)
    return list((await session.execute(query)).scalars())
