"""Reads of the provider's staff (the one door for them; writes are ``service.py``), including the people
board of the staff console: who serves which company.

The board reads through ``Database.system()`` (assignments and staff are provider tables) with explicit
filters: the active assignments, each with the open routine work its person holds in the tenant, plus the
pairs where a person still holds open work without an assignment (an admin's own runs, or someone
demobilised without a hand-over), so no work is left where nobody sees it. Three statements whatever the
number of tenants.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.handover import open_runs_by_handler
from backoffice.tenants.staff.models import Assignment, Staff, StaffRole

BOARD_MAX = 500


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



@dataclass(frozen=True)
class BoardRow:
    staff_id: uuid.UUID
    staff_name: str
    staff_email: str
    role: StaffRole
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    since: datetime | None  # None: no assignment (open work left behind, or an admin's own)
    open_runs: int


@dataclass(frozen=True)
class Board:
    rows: list[BoardRow]
    truncated: bool


async def people_board(session: AsyncSession, *, staff_id: uuid.UUID | None = None,
                       tenant_id: uuid.UUID | None = None) -> Board:
    """The board, optionally for one person and/or one company, by company then person."""
    query = (select(Assignment.staff_id, Assignment.tenant_id, Assignment.started_at, Staff, Tenant.slug,
                    Tenant.display_name)
             .join(Staff, Staff.id == Assignment.staff_id).join(Tenant, Tenant.id == Assignment.tenant_id)
             .where(Assignment.ended_at.is_(None)))
    if staff_id is not None:
        query = query.where(Assignment.staff_id == staff_id)
    if tenant_id is not None:
        query = query.where(Assignment.tenant_id == tenant_id)
    query = query.order_by(Tenant.slug, Staff.name).limit(BOARD_MAX + 1)
    assigned = (await session.execute(query)).all()
    work = await open_runs_by_handler(session, tenant_ids=None if tenant_id is None else [tenant_id],
                                      staff_ids=None if staff_id is None else [staff_id])
    rows: list[BoardRow] = []
    seen: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for member_id, member_tenant, started_at, member, slug, name in assigned[:BOARD_MAX]:
        seen.add((member_tenant, member_id))
        rows.append(BoardRow(member_id, member.name, member.email, member.role, member_tenant, slug, name, started_at,
                             work.get((member_tenant, member_id), 0)))
    left = [pair for pair in work if pair not in seen]
    if left:
        people = {s.id: s for s in (await session.execute(
            select(Staff).where(Staff.id.in_({s for _, s in left})))).scalars()}
        companies = {t.id: t for t in (await session.execute(
            select(Tenant).where(Tenant.id.in_({t for t, _ in left})))).scalars()}
        for pair in left:
            member, company = people.get(pair[1]), companies.get(pair[0])
            if member is None or company is None:
                continue
            rows.append(BoardRow(member.id, member.name, member.email, member.role, company.id, company.slug,
                                 company.display_name, None, work[pair]))
        rows.sort(key=lambda r: (r.tenant_slug, r.staff_name))
    return Board(rows=rows, truncated=len(assigned) > BOARD_MAX)


async def serving_staff(session: AsyncSession, tenant_id: uuid.UUID) -> list[Staff]:
    """Who may act on the tenant now: its mobilised operators and every provider admin (active ones)."""
    mobilised = select(Assignment.staff_id).where(Assignment.tenant_id == tenant_id, Assignment.ended_at.is_(None))
    query = (select(Staff).where(Staff.active.is_(True), (Staff.role == StaffRole.ADMIN) | Staff.id.in_(mobilised))
             .order_by(Staff.name))
    return list((await session.execute(query)).scalars())


async def active_assignment_since(session: AsyncSession, staff_id: uuid.UUID, tenant_id: uuid.UUID) -> datetime | None:
    query = (select(Assignment.started_at).where(Assignment.staff_id == staff_id, Assignment.tenant_id == tenant_id,
                                                 Assignment.ended_at.is_(None)).order_by(Assignment.started_at).limit(1))
    return (await session.execute(query)).scalar_one_or_none()


async def list_staff(session: AsyncSession) -> list[Staff]:
    """Every staff member, for choosing a person (a handful to a few hundred)."""
    return list((await session.execute(select(Staff).order_by(Staff.name))).scalars())
