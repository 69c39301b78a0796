"""Mobilising, demobilising and handing over: each needs a reason, is audited with who and why, and a
hand-over moves exactly the person's open routine work in that tenant to someone who serves it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.service import assign_staff, can_act_on, create_staff, hand_over, unassign_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.staff.queries import people_board
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.handover import OPEN_WORK
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger

PASSWORD = "correct-horse-battery"
ADMIN = Actor(type="staff", label="ana@provider.example", id=str(uuid.UUID(int=1)))


async def _people(database, tenants):
    async with database.system() as session:
        made = {}
        for email, role in (("ana@provider.example", "provider_admin"), ("otto@provider.example", "provider_operator"),
                            ("bia@provider.example", "provider_operator"), ("caio@provider.example", "provider_operator")):
            made[email.split("@")[0]] = (await create_staff(session, email=email, name=email.split("@")[0].title(),
                                                             role=role, password=PASSWORD, acting=ADMIN)).id
        alfa = await session.get(Tenant, tenants.a.id)
        for who in ("otto", "bia"):
            await assign_staff(session, staff=await session.get(Staff, made[who]), tenant=alfa, acting=ADMIN,
                               reason="month-end close")
        await assign_staff(session, staff=await session.get(Staff, made["otto"]),
                           tenant=await session.get(Tenant, tenants.b.id), acting=ADMIN, reason="cover")
    return made


def _run(period: str, status: RunStatus, handler, **extra) -> RoutineRun:
    values = {"routine": "billing", "period": period, "trigger": Trigger.MANUAL, "status": status,
              "requested_by": "x", "handled_by": handler, "items_total": 2, "items_done": 1, "items_failed": 0,
              "summary": {}}
    return RoutineRun(**(values | extra))


async def _audit(database, action):
    async with database.system() as session:
        return list((await session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                           .order_by(AuditEntry.occurred_at))).scalars())


async def test_every_change_needs_a_reason_and_nothing_is_written_without_one(database, tenants):
    people = await _people(database, tenants)
    async with database.system() as session:
        caio, alfa = await session.get(Staff, people["caio"]), await session.get(Tenant, tenants.a.id)
        for blank in ("", "   ", None, "x\x00y", "x" * 1001):
            with pytest.raises(ValidationFailed) as raised:
                await assign_staff(session, staff=caio, tenant=alfa, acting=ADMIN, reason=blank)
            assert [e.field for e in raised.value.errors] == ["reason"]
        otto = await session.get(Staff, people["otto"])
        with pytest.raises(ValidationFailed) as raised:
            await unassign_staff(session, staff=otto, tenant=alfa, acting=ADMIN, reason=" ")
        assert [e.field for e in raised.value.errors] == ["reason"]
        assert await can_act_on(session, caio, alfa.id) is False
        assert await can_act_on(session, otto, alfa.id) is True
    assert [e.reason for e in await _audit(database, "staff.assigned")] == ["month-end close"] * 2 + ["cover"]


async def test_a_run_a_staff_member_starts_is_theirs_to_follow_up(database, tenants):
    people = await _people(database, tenants)
    otto = Actor(type="staff", label="otto@provider.example", id=str(people["otto"]))
    async with database.provider(tenants.a.id) as session:
        run = await engine.start_run(session, "dunning_sweep", period="2026-11-20", actor=otto)
        by_cli = await engine.start_run(session, "dunning_sweep", period="2026-11-19", actor=Actor.cli())
    assert (run.handled_by, by_cli.handled_by) == (people["otto"], None)


async def test_hand_over_moves_only_the_open_runs_of_that_person_in_that_tenant(database, tenants):
    people = await _people(database, tenants)
    otto, bia = people["otto"], people["bia"]
    async with database.provider(tenants.a.id) as session:
        running = _run("2026-11", RunStatus.RUNNING, otto)
        partial = _run("2026-10", RunStatus.PARTIAL, otto, items_failed=1)
        retried = _run("2026-09", RunStatus.PARTIAL, otto, items_failed=1)
        done = _run("2026-08", RunStatus.SUCCEEDED, otto)
        bias = _run("2026-07", RunStatus.RUNNING, bia)
        session.add_all([running, partial, retried, done, bias])
        await session.flush()
        # The 2026-09 run's failed items were taken by a retry run: nothing left to follow up there.
        session.add(_run("2026-09", RunStatus.SUCCEEDED, None, trigger=Trigger.RETRY, parent_run_id=retried.id))
    async with database.provider(tenants.b.id) as session:
        other_tenant = _run("2026-11", RunStatus.RUNNING, otto)
        session.add(other_tenant)

    async with database.system() as session:
        board = await people_board(session)
        cells = {(r.tenant_slug, r.staff_email): r.open_runs for r in board.rows}
        assert cells == {("alfa", "bia@provider.example"): 1, ("alfa", "otto@provider.example"): 2,
                         ("beta", "otto@provider.example"): 1}
        giver, receiver = await session.get(Staff, otto), await session.get(Staff, bia)
        alfa = await session.get(Tenant, tenants.a.id)
        moved = await hand_over(session, tenant=alfa, from_staff=giver, to_staff=receiver, acting=ADMIN,
                                reason="Otto is on leave", work=OPEN_WORK)
    assert sorted(moved["routine_runs"]) == sorted([running.id, partial.id])

    async with database.system() as session:
        handlers = {r.id: r.handled_by for r in (await session.execute(select(RoutineRun))).scalars()}
    assert handlers[running.id] == handlers[partial.id] == bia
    assert handlers[retried.id] == handlers[done.id] == otto  # closed work stays with who did it
    assert handlers[other_tenant.id] == otto  # another tenant's work is not touched
    [entry] = await _audit(database, "staff.handed_over")
    assert (entry.tenant_id, entry.actor_label, entry.reason, entry.target_id) == (
        tenants.a.id, "ana@provider.example", "Otto is on leave", str(otto))
    assert entry.detail["to"] == "bia@provider.example" and entry.detail["routine_runs"]["count"] == 2


async def test_hand_over_refuses_a_receiver_who_does_not_serve_the_tenant_and_moves_nothing(database, tenants):
    people = await _people(database, tenants)
    async with database.provider(tenants.a.id) as session:
        run = _run("2026-11", RunStatus.RUNNING, people["otto"])
        session.add(run)
    async with database.system() as session:
        otto, caio = await session.get(Staff, people["otto"]), await session.get(Staff, people["caio"])
        alfa = await session.get(Tenant, tenants.a.id)
        for receiver in (caio, otto):  # caio serves no tenant; otto cannot hand to himself
            with pytest.raises(ValidationFailed) as raised:
                await hand_over(session, tenant=alfa, from_staff=otto, to_staff=receiver, acting=ADMIN,
                                reason="leave", work=OPEN_WORK)
            assert [e.field for e in raised.value.errors] == ["to_staff"]
        # An admin serves every tenant: a valid receiver without an assignment.
        ana = await session.get(Staff, people["ana"])
        await hand_over(session, tenant=alfa, from_staff=otto, to_staff=ana, acting=ADMIN, reason="leave",
                        work=OPEN_WORK)
    async with database.system() as session:
        assert (await session.get(RoutineRun, (tenants.a.id, run.id))).handled_by == people["ana"]


async def test_demobilising_with_a_hand_over_ends_access_and_moves_the_work_in_one_action(database, tenants):
    people = await _people(database, tenants)
    async with database.provider(tenants.a.id) as session:
        run = _run("2026-11", RunStatus.PAUSED, people["otto"])
        session.add(run)
    async with database.system() as session:
        otto, bia, caio = [await session.get(Staff, people[n]) for n in ("otto", "bia", "caio")]
        alfa = await session.get(Tenant, tenants.a.id)
        # A receiver who does not serve the tenant: refused, and the person stays mobilised.
        with pytest.raises(ValidationFailed):
            await unassign_staff(session, staff=otto, tenant=alfa, acting=ADMIN, reason="rotation",
                                 hand_over_to=caio, work=OPEN_WORK)
        assert await can_act_on(session, otto, alfa.id) is True
        await unassign_staff(session, staff=otto, tenant=alfa, acting=ADMIN, reason="rotation", hand_over_to=bia,
                             work=OPEN_WORK)
        assert await can_act_on(session, otto, alfa.id) is False
        assert await can_act_on(session, otto, tenants.b.id) is True  # still serves beta
    async with database.system() as session:
        assert (await session.get(RoutineRun, (tenants.a.id, run.id))).handled_by == people["bia"]
        board = await people_board(session, staff_id=people["otto"])
    assert [(r.tenant_slug, r.since is not None) for r in board.rows] == [("beta", True)]
    [unassigned] = await _audit(database, "staff.unassigned")
    assert (unassigned.reason, unassigned.actor_label) == ("rotation", "ana@provider.example")
    assert len(await _audit(database, "staff.handed_over")) == 1


async def test_work_left_behind_by_a_demobilised_person_stays_on_the_board(database, tenants):
    people = await _people(database, tenants)
    async with database.provider(tenants.a.id) as session:
        session.add(_run("2026-11", RunStatus.RUNNING, people["otto"]))
    async with database.system() as session:
        otto, alfa = await session.get(Staff, people["otto"]), await session.get(Tenant, tenants.a.id)
        await unassign_staff(session, staff=otto, tenant=alfa, acting=ADMIN, reason="rotation")
        board = await people_board(session, tenant_id=tenants.a.id)
    rows = {r.staff_email: (r.since is not None, r.open_runs) for r in board.rows}
    assert rows == {"bia@provider.example": (True, 0), "otto@provider.example": (False, 1)}
