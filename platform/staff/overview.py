"""Cross-tenant reads for the staff console's overview (system session, explicit filters, set-based)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.staff.models import Assignment
from backoffice.tenants.registry.models import Tenant


@dataclass(frozen=True)
class ServedTenant:
    id: uuid.UUID
    slug: str
    display_name: str
    status: str


def served_ids(staff_id: uuid.UUID, all_tenants: bool):
    """The tenants a staff member serves, as a subquery (admins: every tenant; operators: assigned now)."""
    if all_tenants:
        return select(Tenant.id)
    return select(Assignment.tenant_id).where(Assignment.staff_id == staff_id, Assignment.ended_at.is_(None))


async def served_tenants(session: AsyncSession, *, staff_id: uuid.UUID, all_tenants: bool) -> list[ServedTenant]:
    query = select(Tenant.id, Tenant.slug, Tenant.display_name, Tenant.status).order_by(Tenant.display_name)
    if not all_tenants:
        query = query.where(Tenant.id.in_(served_ids(staff_id, False)))
    return [ServedTenant(r.id, r.slug, r.display_name, str(getattr(r.status, "value", r.status)))
            for r in await session.execute(query)]
