"""The feedback inbox: front-office notes across the companies a staff member serves (only those), filters,
read/acknowledged state, and a reply that the front office reads on the customer's page in the portal."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backoffice.platform.audit.service import Actor
from backoffice.tenants.timeline.models import FeedbackItem, FeedbackState
from backoffice.tenants.timeline.service import add_note
from tests.web.console.conftest import csrf_of
from tests.web.portal.conftest import Browser


async def _note(database, tenant, customer: int, text: str, label: str = "feedback") -> uuid.UUID:
    actor = Actor(type="tenant_user", label=f"admin@{tenant.slug}.example", id=str(tenant.admin_id))
    async with database.tenant(tenant.id) as session:
        entry = await add_note(session, tenant.customer_ids[customer], text=text, author_id=tenant.admin_id,
                               label=label, acting=actor)
    async with database.provider(tenant.id) as session:
        return (await session.execute(select(FeedbackItem.id).where(FeedbackItem.entry_id == entry.id))).scalar_one()


async def test_the_inbox_lists_every_served_companys_feedback_and_only_theirs(admin_client, operator_client, database):
    tenants = admin_client.tenants
    await _note(database, tenants.a, 0, "Alfa: cliente quer nota fiscal por e-mail")
    await _note(database, tenants.b, 0, "Beta: reclamou do boleto")
    everything = await admin_client.get("/staff/feedback")
    assert everything.status_code == 200
    assert "Alfa: cliente quer" in everything.text and "Beta: reclamou" in everything.text
    theirs = await operator_client.get("/staff/feedback")
    assert "Alfa: cliente quer" in theirs.text and "Beta: reclamou" not in theirs.text
    # Naming beta in the filter is refused like a company that does not exist; nothing of beta shows.
    asked = await operator_client.get("/staff/feedback?company=beta")
    assert asked.status_code == 422 and "Beta: reclamou" not in asked.text and 'data-field="company"' in asked.text


async def test_filters_by_company_kind_state_and_text(admin_client, database):
    tenants = admin_client.tenants
    await _note(database, tenants.a, 0, "Quer desconto anual")
    await _note(database, tenants.a, 1, "Mudou de endereço", label="note")
    await _note(database, tenants.b, 0, "Beta quer desconto")
    def listed(html):
        return html.split('id="feedback"', 1)[1].split("</table>", 1)[0]
    by_company = listed((await admin_client.get("/staff/feedback?company=alfa")).text)
    assert "Quer desconto" in by_company and "Beta quer" not in by_company
    by_kind = listed((await admin_client.get("/staff/feedback?kind=note")).text)
    assert "Mudou de endereço" in by_kind and "desconto" not in by_kind
    by_text = listed((await admin_client.get("/staff/feedback?q=DESCONTO")).text)
    assert "Quer desconto" in by_text and "Beta quer" in by_text and "Mudou" not in by_text
    assert "desconto" not in listed((await admin_client.get("/staff/feedback?state=read")).text)


async def test_bad_filters_are_named_never_a_500(admin_client):
    for query, field, status in (("kind=complaint", "kind", 422), ("state=done", "state", 422),
                                 ("q=" + "x" * 300, "q", 422), ("cursor=garbage", "cursor", 400),
                                 ("company=nenhuma", "company", 422)):
        answer = await admin_client.get(f"/staff/feedback?{query}")
        assert answer.status_code == status and f'data-field="{field}"' in answer.text, (query, answer.status_code)
    assert (await admin_client.get("/staff/feedback?q=a%00b")).status_code == 400


async def test_read_acknowledge_and_reply_and_the_portal_shows_the_reply(admin_client, database, console):
    tenants = admin_client.tenants
    item = await _note(database, tenants.a, 0, "Cliente pediu para antecipar a entrega")
    inbox = await admin_client.get("/staff/feedback")
    token = csrf_of(inbox.text)
    base = f"/staff/feedback/{tenants.a.id}/{item}"
    read = await admin_client.client.post(f"{base}/state", data={"state": "read", "next": "/staff/feedback",
                                                                 "_csrf_token": token},
                                          headers=admin_client.headers, follow_redirects=False)
    assert read.status_code == 303 and read.headers["location"] == "/staff/feedback"
    no_csrf = await admin_client.client.post(f"{base}/reply", data={"text": "x"}, headers=admin_client.headers,
                                             follow_redirects=False)
    assert no_csrf.status_code == 403
    empty = await admin_client.post_form(base, f"{base}/reply", {"text": "   "})
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text
    done = await admin_client.post_form(base, f"{base}/reply", {"text": "Combinado: entrega antecipada para sexta."})
    assert done.status_code == 303
    page = await admin_client.get(done.headers["location"])
    assert "Combinado: entrega antecipada" in page.text
    async with database.provider(tenants.a.id) as session:
        stored = await session.get(FeedbackItem, (tenants.a.id, item))
    assert (stored.state, stored.replies) == (FeedbackState.ACKNOWLEDGED, 1)

    # The front office reads the answer on the customer's page, marked as the back office's.
    front = Browser(console)
    assert (await front.login("/alfa", "member@alfa.example")).status_code == 303
    customer = await front.get(f"/alfa/customers/{tenants.a.customer_ids[0]}")
    assert customer.status_code == 200
    assert "Combinado: entrega antecipada para sexta." in customer.text
    assert "resposta do back office" in customer.text and "Ana Admin" in customer.text


async def test_another_companys_item_is_a_404_for_every_action(operator_client, database):
    tenants = operator_client.tenants
    theirs = await _note(database, tenants.b, 0, "Beta: segredo")
    token = csrf_of((await operator_client.get("/staff/feedback")).text)
    for tenant_id in (tenants.b.id, tenants.a.id):  # beta's address; beta's item under alfa's address
        base = f"/staff/feedback/{tenant_id}/{theirs}"
        assert (await operator_client.get(base)).status_code == 404
        for action, data in (("state", {"state": "read"}), ("reply", {"text": "oi"})):
            answer = await operator_client.client.post(f"{base}/{action}", data={**data, "_csrf_token": token},
                                                       headers=operator_client.headers, follow_redirects=False)
            assert answer.status_code == 404, (tenant_id, action)
    async with database.provider(tenants.b.id) as session:
        stored = await session.get(FeedbackItem, (tenants.b.id, theirs))
    assert (stored.state, stored.replies) == (FeedbackState.UNREAD, 0)
