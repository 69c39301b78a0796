"""The people board: provider admins mobilise, demobilise and hand over with a reason; an operator sees their
own rows only; demobilising ends the person's console access to the company at their next request."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from tests.web.console.conftest import csrf_of


def _board(html: str) -> str:
    """The board's table only (the filter and the mobilise form list every person)."""
    return html.split('id="board"', 1)[1].split("</table>", 1)[0]


def _run(handler: uuid.UUID, period: str = "2026-11") -> RoutineRun:
    return RoutineRun(routine="billing", period=period, trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
                      requested_by="otto@provider.example", handled_by=handler, items_total=10, items_done=4,
                      items_failed=1, summary={})


async def test_the_board_shows_who_serves_which_company_and_filters(admin_client, staff_members):
    page = await admin_client.get("/staff/people")
    assert page.status_code == 200
    assert "Otto Operador" in _board(page.text) and "alfa" in _board(page.text)
    assert 'name="_csrf_token"' in page.text
    only_beta = await admin_client.get("/staff/people?company=beta")
    assert only_beta.status_code == 200 and "Otto Operador" not in _board(only_beta.text)
    by_person = await admin_client.get(f"/staff/people?person={staff_members.admin.id}")
    assert by_person.status_code == 200 and "Otto Operador" not in _board(by_person.text)


async def test_bad_filters_are_named_never_a_500(admin_client, operator_client):
    for query, field in (("person=nobody", "person"), ("company=gama", "company"), ("company=" + "x" * 500, "company")):
        answer = await admin_client.get(f"/staff/people?{query}")
        assert answer.status_code == 422 and field in answer.text, (query, answer.status_code)
    assert (await admin_client.get("/staff/people?company=a%00b")).status_code == 400
    # An operator naming a company they do not serve gets the answer a missing one gets.
    beta = await operator_client.get("/staff/people?company=beta")
    gama = await operator_client.get("/staff/people?company=gama")
    assert beta.status_code == gama.status_code == 422
    assert beta.text.replace("beta", "X") == gama.text.replace("gama", "X")


async def test_an_operator_sees_only_their_own_rows_and_cannot_change_anything(operator_client, staff_members,
                                                                             database):
    tenants = operator_client.tenants
    page = await operator_client.get("/staff/people")
    assert page.status_code == 200 and "alfa" in page.text and "beta" not in page.text
    assert "/staff/people/assign" not in page.text  # no mobilise form
    assert (await operator_client.get(f"/staff/people?person={staff_members.admin.id}")).status_code == 403
    own = await operator_client.get(f"/staff/people/{tenants.a.id}/{staff_members.operator.id}")
    assert own.status_code == 200 and "/unassign" not in own.text
    assert (await operator_client.get(f"/staff/people/{tenants.a.id}/{staff_members.admin.id}")).status_code == 404
    assert (await operator_client.get(f"/staff/people/{tenants.b.id}/{staff_members.operator.id}")).status_code == 404
    token = csrf_of(page.text)
    for action, data in (("/staff/people/assign", {"staff_id": str(staff_members.operator.id), "company": "beta",
                                                   "reason": "me"}),
                         (f"/staff/people/{tenants.a.id}/{staff_members.operator.id}/unassign", {"reason": "me"}),
                         (f"/staff/people/{tenants.a.id}/{staff_members.operator.id}/handover",
                          {"reason": "me", "to_staff": str(staff_members.admin.id)})):
        answer = await operator_client.client.post(action, data={**data, "_csrf_token": token},
                                                   headers=operator_client.headers, follow_redirects=False)
        assert answer.status_code == 403, (action, answer.status_code)
    async with database.system() as session:
        assert (await session.execute(select(AuditEntry).where(AuditEntry.action.like("staff.%assigned")
                                                               | (AuditEntry.action == "staff.handed_over"))
                                      )).scalars().all().__len__() == 1  # the fixture's own mobilisation


async def test_mobilising_needs_a_reason_and_is_audited_with_who_and_why(admin_client, staff_members, database):
    data = {"staff_id": str(staff_members.operator.id), "company": "beta", "reason": ""}
    refused = await admin_client.post_form("/staff/people", "/staff/people/assign", data)
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    no_token = await admin_client.client.post("/staff/people/assign", data={**data, "reason": "x"},
                                              headers=admin_client.headers, follow_redirects=False)
    assert no_token.status_code == 403  # CSRF
    done = await admin_client.post_form("/staff/people", "/staff/people/assign", {**data, "reason": "cobrir férias"})
    assert done.status_code == 303 and done.headers["location"].startswith("/staff/people?company=beta")
    async with database.system() as session:
        [entry] = (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "staff.assigned", AuditEntry.tenant_id == admin_client.tenants.b.id))).scalars().all()
    assert (entry.actor_label, entry.reason, entry.target_id) == (
        "ana@provider.example", "cobrir férias", str(staff_members.operator.id))


async def test_demobilising_with_hand_over_moves_the_work_and_ends_the_open_session(
        admin_client, operator_client, staff_members, database):
    tenants = admin_client.tenants
    async with database.provider(tenants.a.id) as session:
        run = _run(staff_members.operator.id)
        session.add(run)
    # The operator's console is open on their company.
    assert (await operator_client.get(f"/staff/overview/tenants/{tenants.a.id}")).status_code == 200
    member = f"/staff/people/{tenants.a.id}/{staff_members.operator.id}"
    page = await admin_client.get(member)
    assert page.status_code == 200 and "2026-11" in page.text
    refused = await admin_client.post_form(member, f"{member}/unassign",
                                           {"reason": " ", "to_staff": str(staff_members.admin.id)})
    assert refused.status_code == 422
    done = await admin_client.post_form(member, f"{member}/unassign",
                                        {"reason": "fim do fechamento", "to_staff": str(staff_members.admin.id)})
    assert done.status_code == 303
    # The very next request of the operator's open session is refused, like a company that does not exist.
    assert (await operator_client.get(f"/staff/overview/tenants/{tenants.a.id}")).status_code == 404
    assert (await operator_client.get(f"/staff/feedback?company=alfa")).status_code == 422
    async with database.system() as session:
        moved = await session.get(RoutineRun, (tenants.a.id, run.id))
        actions = [(e.action, e.reason) for e in (await session.execute(select(AuditEntry).where(
            AuditEntry.action.in_(["staff.unassigned", "staff.handed_over"])).order_by(AuditEntry.occurred_at)))
            .scalars()]
    assert moved.handled_by == staff_members.admin.id
    assert actions == [("staff.handed_over", "fim do fechamento"), ("staff.unassigned", "fim do fechamento")]


async def test_hand_over_refuses_someone_who_does_not_serve_the_company(admin_client, staff_members, database):
    tenants = admin_client.tenants
    member = f"/staff/people/{tenants.b.id}/{staff_members.admin.id}"
    async with database.provider(tenants.b.id) as session:
        session.add(_run(staff_members.admin.id))
    refused = await admin_client.post_form(member, f"{member}/handover",
                                           {"reason": "férias", "to_staff": str(staff_members.operator.id)})
    assert refused.status_code == 422
    alerts = [part.split("<", 1)[0] for part in refused.text.split('role="alert">')[1:]]
    assert any("não atende esta empresa" in alert for alert in alerts), alerts
