"""The staff side: tokens by password (rate limited), only assigned tenants (404 for the others), admin-only
actions, every write audited; every staff route walked for its refusals."""

from __future__ import annotations

import re

import pytest
from litestar.routes import HTTPRoute
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.tenants.staff.service import assign_staff, create_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app

PASSWORD = "a-long-enough-password"
PARAM = re.compile(r"\{(\w+):\w+\}")


@pytest.fixture
async def staff(database, tenants):
    system = Actor.system("tests")
    async with database.system() as session:
        admin = await create_staff(session, email="admin@provider.example", name="Ada", role="provider_admin",
                                   password=PASSWORD, acting=system)
        operator = await create_staff(session, email="op@provider.example", name="Otto", role="provider_operator",
                                      password=PASSWORD, acting=system)
        await assign_staff(session, staff=operator, tenant=await session.get(Tenant, tenants.a.id), acting=system,
                           reason="mobilised for the tests")
    return admin, operator


async def _token(client, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/staff/tokens", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert token.startswith("bo_staff_")
    return {"Authorization": f"Bearer {token}"}


def staff_routes() -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in create_app().routes if isinstance(route, HTTPRoute) and route.path.startswith("/api/v1/staff")
        for method in route.route_handler_map if method not in ("HEAD", "OPTIONS")
    )


async def test_every_staff_route_needs_a_token_and_hides_unassigned_tenants(client, database, tenants, staff):
    operator = await _token(client, "op@provider.example")
    routes = staff_routes()
    assert len(routes) >= 17
    ids = {"tenant_id": tenants.b.id, "event_id": tenants.b.customer_ids[0], "message_id": tenants.b.customer_ids[0],
           "connector_id": tenants.b.customer_ids[0], "run_id": tenants.b.customer_ids[0], "routine": "dunning_sweep",
           "delivery_id": tenants.b.customer_ids[0], "replay_id": tenants.b.customer_ids[0]}
    for method, template in routes:
        path = PARAM.sub(lambda m: str(ids[m.group(1)]), template)
        body = {} if method != "GET" else None
        if template == "/api/v1/staff/tokens":
            continue
        for headers in ({}, {"Authorization": "Bearer bo_staff_forged"}, {"Authorization": "Bearer bo_live_x"}):
            response = await client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (method, template, response.text)
        if "{tenant_id" in template:
            response = await client.request(method, path, headers=operator, json=body)
            # Admin-only actions refuse the role first; everything else hides the tenant.
            assert response.status_code in ((403, 404) if "assignments" in template else (404,)), (method, template)


async def test_operator_sees_only_assigned_tenants_admin_sees_all(client, tenants, staff):
    operator, admin = await _token(client, "op@provider.example"), await _token(client, "admin@provider.example")
    assert [t["slug"] for t in (await client.get("/api/v1/staff/tenants", headers=operator)).json()["data"]] == ["alfa"]
    assert [t["slug"] for t in (await client.get("/api/v1/staff/tenants", headers=admin)).json()["data"]] == ["alfa", "beta"]
    # Every list has one shape: a page of data and the cursor of the next one.
    first = (await client.get("/api/v1/staff/tenants", params={"limit": 1}, headers=admin)).json()
    rest = (await client.get("/api/v1/staff/tenants", params={"limit": 1, "cursor": first["next_cursor"]},
                             headers=admin)).json()
    assert [t["slug"] for t in first["data"] + rest["data"]] == ["alfa", "beta"] and rest["next_cursor"] is None
    assert (await client.get(f"/api/v1/staff/tenants/{tenants.b.id}", headers=operator)).status_code == 404
    assert (await client.get(f"/api/v1/staff/tenants/{tenants.a.id}", headers=operator)).status_code == 200
    created = await client.post("/api/v1/staff/tenants", headers=operator, json={
        "slug": "gama", "display_name": "Gama", "legal_name": "Gama Ltda", "cnpj": "45.723.174/0001-10"})
    assert created.status_code == 403


