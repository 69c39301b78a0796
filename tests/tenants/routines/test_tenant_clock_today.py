"""A tenant whose clock was moved forward (demo, staging: platform/timers/clock.py) has its own "today" where a
business date is read: a run started for "this period" is for the tenant's period, and the portal dashboard
ages overdue charges from the tenant's today. The other tenant, on real time, is untouched."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.timers.clock import advance_clock
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.billing import BILLING
from backoffice.tenants.routines.overdue_sweep import OVERDUE_SWEEP
from backoffice.web.portal.dashboard import figures

STAFF = Actor(type="staff", label="demo@provider.example")
# 30 November, 10:00 UTC (07:00 in São Paulo): three days ahead is another month.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    previous = clock.use(FrozenClock(NOW))
    yield
    clock.use(previous)


async def _advance(database, tenant, days: int) -> None:
    async with database.provider(tenant.id) as session:
        await advance_clock(session, tenant.id, by=timedelta(days=days), environment="test", acting=STAFF)


async def test_a_run_for_this_period_is_for_the_shifted_tenants_period(database, tenants, frozen):
    await _advance(database, tenants.a, 3)
    periods = {}
    for tenant in (tenants.a, tenants.b):
        async with database.tenant(tenant.id) as session:
            periods[tenant.slug] = (await engine.current_period(session, OVERDUE_SWEEP),
                                    await engine.current_period(session, BILLING))
    assert periods["alfa"][0] == "2026-12-03" and periods["alfa"][1] == "2026-12"
    assert periods["beta"][0] == "2026-11-30" and periods["beta"][1] == "2026-11"
    async with database.provider(tenants.a.id) as session:
        run = await engine.start_run(session, OVERDUE_SWEEP.name, actor=STAFF)  # no period: "this period"
    assert run.period == "2026-12-03"


async def test_the_dashboard_ages_overdue_charges_from_the_tenants_today(database, tenants, frozen):
    for tenant in (tenants.a, tenants.b):
        async with database.tenant(tenant.id) as session:  # 25 days overdue by the real calendar
            session.add(Charge(customer_id=tenant.customer_ids[0], amount_cents=9900, due_date=date(2026, 11, 5),
                               source="asaas", external_id="pay_late", status=ChargeStatus.OVERDUE))
    await _advance(database, tenants.a, 10)  # 35 days by A's
    ages = {}
    for tenant in (tenants.a, tenants.b):
        async with database.tenant(tenant.id) as session:
            ages[tenant.slug] = {label: count for label, _, count in (await figures(session, "America/Sao_Paulo"))
                                 .overdue_by_age if count}
    assert ages == {"alfa": {"31–60": 1}, "beta": {"0–30": 1}}
