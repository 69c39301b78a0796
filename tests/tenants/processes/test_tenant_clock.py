"""A tenant's clock run forward (issue 18, finding 6): a late payment walked through grace to block in
seconds, by the tenant's own clock only; another tenant's clock and cases untouched; production refuses;
the CLI and the staff API do it, audited. The real clock (the spine's frozen one) never moves here."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.tenants.staff.service import assign_staff, create_staff
from backoffice.platform.timers.clock import ClockShiftRefused, advance_clock, offsets, reset_clock
from backoffice.platform.timers.models import TenantClock
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app
from tests.conftest import env_for_subprocess
from tests.tenants.processes.test_scenarios import active_customer, overdue, rows

DEMO_STAFF = Actor(type="staff", label="demo@provider.example")


async def audit(database, tenant_id, action: str) -> list[AuditEntry]:
    async with database.system() as session:
        return list((await session.execute(select(AuditEntry).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.action == action))).scalars())


async def test_advancing_one_tenants_clock_walks_its_late_payment_to_the_block(spine):
    a, b = spine.tenants.a, spine.tenants.b
    ours = await active_customer(spine, a, name="Oficina Rápida", tax_id="12.ABC.345/01DE-35")
    theirs = await active_customer(spine, b, name="Padaria Sol", tax_id="45.723.174/0001-10")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(ours)}))
    await spine.ingest(b.id, overdue("evt_od", {"id": str(theirs)}))
    await spine.settle()
    [case] = await rows(spine, a.id, DunningCase)
    assert case.status == CaseStatus.GRACE and case.deadline_at > spine.clock.now() + timedelta(days=5)

    async with spine.database.provider(a.id) as session:
        offset = await advance_clock(session, a.id, by=timedelta(days=3), environment="demo", acting=DEMO_STAFF,
                                     reason="showing the customer the reminders")
    assert offset == timedelta(days=3)
    await spine.settle()  # the scheduler's next tick, at the same real time
    reminders = [m for m in spine.sent(Channel.EMAIL, a.id) if m.payload["kind"] == "dunning.reminder"]
    assert len(reminders) == 1 and spine.sent(Channel.PLATFORM, a.id) == []

    async with spine.database.provider(a.id) as session:
        offset = await advance_clock(session, a.id, by=timedelta(days=3), environment="demo", acting=DEMO_STAFF)
    assert offset == timedelta(days=6)
    await spine.settle()
    assert (await spine.customer(a.id, ours)).lifecycle == Lifecycle.BLOCKED
    [block] = spine.sent(Channel.PLATFORM, a.id)
    assert block.payload["command"] == "block" and "not paid" in block.payload["reason"]
    [case] = await rows(spine, a.id, DunningCase)
    assert case.status == CaseStatus.BLOCKED and case.blocked_at >= case.deadline_at  # in the tenant's time

    # The other tenant: real time, still in grace, nothing sent to its platform, no clock row.
    assert (await spine.customer(b.id, theirs)).lifecycle == Lifecycle.IN_GRACE
    assert spine.sent(Channel.PLATFORM, b.id) == []
    assert [m.payload["kind"] for m in spine.sent(Channel.EMAIL, b.id)] == ["dunning.notice"]
    async with spine.database.system() as session:
        assert await offsets(session) == {a.id: timedelta(days=6)}

    entries = await audit(spine.database, a.id, "tenant.clock_advanced")
    assert [e.detail["advanced_seconds"] for e in entries] == [3 * 86_400, 3 * 86_400]
    assert entries[0].actor_label == "demo@provider.example" and entries[0].reason == "showing the customer the reminders"
    assert entries[1].detail["offset_seconds"] == 6 * 86_400 and entries[1].detail["environment"] == "demo"
    assert await audit(spine.database, b.id, "tenant.clock_advanced") == []

    async with spine.database.provider(a.id) as session:
        await reset_clock(session, a.id, acting=DEMO_STAFF)
    async with spine.database.system() as session:
        assert await offsets(session) == {}
    assert len(await audit(spine.database, a.id, "tenant.clock_reset")) == 1


async def test_production_refuses_and_writes_nothing(database, tenants):
    with pytest.raises(ClockShiftRefused) as refused:
        async with database.provider(tenants.a.id) as session:
            await advance_clock(session, tenants.a.id, by=timedelta(days=1), environment="production",
                                acting=DEMO_STAFF)
    assert "production" in str(refused.value) and "BACKOFFICE_ENVIRONMENT" in str(refused.value)
    async with database.system() as session:
        assert (await session.execute(select(TenantClock))).scalars().all() == []
    assert await audit(database, tenants.a.id, "tenant.clock_advanced") == []


def run_cli(database, *args: str, environment: str) -> subprocess.CompletedProcess:
    env = {**env_for_subprocess(database.settings), "BACKOFFICE_ENVIRONMENT": environment}
    return subprocess.run([sys.executable, "-m", "backoffice.web.entry.cli", "clock", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=os.getcwd())


async def test_the_cli_advances_in_staging_and_refuses_in_production(database, tenants):
    refused = run_cli(database, "advance", "alfa", "--days", "2", environment="production")
    assert refused.returncode == 3 and "production" in refused.stderr and "BACKOFFICE_ENVIRONMENT" in refused.stderr
    done = run_cli(database, "advance", "alfa", "--days", "2", "--hours", "12", "--reason", "staging walk-through",
                   environment="staging")
    assert done.returncode == 0, done.stderr
    assert "alfa's clock is 2.5 days ahead" in done.stdout
    async with database.system() as session:
        assert await offsets(session) == {tenants.a.id: timedelta(days=2, hours=12)}
    [entry] = await audit(database, tenants.a.id, "tenant.clock_advanced")
    assert entry.actor_type == "cli" and entry.reason == "staging walk-through"


PASSWORD = "a-long-enough-password"


async def test_the_staff_api_advances_for_an_assigned_tenant_only_and_refuses_in_production(database, tenants):
    system = Actor.system("tests")
    async with database.system() as session:
        operator = await create_staff(session, email="op@provider.example", name="Otto", role="provider_operator",
                                      password=PASSWORD, acting=system)
        await assign_staff(session, staff=operator, tenant=await session.get(Tenant, tenants.a.id), acting=system,
                           reason="demo")
    for environment in ("staging", "production"):
        settings = database.settings.model_copy(update={"environment": environment})
        async with AsyncTestClient(app=create_app(settings)) as client:
            token = (await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example",
                                                                      "password": PASSWORD})).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            path = f"/api/v1/staff/tenants/{tenants.a.id}/clock"
            response = await client.post(path + "/advance", headers=headers, json={"hours": 30, "reason": "demo"})
            if environment == "production":
                assert response.status_code == 403, response.text
                assert "BACKOFFICE_ENVIRONMENT" in response.text and "production" in response.text
            else:
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["offset_seconds"] == 30 * 3600 and body["environment"] == "staging"
                bad = await client.post(path + "/advance", headers=headers, json={"hours": -1})
                assert bad.status_code == 400 and "hours" in bad.text
                # Tenant B is not the operator's: 404, like a missing tenant, and its clock stays real.
                hidden = await client.post(f"/api/v1/staff/tenants/{tenants.b.id}/clock/advance", headers=headers,
                                           json={"hours": 1})
                assert hidden.status_code == 404
            assert (await client.get(path, headers=headers)).json()["offset_seconds"] == 30 * 3600
    async with database.system() as session:
        assert await offsets(session) == {tenants.a.id: timedelta(hours=30)}
    [entry] = await audit(database, tenants.a.id, "tenant.clock_advanced")
    assert entry.actor_label == "op@provider.example"


async def test_the_dunning_sweep_runs_on_the_shifted_tenants_today(database, tenants):
    """The scheduler's sweep: a tenant two days ahead is swept for its own date, the other for the real one."""
    from datetime import UTC, date, datetime

    from backoffice.platform import clock
    from backoffice.platform.clock import FrozenClock
    from backoffice.tenants.billing.models import ChargeStatus
    from backoffice.tenants.routines.overdue_sweep import OVERDUE_SWEEP
    from backoffice.tenants.routines.models import RoutineRun
    from backoffice.tenants.routines.schedule import start_scheduled
    from tests.tenants.routines.test_schedule import _charge, _statuses

    previous = clock.use(FrozenClock(datetime(2026, 11, 2, 10, 0, tzinfo=UTC)))  # 07:00 in São Paulo
    try:
        for tenant in (tenants.a, tenants.b):
            await _charge(database, tenant, date(2026, 11, 3), "due-nov-3")
        async with database.provider(tenants.a.id) as session:
            await advance_clock(session, tenants.a.id, by=timedelta(days=2), environment="test", acting=DEMO_STAFF)
        assert set(await start_scheduled(database, OVERDUE_SWEEP)) == {tenants.a.id, tenants.b.id}
    finally:
        clock.use(previous)
    async with database.system() as session:
        runs = {(r.tenant_id, r.period) for r in (await session.execute(select(RoutineRun))).scalars()}
    assert runs == {(tenants.a.id, "2026-11-04"), (tenants.b.id, "2026-11-02")}
    statuses = await _statuses(database)
    assert statuses[(tenants.a.id, "due-nov-3")] == ChargeStatus.OVERDUE  # A's today is 4 November
    assert statuses[(tenants.b.id, "due-nov-3")] == ChargeStatus.PENDING  # B's is still 2 November
