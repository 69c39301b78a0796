"""Routine runs through the API, on the running spine: staff see the runs of the tenants they serve (and
only those), start, retry, pause, resume and reschedule them with every action audited and every refusal
naming its field; a company's systems read their own routines and runs with ``routines:read``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from tests.tenants.conftest import spine  # noqa: F401  (the running pipeline fixture)
from tests.tenants.routines.scripted import registered, scripted
from tests.web.api.conftest import bearer, make_key
from tests.web.api.test_staff import _token, staff  # noqa: F401  (fixture)

REFUSED = "CPF inválido no gateway (invalid_customer)"


ROUTINE, REFUSING = scripted("test_api_billing", refusal=REFUSED)


@pytest.fixture(autouse=True)
def routine():
    REFUSING.clear()
    with registered(ROUTINE):
        yield ROUTINE


def _routine_path(tenant_id, *rest: str) -> str:
    return "/".join((f"/api/v1/staff/tenants/{tenant_id}/routines/{ROUTINE.name}", *rest)).rstrip("/")


async def test_staff_see_only_the_runs_of_the_tenants_they_serve(spine, client, tenants, staff):  # noqa: F811
    a, b = tenants.a, tenants.b
    admin, operator = await _token(client, "admin@provider.example"), await _token(client, "op@provider.example")
    for tenant, periods in ((a, ("2026-09", "2026-10")), (b, ("2026-10",))):
        for period in periods:
            started = await client.post(_routine_path(tenant.id, "runs"), json={"period": period}, headers=admin)
            assert started.status_code == 202, started.text
    await spine.settle()

    mine = (await client.get("/api/v1/staff/routine-runs", headers=operator)).json()
    assert [(r["tenant_name"], r["period"]) for r in mine["data"]] == [("Alfa", "2026-10"), ("Alfa", "2026-09")]
    assert {r["tenant_id"] for r in mine["data"]} == {str(a.id)} and str(b.id) not in str(mine)
    first = mine["data"][0]
    assert (first["routine"], first["title"], first["trigger"], first["status"]) == (
        ROUTINE.name, "Faturamento de teste", "manual", "succeeded")
    assert (first["items_total"], first["items_done"], first["items_failed"], first["items_pending"],
            first["progress"]) == (2, 2, 0, 0, 1.0)
    assert first["requested_by"] == "admin@provider.example" and first["finished_at"]
    # Another tenant asked for by id: hidden like a missing one.
    assert (await client.get("/api/v1/staff/routine-runs", params={"tenant_id": str(b.id)},
                             headers=operator)).status_code == 404

    everyone = (await client.get("/api/v1/staff/routine-runs", headers=admin)).json()["data"]
    assert sorted(r["tenant_name"] for r in everyone) == ["Alfa", "Alfa", "Beta"]
    # Filters and the cursor.
    october = (await client.get("/api/v1/staff/routine-runs", params={"period": "2026-10", "status": ["succeeded"]},
                                headers=admin)).json()["data"]
    assert sorted(r["tenant_name"] for r in october) == ["Alfa", "Beta"]
    assert (await client.get("/api/v1/staff/routine-runs", params={"status": ["failed", "partial"]},
                             headers=admin)).json()["data"] == []
    assert (await client.get("/api/v1/staff/routine-runs", params={"trigger": "schedule"},
                             headers=admin)).json()["data"] == []
    page = (await client.get("/api/v1/staff/routine-runs", params={"limit": 2}, headers=admin)).json()
    rest = (await client.get("/api/v1/staff/routine-runs", params={"limit": 2, "cursor": page["next_cursor"]},
                             headers=admin)).json()
    assert len(page["data"]) == 2 and len(rest["data"]) == 1 and rest["next_cursor"] is None
    assert {r["id"] for r in page["data"] + rest["data"]} == {r["id"] for r in everyone}
    bad = await client.get("/api/v1/staff/routine-runs", params={"period": "november"}, headers=admin)
    assert bad.status_code == 400 and "period" in bad.text


async def test_staff_see_every_routine_of_every_tenant_they_serve_in_one_overview(spine, client, tenants, staff):  # noqa: F811
    a, b = tenants.a, tenants.b
    admin, operator = await _token(client, "admin@provider.example"), await _token(client, "op@provider.example")
    REFUSING.add("João Pereira")  # a customer of Beta's only
    for tenant in (a, b):
        started = await client.post(_routine_path(tenant.id, "runs"), json={"period": "2026-10"}, headers=admin)
        assert started.status_code == 202, started.text
    await spine.settle()
    assert (await client.post(_routine_path(b.id, "pause"), json={"reason": "gateway migration"},
                              headers=admin)).status_code == 200

    everyone = (await client.get("/api/v1/staff/routines", headers=admin)).json()
    assert [t["tenant_name"] for t in everyone["data"]] == ["Alfa", "Beta"]
    for entry in everyone["data"]:
        mine = {r["routine"]: r for r in entry["routines"]}
        assert {"billing", "invoices", "reconciliation", "dunning_sweep", ROUTINE.name} <= set(mine)
        assert mine["billing"]["configured"] is False and mine["billing"]["next_run_at"] is None
        assert mine["dunning_sweep"]["next_run_at"] and mine["dunning_sweep"]["timezone"] == "America/Sao_Paulo"
    beta = {r["routine"]: r for r in everyone["data"][1]["routines"]}
    assert beta[ROUTINE.name]["paused"] and beta[ROUTINE.name]["pause_reason"] == "gateway migration"
    assert beta[ROUTINE.name]["last_run"]["status"] == "partial"

    # An operator sees only the tenants they serve.
    served = (await client.get("/api/v1/staff/routines", headers=operator)).json()["data"]
    assert [t["tenant_id"] for t in served] == [str(a.id)] and str(b.id) not in str(served)
    alfa = {r["routine"]: r for r in served[0]["routines"]}
    assert alfa[ROUTINE.name]["last_run"]["status"] == "succeeded" and not alfa[ROUTINE.name]["paused"]

    # What needs a look: a tenant whose last run failed items, or whose routine is paused; cursor by name.
    attention = (await client.get("/api/v1/staff/routines", params={"attention": "true"}, headers=admin)).json()
    assert [t["tenant_name"] for t in attention["data"]] == ["Beta"]
    first = (await client.get("/api/v1/staff/routines", params={"limit": 1}, headers=admin)).json()
    rest = (await client.get("/api/v1/staff/routines", params={"limit": 1, "cursor": first["next_cursor"]},
                             headers=admin)).json()
    assert [t["tenant_name"] for t in first["data"] + rest["data"]] == ["Alfa", "Beta"] and rest["next_cursor"] is None


async def test_staff_start_retry_pause_resume_and_reschedule_audited(spine, client, database, tenants, staff):  # noqa: F811
    a, b = tenants.a, tenants.b
    operator = await _token(client, "op@provider.example")
    REFUSING.add("Maria Silva")

    # Refusals name their field; the unassigned tenant and an unknown routine are not found.
    assert (await client.post(_routine_path(b.id, "runs"), json={}, headers=operator)).status_code == 404
    unknown = await client.post(f"/api/v1/staff/tenants/{a.id}/routines/payroll/runs", json={}, headers=operator)
    assert unknown.status_code == 404
    for period in ("2026-13", "2026-11-02", "11/2026"):
        wrong = await client.post(_routine_path(a.id, "runs"), json={"period": period}, headers=operator)
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "period", (period, wrong.text)

    started = await client.post(_routine_path(a.id, "runs"), json={"reason": "month close"}, headers=operator)
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["period"], run["status"], run["trigger"]) == ("2026-11", "queued", "manual")
    again = await client.post(_routine_path(a.id, "runs"), json={"period": "2026-11"}, headers=operator)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "period"
    assert run["id"] in again.json()["errors"][0]["message"]

    await spine.settle()
    detail = (await client.get(f"/api/v1/staff/tenants/{a.id}/routine-runs/{run['id']}", headers=operator)).json()
    assert (detail["status"], detail["items_done"], detail["items_failed"]) == ("partial", 1, 1)
    assert detail["tenant_name"] == "Alfa" and detail["item_counts"] == {"pending": 0, "waiting": 0, "done": 1, "failed": 1}
    assert [(i["status"], i["label"], i["error"]) for i in detail["items"]] == [
        ("failed", "Maria Silva, 2026-11", REFUSED), ("done", "Casa do Pão, 2026-11", None)]
    assert detail["items"][0]["customer_id"] == str(a.customer_ids[1]) and detail["findings"] == []
    capped = (await client.get(f"/api/v1/staff/tenants/{a.id}/routine-runs/{run['id']}",
                               params={"items_limit": 1}, headers=operator)).json()
    assert [i["status"] for i in capped["items"]] == ["failed"] and capped["items_truncated"] is True
    done_only = (await client.get(f"/api/v1/staff/tenants/{a.id}/routine-runs/{run['id']}",
                                  params={"item_status": "done"}, headers=operator)).json()
    assert [i["status"] for i in done_only["items"]] == ["done"] and done_only["items_truncated"] is False
    # Tenant A's run under tenant B's path (admin may see B): not found.
    admin = await _token(client, "admin@provider.example")
    assert (await client.get(f"/api/v1/staff/tenants/{b.id}/routine-runs/{run['id']}",
                             headers=admin)).status_code == 404
    assert (await client.post(f"/api/v1/staff/tenants/{b.id}/routine-runs/{run['id']}/retry", json={},
                              headers=admin)).status_code == 404

    REFUSING.clear()  # the customer's record was fixed at the gateway
    retried = await client.post(f"/api/v1/staff/tenants/{a.id}/routine-runs/{run['id']}/retry",
                                json={"reason": "CPF corrected"}, headers=operator)
    assert retried.status_code == 202, retried.text
    retry = retried.json()
    assert (retry["trigger"], retry["parent_run_id"], retry["period"]) == ("retry", run["id"], "2026-11")
    await spine.settle()
    retry_detail = (await client.get(f"/api/v1/staff/tenants/{a.id}/routine-runs/{retry['id']}",
                                     headers=operator)).json()
    assert (retry_detail["status"], retry_detail["items_total"]) == ("succeeded", 1)
    nothing = await client.post(f"/api/v1/staff/tenants/{a.id}/routine-runs/{retry['id']}/retry", json={},
                                headers=operator)
    assert nothing.status_code == 409 and nothing.json()["errors"][0]["field"] == "run"

    paused = await client.post(_routine_path(a.id, "pause"), json={"reason": "gateway maintenance"}, headers=operator)
    assert paused.status_code == 200, paused.text
    assert (paused.json()["paused"], paused.json()["paused_by"], paused.json()["pause_reason"],
            paused.json()["next_run_at"]) == (True, "op@provider.example", "gateway maintenance", None)
    held = await client.post(_routine_path(a.id, "runs"), json={"period": "2026-10"}, headers=operator)
    assert held.status_code == 409 and held.json()["errors"][0]["field"] == "routine"
    resumed = await client.post(_routine_path(a.id, "resume"), json={}, headers=operator)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False and resumed.json()["next_run_at"]

    for body, field in (({"hour": 24}, "hour"), ({"hour": -1}, "hour"), ({"day": 29}, "day")):
        refused = await client.patch(_routine_path(a.id), json=body, headers=operator)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, body
    daily = await client.patch(f"/api/v1/staff/tenants/{a.id}/routines/dunning_sweep", json={"day": 3},
                               headers=operator)
    assert daily.status_code == 422 and daily.json()["errors"][0]["field"] == "day"
    moved = await client.patch(_routine_path(a.id), json={"hour": 7, "day": 3, "reason": "after the bank's cut-off"},
                               headers=operator)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["hour"], moved.json()["day"], moved.json()["custom_schedule"]) == (7, 3, True)
    assert moved.json()["schedule"] == "monthly on day 3 at 07:00" and moved.json()["timezone"] == "America/Sao_Paulo"
    assert moved.json()["next_run_at"].startswith("2026-11-03T10:00")  # tomorrow 07:00 in São Paulo
    only_hour = (await client.patch(_routine_path(a.id), json={"hour": None}, headers=operator)).json()
    assert (only_hour["hour"], only_hour["day"]) == (6, 3)  # null resets the hour; the day left out stays

    overview = (await client.get(f"/api/v1/staff/tenants/{a.id}/routines", headers=operator)).json()
    assert overview["next_cursor"] is None  # the fixed catalogue: one page, in the shape of every list
    overview = overview["data"]
    mine = next(r for r in overview if r["routine"] == ROUTINE.name)
    assert mine["last_run"]["id"] == retry["id"] and mine["schedule_kind"] == "monthly"
    assert (mine["configured"], mine["requires"]) == (True, [])
    assert {r["routine"] for r in overview} >= {ROUTINE.name, "dunning_sweep"}

    async with database.tenant(a.id) as session:
        audit = (await session.execute(select(AuditEntry.action, AuditEntry.actor_type, AuditEntry.actor_label,
                                              AuditEntry.reason).where(AuditEntry.action.like("routine.%"),
                                                                       AuditEntry.tenant_id == a.id))).all()
    assert {(action, reason) for action, _, _, reason in audit} == {
        ("routine.manual", "month close"), ("routine.retry", "CPF corrected"), ("routine.pause", "gateway maintenance"),
        ("routine.resume", None), ("routine.schedule", "after the bank's cut-off"), ("routine.schedule", None)}
    assert {(kind, label) for _, kind, label, _ in audit} == {("staff", "op@provider.example")}
    async with database.system() as session:
        assert (await session.execute(select(AuditEntry).where(AuditEntry.action.like("routine.%"),
                                                               AuditEntry.tenant_id == b.id))).first() is None


async def test_a_companys_systems_read_their_own_routines_and_runs(spine, client, database, tenants, staff):  # noqa: F811
    a, b = tenants.a, tenants.b
    admin = await _token(client, "admin@provider.example")
    REFUSING.add("João Pereira")
    runs = {}
    for tenant in (a, b):
        started = await client.post(_routine_path(tenant.id, "runs"), json={}, headers=admin)
        runs[tenant.slug] = started.json()["id"]
    await spine.settle()
    reader = bearer(await make_key(database, a.id, scopes=["routines:read"]))
    other = bearer(await make_key(database, a.id, scopes=["customers:read"]))

    assert (await client.get("/api/v1/routines", headers=other)).status_code == 403
    forbidden = await client.get(f"/api/v1/routine-runs/{runs['alfa']}", headers=other)
    assert forbidden.status_code == 403 and "routines:read" in forbidden.text

    routines = (await client.get("/api/v1/routines", headers=reader)).json()
    assert routines["next_cursor"] is None
    routines = routines["data"]
    mine = next(r for r in routines if r["routine"] == ROUTINE.name)
    assert (mine["title"], mine["item_noun"], mine["last_run"]["id"]) == ("Faturamento de teste", "cobranças",
                                                                          runs["alfa"])
    listed = (await client.get("/api/v1/routine-runs", headers=reader)).json()
    assert [r["id"] for r in listed["data"]] == [runs["alfa"]] and runs["beta"] not in str(listed)
    assert (await client.get("/api/v1/routine-runs", params={"status": "partial"}, headers=reader)).json()["data"] == []
    assert len((await client.get("/api/v1/routine-runs", params={"routine": ROUTINE.name, "period": "2026-11"},
                                 headers=reader)).json()["data"]) == 1
    detail = (await client.get(f"/api/v1/routine-runs/{runs['alfa']}", headers=reader)).json()
    assert detail["status"] == "succeeded" and [i["status"] for i in detail["items"]] == ["done", "done"]
    foreign = await client.get(f"/api/v1/routine-runs/{runs['beta']}", headers=reader)
    assert foreign.status_code == 404 and "João" not in foreign.text
    # Beta's own key sees Beta's refusal, with the provider's words.
    beta = bearer(await make_key(database, b.id, scopes=["routines:read"]))
    theirs = (await client.get(f"/api/v1/routine-runs/{runs['beta']}", params={"item_status": "failed"},
                               headers=beta)).json()
    assert theirs["status"] == "partial" and [i["error"] for i in theirs["items"]] == [REFUSED]
    # Read only: no write route exists for keys.
    assert (await client.post(f"/api/v1/routine-runs/{runs['alfa']}/retry", json={}, headers=reader)).status_code in (
        404, 405)


async def test_a_reconciliation_runs_detail_lists_its_findings_discrepancies_first(client, database, tenants, staff):  # noqa: F811
    from backoffice.tenants.routines.models import FindingKind, ReconciliationFinding, RoutineRun, RunStatus, Trigger

    a = tenants.a
    async with database.tenant(a.id) as session:
        run = RoutineRun(routine="dunning_sweep", period="2026-11-01", trigger=Trigger.SCHEDULE,
                         status=RunStatus.SUCCEEDED, requested_by="system:scheduler", items_total=0, items_done=0,
                         items_failed=0, summary={})
        session.add(run)
        await session.flush()
        for n, kind in enumerate((FindingKind.MATCHED, FindingKind.MATCHED, FindingKind.AMOUNT_MISMATCH)):
            session.add(ReconciliationFinding(run_id=run.id, day="2026-11-01", source="asaas", kind=kind,
                                              reference=f"pay_{n}", expected_cents=9900,
                                              received_cents=9000 if kind == FindingKind.AMOUNT_MISMATCH else 9900))
    admin = await _token(client, "admin@provider.example")
    detail = (await client.get(f"/api/v1/staff/tenants/{a.id}/routine-runs/{run.id}", headers=admin)).json()
    assert detail["finding_counts"] == {"matched": 2, "amount_mismatch": 1}
    assert [(f["kind"], f["reference"]) for f in detail["findings"]] == [
        ("amount_mismatch", "pay_2"), ("matched", "pay_0"), ("matched", "pay_1")]
    reader = bearer(await make_key(database, a.id, scopes=["routines:read"]))
    mine = (await client.get(f"/api/v1/routine-runs/{run.id}", params={"items_limit": 1}, headers=reader)).json()
    assert [f["kind"] for f in mine["findings"]] == ["amount_mismatch"] and mine["finding_counts"]["matched"] == 2
    other = bearer(await make_key(database, tenants.b.id, scopes=["routines:read"]))
    assert (await client.get(f"/api/v1/routine-runs/{run.id}", headers=other)).status_code == 404
