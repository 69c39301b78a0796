"""/api/v1/routines and /api/v1/routine-runs: the company's back-office routines and their runs, read only
(scope ``routines:read``). Runs are started, paused and retried by the back office, not by the API."""

from __future__ import annotations

import uuid

from litestar import Router, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines import engine, queries
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunStatus, Trigger
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.routine_schemas import (
    PERIOD, ROUTINE_NAME, RoutineOut, RunDetailOut, RunOut, detail_out, run_out,
)
from backoffice.web.api.schemas import Page

SCOPE = "routines:read"


async def _locale(session: AsyncSession, principal: ApiPrincipal) -> str:
    return (await session.get(Tenant, principal.tenant_id)).locale


@endpoint(get, "/routines", scope=SCOPE, operation_id="listRoutines")
async def list_routines(session: AsyncSession) -> Page[RoutineOut]:
    """Each routine: its schedule in the company's time zone, paused or not, its last and next run. The
    routines are the platform's fixed catalogue, so the list is one page (``next_cursor`` is null)."""
    return Page[RoutineOut](data=[RoutineOut.model_validate(e) for e in await queries.routine_statuses(session)],
                            next_cursor=None)


@endpoint(get, "/routine-runs", scope=SCOPE, operation_id="listRoutineRuns")
async def list_runs(
    session: AsyncSession, principal: ApiPrincipal,
    routine: str | None = Parameter(default=None, pattern=ROUTINE_NAME),
    status: list[RunStatus] | None = Parameter(default=None, description="One or more; repeat the parameter."),
    period: str | None = Parameter(default=None, pattern=PERIOD, description="YYYY-MM or YYYY-MM-DD."),
    trigger: Trigger | None = None,
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[RunOut]:
    """Newest first."""
    query = queries.runs_query(routine=routine, statuses=status, period=period, trigger=trigger)
    page = await paginate(session, query, RoutineRun, sorts={"created_at": RoutineRun.created_at}, sort="-created_at",
                          limit=limit, cursor=cursor)
    locale = await _locale(session, principal)
    return Page[RunOut](data=[run_out(engine.run_view(run, locale=locale)) for run in page.items],
                        next_cursor=page.next_cursor)


@endpoint(get, "/routine-runs/{run_id:uuid}", scope=SCOPE, operation_id="getRoutineRun", errors=(404,))
async def get_run(
    run_id: uuid.UUID, session: AsyncSession, principal: ApiPrincipal,
    item_status: ItemStatus | None = Parameter(default=None, description="Only the items in this status."),
    items_limit: int = Parameter(default=queries.ITEMS_SHOWN, ge=1, le=queries.ITEMS_MAX),
) -> RunDetailOut:
    """The run with its items, failed first, and a reconciliation run's findings."""
    detail = await queries.run_detail(session, run_id, item_status=item_status, limit=items_limit)
    return detail_out(engine.run_view(detail.run, locale=await _locale(session, principal)), detail,
                      [engine.item_view(item) for item in detail.items])


router = Router("/", route_handlers=[list_routines, list_runs, get_run], tags=["routines"])