async def test_staff_writes_are_audited(client, database, tenants, staff):
    admin = await _token(client, "admin@provider.example")
    created = await client.post("/api/v1/staff/tenants", headers=admin, json={
        "slug": "gama", "display_name": "Gama", "legal_name": "Gama Ltda", "cnpj": "45.723.174/0001-10"})
    assert created.status_code == 201, created.text
    gama = created.json()["id"]
    bad = await client.put(f"/api/v1/staff/tenants/{gama}/branding", headers=admin,
                           json={"colours": {"primary": "red; background:url(x)"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "colours"
    steps = [
        ("PUT", f"/api/v1/staff/tenants/{gama}/branding", {"colours": {"primary": "#112233"}}),
        ("PATCH", f"/api/v1/staff/tenants/{gama}/policy", {"changes": {"start_trigger": "invoice.issued"},
                                                          "reason": "client asked"}),
        ("POST", f"/api/v1/staff/tenants/{gama}/assignments", {"staff_email": "op@provider.example",
                                                               "reason": "month-end close"}),
        ("POST", f"/api/v1/staff/tenants/{gama}/suspend", {"reason": "contract ended"}),
        ("POST", f"/api/v1/staff/tenants/{gama}/reactivate", {"reason": "renewed"}),
        ("POST", f"/api/v1/staff/tenants/{gama}/assignments/demobilise", {"staff_email": "op@provider.example",
                                                                          "reason": "close done"}),
    ]
    for method, path, body in steps:
        response = await client.request(method, path, headers=admin, json=body)
        assert response.status_code < 300, (path, response.text)
    policy = (await client.get(f"/api/v1/staff/tenants/{gama}/policy", headers=admin)).json()
    assert policy["version"] == 1 and policy["config"]["start_trigger"] == "invoice.issued"
    history = (await client.get(f"/api/v1/staff/tenants/{gama}/policy/history", headers=admin)).json()["data"]
    assert [v["version"] for v in history] == [1]
    log = (await client.get("/api/v1/staff/audit", headers=admin, params={"tenant_id": gama})).json()["data"]
    actions = {entry["action"] for entry in log if entry["actor_label"] == "admin@provider.example"}
    assert {"tenant.created", "tenant.branding_changed", "tenant.suspended", "tenant.reactivated"} <= actions
    assert len(actions) >= 6
    # The operator was demobilised: gama is now hidden from them, and so is its audit log.
    operator = await _token(client, "op@provider.example")
    assert (await client.get(f"/api/v1/staff/tenants/{gama}", headers=operator)).status_code == 404
    assert (await client.get("/api/v1/staff/audit", headers=operator, params={"tenant_id": gama})).status_code == 404
    theirs = (await client.get("/api/v1/staff/audit", headers=operator)).json()["data"]
    assert theirs and {e["tenant_id"] for e in theirs} == {str(tenants.a.id)}


async def test_log_in_failures_are_alike_and_rate_limited(client, staff):
    wrong = await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example", "password": "nope"})
    unknown = await client.post("/api/v1/staff/tokens", json={"email": "who@provider.example", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()
    answers = [await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example", "password": "x"})
               for _ in range(10)]
    assert answers[-1].status_code == 429 and "Retry-After" in answers[-1].headers
    # Locked out for the window even with the right password: guessing gains nothing.
    right = await client.post("/api/v1/staff/tokens", json={"email": "op@provider.example", "password": PASSWORD})
    assert right.status_code == 429


async def test_unmatched_events_are_listed_and_retried(client, database, tenants, staff):
    from backoffice.tenants.events.intake import ingest
    from backoffice.tenants.events.models import Event, EventStatus

    async with database.tenant(tenants.a.id) as session:
        result = await ingest(session, tenants.a.id, {
            "type": "payment.overdue", "source": "erp", "external_id": "x1", "customer": {"tax_id": "111.444.777-35"},
            "data": {"charge": {"external_id": "c1", "amount_cents": 100, "due_date": "2026-05-01"}}})
        event = await session.get(Event, (tenants.a.id, result.event_id))
        event.status = EventStatus.UNMATCHED
    operator = await _token(client, "op@provider.example")
    listed = (await client.get(f"/api/v1/staff/tenants/{tenants.a.id}/unmatched-events", headers=operator)).json()["data"]
    assert [e["id"] for e in listed] == [str(result.event_id)]
    retried = await client.post(f"/api/v1/staff/tenants/{tenants.a.id}/events/{result.event_id}/retry",
                                headers=operator)
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    again = await client.post(f"/api/v1/staff/tenants/{tenants.a.id}/events/{result.event_id}/retry", headers=operator)
    assert again.status_code == 422
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "event.retried"))).scalars().all()
    assert [(a.tenant_id, a.actor_label) for a in audit] == [(tenants.a.id, "op@provider.example")]
    dead = (await client.get(f"/api/v1/staff/tenants/{tenants.a.id}/dead-letters", headers=operator)).json()
    assert dead == {"events": [], "messages": []}


async def test_a_nul_byte_in_the_email_is_refused_not_a_server_error(client, staff):
    # PostgreSQL refuses NUL in text. The input rule refuses it at the edge, for its shape alone (so the
    # answer says nothing about which accounts exist), naming the field.
    response = await client.post("/api/v1/staff/tokens", json={"email": "admin\x00@provider.example",
                                                               "password": PASSWORD})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["email"]
