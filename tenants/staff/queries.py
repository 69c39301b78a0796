"""Reads of the provider's staff (the one door for them; writes are ``service.py``)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.staff.models import Assignment, Staff


async def staff_and_their_tenants(session: AsyncSession) -> list[tuple[Staff, list[str]]]:
    """Every staff member (by e-mail) with the slugs of the companies they are assigned to now."""
    members = (await session.execute(select(Staff).order_by(Staff.email))).scalars().all()
    rows = (await session.execute(
        select(Assignment.staff_id, Tenant.slug).join(Tenant, Tenant.id == Assignment.tenant_id)
        .where(Assignment.ended_at.is_(None)))).all()
    serving: dict[uuid.UUID, list[str]] = {}
    for staff_id, slug in rows:
        serving.setdefault(staff_id, []).append(slug)
    return [(member, sorted(serving.get(member.id, []))) for member in members]
