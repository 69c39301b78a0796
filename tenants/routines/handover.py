"""A staff member's open routine work in a tenant, and handing it to someone else.

Open work: the runs a person follows up (``handled_by``: who started them, or who they were handed to) that
are under way (queued, running, paused), or finished with failed items or failed whole and not yet taken by
a retry run. The scheduler's and the CLI's runs have no handler.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from backoffice.tenants.routines.models import ACTIVE_STATUSES, RoutineRun, RunStatus

NEEDS_FOLLOW_UP = (RunStatus.PARTIAL, RunStatus.FAILED)


def open_run() -> ColumnElement[bool]:
    child = aliased(RoutineRun)
    retried = exists().where(child.tenant_id == RoutineRun.tenant_id, child.parent_run_id == RoutineRun.id)
    return or_(RoutineRun.status.in_(ACTIVE_STATUSES),
               and_(RoutineRun.status.in_(NEEDS_FOLLOW_UP), ~retried))


async def open_runs_by_handler(
    session: AsyncSession, *, tenant_ids: list[uuid.UUID] | None, staff_ids: list[uuid.UUID] | None = None,
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """{(tenant id, staff id): open runs} across tenants, for a system session (None: every tenant). One
    statement on the handler index."""
    query = (select(RoutineRun.tenant_id, RoutineRun.handled_by, func.count())
             .where(RoutineRun.handled_by.is_not(None), open_run())
             .group_by(RoutineRun.tenant_id, RoutineRun.handled_by))
    if tenant_ids is not None:
        query = query.where(RoutineRun.tenant_id.in_(tenant_ids))
    if staff_ids is not None:
        query = query.where(RoutineRun.handled_by.in_(staff_ids))
    return {(tenant_id, staff_id): count for tenant_id, staff_id, count in (await session.execute(query)).all()}


async def open_runs(session: AsyncSession, staff_id: uuid.UUID, *, limit: int = 200) -> list[RoutineRun]:
    """The open runs a person follows up in the session's tenant (``Database.provider``), newest first."""
    query = (select(RoutineRun).where(RoutineRun.handled_by == staff_id, open_run())
             .order_by(RoutineRun.created_at.desc()).limit(limit))
    return list((await session.execute(query)).scalars())


class RoutineWork:
    """The routine runs a person follows up in a tenant, as work a hand-over moves (tenants/staff/service.py
    ``OpenWork``)."""

    kind = "routine_runs"

    async def hand_over(self, session: AsyncSession, *, tenant_id: uuid.UUID, from_staff_id: uuid.UUID,
                        to_staff_id: uuid.UUID) -> list[uuid.UUID]:
        mine = and_(RoutineRun.tenant_id == tenant_id, RoutineRun.handled_by == from_staff_id, open_run())
        ids = list((await session.execute(select(RoutineRun.id).where(mine).order_by(RoutineRun.created_at)))
                   .scalars())
        if ids:
            await session.execute(
                update(RoutineRun).where(RoutineRun.tenant_id == tenant_id, RoutineRun.id.in_(ids),
                                         RoutineRun.handled_by == from_staff_id)
                .values(handled_by=to_staff_id).execution_options(synchronize_session=False))
        return ids


OPEN_WORK = (RoutineWork(),)
