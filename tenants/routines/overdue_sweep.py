"""The dunning sweep as a routine: every morning at 06:00 local, pending charges past due become overdue
and each gets its ``payment.overdue`` event, which opens the late-payment process.

The sweep is set-based (``tenants/dunning/sweep.py``): the scheduler sweeps every due tenant in one
statement and records a finished run per tenant, counting the charges it turned overdue; a run started by
hand sweeps its one tenant in its plan step. Either way the work is done inline, not item by item: a
charge is picked only while pending, so a re-run finds nothing new.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.tenants.dunning.sweep import sweep_overdue, sweep_session
from backoffice.tenants.routines.catalogue import Daily, Plan, Routine
from backoffice.tenants.routines.models import RoutineRun


async def _plan(session: AsyncSession, run: RoutineRun) -> Plan:
    emitted = await sweep_session(session, {run.tenant_id: date.fromisoformat(run.period)}, clock.now())
    count = emitted.get(run.tenant_id, 0)
    return Plan(done_inline=count)


async def _for_tenants(database, periods: dict[uuid.UUID, str]) -> dict[uuid.UUID, int]:
    dates = {tenant_id: date.fromisoformat(period) for tenant_id, period in periods.items()}
    return await sweep_overdue(database, tenant_ids=list(dates), today_by_tenant=dates)


OVERDUE_SWEEP = Routine(
    name="dunning_sweep",
    title={"pt-BR": "Verificação de inadimplência", "en": "Overdue check"},
    item_noun={"pt-BR": "cobranças vencidas apontadas", "en": "overdue charges found"},
    schedule=Daily(hour=6),
    plan=_plan,
    run_for_tenants=_for_tenants,
)
