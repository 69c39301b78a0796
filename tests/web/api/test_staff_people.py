"""The staff API and the CLI call the same people functions as the console: mobilising needs a reason,
demobilising can hand the open work over, the hand-over route moves a person's open runs, and /audit pages
by cursor with actor and action filters (the console's query)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.service import assign_staff, create_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from tests.web.entry.test_cli import _cli

PASSWORD = "correct-horse-battery"


async def _setup(database, tenants) -> dict[str, uuid.UUID]:
    system = Actor.system("tests")
    made = {}
    async with database.system() as session:
        for email, role in (("admin@provider.example", "provider_admin"), ("op@provider.example", "provider_operator"),
                            ("bia@provider.example", "provider_operator")):
            made[email] = (await create_staff(session, email=email, name=email, role=role, password=PASSWORD,
                                              acting=system)).id
        alfa = await session.get(Tenant, tenants.a.id)
        for email in ("op@provider.example", "bia@provider.example"):
            await assign_staff(session, staff=await session.get(Staff, made[email]), tenant=alfa, acting=system,
                               reason="tests")
    async with database.provider(tenants.a.id) as session:
        session.add(RoutineRun(routine="billing", period="2026-11", trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
                               requested_by="op@provider.example", handled_by=made["op@provider.example"],
                               items_total=3, items_done=1, items_failed=0, summary={}))
    return made


async def _token(client, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/staff/tokens", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_reason_is_required_and_hand_over_moves_the_open_runs(client, database, tenants):
    made = await _setup(database, tenants)
    admin, operator = await _token(client, "admin@provider.example"), await _token(client, "op@provider.example")
    base = f"/api/v1/staff/tenants/{tenants.a.id}/assignments"
    missing = await client.post(base, headers=admin, json={"staff_email": "bia@provider.example"})
    blank = await client.post(base, headers=admin, json={"staff_email": "bia@provider.example", "reason": " "})
    assert missing.status_code in (400, 422) and blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "reason"
    body = {"from_staff_email": "op@provider.example", "to_staff_email": "bia@provider.example", "reason": "leave"}
    assert (await client.post(f"{base}/handover", headers=operator, json=body)).status_code == 403
    hidden = await client.post(f"/api/v1/staff/tenants/{tenants.b.id}/assignments/handover", headers=operator,
                               json=body)
    assert hidden.status_code == 404
    nobody = await client.post(f"{base}/handover", headers=admin, json={**body, "to_staff_email": "x@y.example"})
    assert nobody.status_code == 422 and nobody.json()["errors"][0]["field"] == "to_staff_email"
    moved = await client.post(f"{base}/handover", headers=admin, json=body)
    assert moved.status_code == 200, moved.text
    [run_id] = moved.json()["moved"]["routine_runs"]
    async with database.system() as session:
        run = await session.get(RoutineRun, (tenants.a.id, uuid.UUID(run_id)))
    assert run.handled_by == made["bia@provider.example"]
    # Demobilising with a hand-over: the work goes back to op, then bia's access ends.
    back = await client.post(f"{base}/handover", headers=admin, json={
        "from_staff_email": "bia@provider.example", "to_staff_email": "op@provider.example", "reason": "back"})
    assert back.status_code == 200
    done = await client.post(f"{base}/demobilise", headers=admin, json={
        "staff_email": "op@provider.example", "reason": "rotation", "hand_over_to": "bia@provider.example"})
    assert done.status_code == 200, done.text
    async with database.system() as session:
        run = await session.get(RoutineRun, (tenants.a.id, uuid.UUID(run_id)))
    assert run.handled_by == made["bia@provider.example"]
    assert (await client.get(f"/api/v1/staff/tenants/{tenants.a.id}", headers=operator)).status_code == 404


async def test_audit_pages_by_cursor_and_filters_by_actor_and_action_prefix(client, database, tenants):
    await _setup(database, tenants)
    admin, operator = await _token(client, "admin@provider.example"), await _token(client, "op@provider.example")
    pages, cursor = [], None
    while True:
        answer = await client.get("/api/v1/staff/audit", headers=admin,
                                  params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["data"])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    ids = [entry["id"] for page in pages for entry in page]
    assert len(pages) > 1 and len(ids) == len(set(ids))
    async with database.system() as session:
        assert len(ids) == len((await session.execute(select(AuditEntry.id))).all())
    staff_actions = (await client.get("/api/v1/staff/audit", headers=admin, params={"action": "staff."})).json()
    assert staff_actions["data"] and {e["action"].split(".")[0] for e in staff_actions["data"]} == {"staff"}
    by_actor = (await client.get("/api/v1/staff/audit", headers=admin, params={"actor": "SYSTEM:"})).json()
    assert by_actor["data"] and {e["actor_label"] for e in by_actor["data"]} == {"system:tests"}
    theirs = (await client.get("/api/v1/staff/audit", headers=operator)).json()["data"]
    assert theirs and {e["tenant_id"] for e in theirs} == {str(tenants.a.id)}
    bad = await client.get("/api/v1/staff/audit", headers=admin, params={"cursor": "forged"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"


async def test_the_cli_hands_over_and_demobilises_with_a_reason(database, tenants):
    made = await _setup(database, tenants)
    no_reason = await _cli(database, "staff", "handover", "op@provider.example", "alfa", "--to", "bia@provider.example")
    assert no_reason.code == 2 and "--reason" in no_reason.err
    handed = await _cli(database, "staff", "handover", "op@provider.example", "alfa", "--to", "bia@provider.example",
                        "--reason", "on leave")
    assert "1 routine_runs" in handed.ok().out
    refused = await _cli(database, "staff", "unassign", "bia@provider.example", "alfa", "--reason", "x",
                         "--hand-over-to", "bia@provider.example")
    assert refused.code != 0 and "to_staff" in refused.err and "Traceback" not in refused.err
    (await _cli(database, "staff", "unassign", "bia@provider.example", "alfa", "--reason", "rotation",
                "--hand-over-to", "admin@provider.example")).ok()
    async with database.system() as session:
        [run] = (await session.execute(select(RoutineRun))).scalars().all()
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.actor_type == "cli")
                                         .order_by(AuditEntry.occurred_at))).scalars().all()
    assert run.handled_by == made["admin@provider.example"]
    assert [(e.action, e.reason) for e in entries] == [
        ("staff.handed_over", "on leave"), ("staff.handed_over", "rotation"), ("staff.unassigned", "rotation")]
