"""/api/v1/staff routine runs: every run across the tenants a staff member serves, each tenant's routines
(schedule, paused or not, last and next run), and the actions on them: start a run, retry a run's failed
items, pause, resume, move the schedule. Each action is the engine's, audited with the staff member as
actor and their reason; a tenant the staff member does not serve answers 404 like a missing one."""

from __future__ import annotations

import uuid

from litestar import get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter

from backoffice.platform.db.session import NotFound
from backoffice.tenants.staff.models import Staff, StaffRole
from backoffice.tenants.staff.service import assigned_tenant_ids
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.queries import tenants_query
from backoffice.tenants.routines import engine, queries
from backoffice.tenants.routines.catalogue import Routine, UnknownRoutine, get_routine
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunStatus, Trigger
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.routine_schemas import (
    PERIOD, ROUTINE_NAME, ReasonIn, RoutineOut, RunOut, ScheduleIn, StaffRunDetailOut, StaffRunOut, StartRunIn,
    TenantRoutinesOut, detail_out, run_out,
)
from backoffice.web.api.schemas import Page
from backoffice.web.api.staff.auth import actor, staff_problems, tenant_for

SORTS = {"created_at": RoutineRun.created_at}


def routine_or_404(name: str) -> Routine:
    """A routine named in the path; an unknown name is a missing resource."""
    try:
        return get_routine(name)
    except UnknownRoutine:
        raise NotFound(Routine, name) from None


@get("/routine-runs", operation_id="staffListRoutineRuns", responses=staff_problems())
async def list_runs(
    staff: Staff, state: State,
    tenant_id: uuid.UUID | None = None,
    routine: str | None = Parameter(default=None, pattern=ROUTINE_NAME),
    status: list[RunStatus] | None = Parameter(default=None, description="One or more; repeat the parameter."),
    period: str | None = Parameter(default=None, pattern=PERIOD, description="YYYY-MM or YYYY-MM-DD."),
    trigger: Trigger | None = None,
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[StaffRunOut]:
    """Runs of every tenant the staff member serves (provider admins: every tenant), newest first."""
    if tenant_id is not None:
        await tenant_for(state, staff, tenant_id)
        tenant_ids = [tenant_id]
    else:
        async with state.database.system() as session:
            tenant_ids = None if staff.role == StaffRole.ADMIN else await assigned_tenant_ids(session, staff)
    async with state.database.system() as session:
        query = queries.staff_runs_query(tenant_ids, routine=routine, statuses=status, period=period, trigger=trigger)
        page = await paginate(session, query, RoutineRun, sorts=SORTS, sort="-created_at", limit=limit,
                              cursor=cursor)
        owners = await queries.tenants_by_id(session, {run.tenant_id for run in page.items})
    return Page[StaffRunOut](
        data=[run_out(engine.run_view(run, locale=owners[run.tenant_id].locale), owners[run.tenant_id].display_name)
              for run in page.items],
        next_cursor=page.next_cursor)


@get("/tenants/{tenant_id:uuid}/routines", operation_id="staffListRoutines", responses=staff_problems())
async def list_routines(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State) -> Page[RoutineOut]:
    """Each routine of the tenant: schedule in the tenant's time zone, paused (by whom, why), last and next run.
    The routines are the platform's fixed catalogue, so one page (``next_cursor`` is null)."""
    async with state.database.provider(tenant.id) as session:
        return Page[RoutineOut](data=[RoutineOut.model_validate(e) for e in await queries.routine_statuses(session)],
                                next_cursor=None)


NEEDS_ATTENTION = {RunStatus.FAILED.value, RunStatus.PARTIAL.value, RunStatus.PAUSED.value}


def _needs_attention(routine: dict) -> bool:
    last = routine.get("last_run") or {}
    return routine["paused"] or last.get("status") in NEEDS_ATTENTION


@get("/routines", operation_id="staffRoutinesOverview", responses=staff_problems())
async def routines_overview(
    staff: Staff, state: State,
    attention: bool = Parameter(default=False, description="Only the tenants with a routine paused or whose "
                                                           "last run failed, partly failed or waits paused."),
    limit: int = Parameter(default=50, ge=1, le=200, description="Tenants per page."),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[TenantRoutinesOut]:
    """Every tenant the staff member serves (provider admins: every tenant), by name, with each routine's
    schedule in the tenant's time zone, paused or not, last run and next run: the morning's look at how
    the back office stands. With ``attention``, a page may hold fewer tenants than ``limit``."""
    async with state.database.system() as session:
        only = None if staff.role == StaffRole.ADMIN else await assigned_tenant_ids(session, staff)
        page = await paginate(session, tenants_query(only=only), Tenant, sorts={"name": Tenant.display_name},
                              sort="name", limit=limit, cursor=cursor)
    data = []
    for tenant in page.items:
        async with state.database.provider(tenant.id) as session:
            routines = await queries.routine_statuses(session)
        if attention and not any(_needs_attention(r) for r in routines):
            continue
        data.append(TenantRoutinesOut(tenant_id=tenant.id, tenant_name=tenant.display_name,
                                      routines=[RoutineOut.model_validate(r) for r in routines]))
    return Page[TenantRoutinesOut](data=data, next_cursor=page.next_cursor)


@patch("/tenants/{tenant_id:uuid}/routines/{routine:str}", operation_id="staffScheduleRoutine",
       responses=staff_problems())
async def schedule_routine(tenant_id: uuid.UUID, routine: str, tenant: Tenant, data: ScheduleIn, staff: Staff,
                           state: State) -> RoutineOut:
    """Move the routine's local hour (and day of the month, for monthly routines); null resets to the catalogue's."""
    name = routine_or_404(routine).name
    async with state.database.provider(tenant.id) as session:
        current = await engine.setting_for(session, name)
        given = data.model_fields_set
        hour = data.hour if "hour" in given else (current.hour if current else None)
        day = data.day if "day" in given else (current.day if current else None)
        await engine.set_schedule(session, name, hour=hour, day=day, actor=actor(staff), reason=data.reason)
        return RoutineOut.model_validate(await queries.routine_status(session, name))


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/pause", operation_id="staffPauseRoutine", status_code=200,
      responses=staff_problems())
async def pause_routine(tenant_id: uuid.UUID, routine: str, tenant: Tenant, data: ReasonIn, staff: Staff,
                        state: State) -> RoutineOut:
    """No scheduled run starts and a running one's pending items wait, until resumed."""
    name = routine_or_404(routine).name
    async with state.database.provider(tenant.id) as session:
        await engine.pause(session, name, actor=actor(staff), reason=data.reason)
        return RoutineOut.model_validate(await queries.routine_status(session, name))


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/resume", operation_id="staffResumeRoutine", status_code=200,
      responses=staff_problems())
