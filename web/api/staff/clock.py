"""/api/v1/staff/tenants/{id}/clock: run one tenant's clock forward in demo and staging, so its due timers
(grace deadlines, reminders, blocks) fire now; refused in production. Audited as the staff member
(``platform/timers/clock.py``), like the CLI's ``backoffice clock advance``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from litestar import get, post
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from pydantic import BaseModel, Field

from backoffice.platform import clock
from backoffice.tenants.staff.models import Staff
from backoffice.platform.timers.clock import ClockShiftRefused, advance_clock, offsets, reset_clock
from backoffice.tenants.registry.models import Tenant
from backoffice.web.api.staff.auth import actor, staff_problems



class ClockAdvanceIn(BaseModel):
    days: float = Field(default=0, ge=0, le=400, description="Days to move forward.")
    hours: float = Field(default=0, ge=0, le=9600, description="Hours to move forward.")
    reason: str | None = Field(default=None, max_length=1000, description="Why; kept in the audit log.")


class ClockReset(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class ClockOut(BaseModel):
    tenant_id: uuid.UUID
    environment: str
    offset_seconds: int = Field(description="How far the tenant's clock runs ahead of real time.")
    tenant_now: datetime


async def _out(state: State, tenant: Tenant) -> ClockOut:
    async with state.database.provider(tenant.id) as session:
        offset = (await offsets(session, [tenant.id])).get(tenant.id, timedelta(0))
    return ClockOut(tenant_id=tenant.id, environment=state.settings.environment,
                    offset_seconds=int(offset.total_seconds()), tenant_now=clock.now() + offset)


@get("/tenants/{tenant_id:uuid}/clock", operation_id="staffGetTenantClock", responses=staff_problems())
async def get_clock(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State) -> ClockOut:
    return await _out(state, tenant)


@post("/tenants/{tenant_id:uuid}/clock/advance", operation_id="staffAdvanceTenantClock", status_code=200,
      responses=staff_problems())
async def advance(tenant_id: uuid.UUID, tenant: Tenant, data: ClockAdvanceIn, staff: Staff, state: State) -> ClockOut:
    try:
        async with state.database.provider(tenant.id) as session:
            await advance_clock(session, tenant.id, by=timedelta(days=data.days, hours=data.hours),
                                environment=state.settings.environment, acting=actor(staff), reason=data.reason)
    except ClockShiftRefused as refused:
        raise PermissionDeniedException(detail=str(refused)) from None
    return await _out(state, tenant)


@post("/tenants/{tenant_id:uuid}/clock/reset", operation_id="staffResetTenantClock", status_code=200,
      responses=staff_problems())
async def reset(tenant_id: uuid.UUID, tenant: Tenant, data: ClockReset, staff: Staff, state: State) -> ClockOut:
    async with state.database.provider(tenant.id) as session:
        await reset_clock(session, tenant.id, acting=actor(staff), reason=data.reason)
    return await _out(state, tenant)


clock_routes = [get_clock, advance, reset]