async def resume_routine(tenant_id: uuid.UUID, routine: str, tenant: Tenant, data: ReasonIn, staff: Staff,
                         state: State) -> RoutineOut:
    """The routine runs again; the runs it held go on from their pending items."""
    name = routine_or_404(routine).name
    async with state.database.provider(tenant.id) as session:
        await engine.resume(session, name, actor=actor(staff), reason=data.reason)
        return RoutineOut.model_validate(await queries.routine_status(session, name))


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/runs", operation_id="staffStartRoutineRun", status_code=202,
      responses=staff_problems(409))
async def start_run(tenant_id: uuid.UUID, routine: str, tenant: Tenant, data: StartRunIn, staff: Staff,
                    state: State) -> RunOut:
    """Queue a run (default: the current period). 409 while a run of the same period is under way or the
    routine is paused; 422 naming `period` when it does not fit the routine's schedule."""
    name = routine_or_404(routine).name
    async with state.database.provider(tenant.id) as session:
        run = await engine.start_run(session, name, period=data.period, actor=actor(staff), reason=data.reason)
        return run_out(engine.run_view(run, locale=tenant.locale))


@get("/tenants/{tenant_id:uuid}/routine-runs/{run_id:uuid}", operation_id="staffGetRoutineRun",
     responses=staff_problems())
async def get_run(
    tenant_id: uuid.UUID, run_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State,
    item_status: ItemStatus | None = Parameter(default=None, description="Only the items in this status."),
    items_limit: int = Parameter(default=queries.ITEMS_SHOWN, ge=1, le=queries.ITEMS_MAX),
) -> StaffRunDetailOut:
    """The run with its items, failed first (and a reconciliation run's findings)."""
    async with state.database.provider(tenant.id) as session:
        detail = await queries.run_detail(session, run_id, item_status=item_status, limit=items_limit)
        return detail_out(engine.run_view(detail.run, locale=tenant.locale), detail,
                          [engine.item_view(item) for item in detail.items], tenant.display_name)


@post("/tenants/{tenant_id:uuid}/routine-runs/{run_id:uuid}/retry", operation_id="staffRetryRoutineRun",
      status_code=202, responses=staff_problems(409))
async def retry_run(tenant_id: uuid.UUID, run_id: uuid.UUID, tenant: Tenant, data: ReasonIn, staff: Staff,
                    state: State) -> RunOut:
    """A new run of the same routine and period over the failed items of a finished run."""
    async with state.database.provider(tenant.id) as session:
        run = await engine.retry_failed(session, run_id, actor=actor(staff), reason=data.reason)
        return run_out(engine.run_view(run, locale=tenant.locale))


routine_routes = [list_runs, routines_overview, list_routines, schedule_routine, pause_routine, resume_routine, start_run, get_run,
                  retry_run]
