"""Working one tenant in the console: each page shows tenant A's data and none of tenant B's; replays (one,
a selection, a window) are the service's, audited with the staff member, and the page shows what each did;
routines start, pause and resume from their page; an operator not assigned to a tenant gets 404 on every
page and action of it, and B's ids under A's address are 404 too."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.deadletters.models import Replay
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from tests.tenants.deadletters.conftest import T0, write_letters
from tests.tenants.routines.scripted import registered, scripted
from tests.web.console.conftest import csrf_of

ROUTINE, _ = scripted("test_console_billing", refusal="recusado")


@pytest.fixture
async def letters(database, tenants):
    a = await write_letters(database, tenants.a.id, url="https://alfa-erp.example/hooks")
    b = await write_letters(database, tenants.b.id, url="https://beta-erp.example/hooks")
    async with database.provider(tenants.a.id) as session:  # an e-mail to A's first customer, on its timeline
        message = await session.get(OutboundMessage, (tenants.a.id, a.message))
        message.customer_id = tenants.a.customer_ids[0]
    async with database.provider(tenants.b.id) as session:
        message = await session.get(OutboundMessage, (tenants.b.id, b.message))
        message.target = "joao@beta.example"
    return a, b


def _base(tenant_id) -> str:
    return f"/staff/tenants/{tenant_id}"


async def _page(client, path: str) -> str:
    answer = await client.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
    return answer.text


async def test_every_page_shows_the_tenants_data_and_none_of_the_others(admin_client, tenants, letters):
    a, b = letters
    base = _base(tenants.a.id)
    home = await _page(admin_client, base)
    assert "Alfa" in home and "Beta" not in home
    assert 'href="/staff/tenants/%s/dead-letters"><strong>5</strong>' % tenants.a.id in home

    listed = await _page(admin_client, f"{base}/customers")
    assert "Casa do Pão" in listed and "Maria Silva" in listed and "João Pereira" not in listed
    assert "Casa do Pão" in await _page(admin_client, f"{base}/customers?q=4572317")  # CNPJ digits
    by_name = await _page(admin_client, f"{base}/customers?q=maria")
    assert "Maria Silva" in by_name and "Casa do Pão" not in by_name
    assert "Casa do Pão" not in await _page(admin_client, f"{base}/customers?stage=blocked")

    events = await _page(admin_client, f"{base}/dead-letters")
    assert f"event:{a.failed[0]}" in events and f"event:{b.failed[0]}" not in events
    messages = await _page(admin_client, f"{base}/dead-letters?kind=messages")
    assert f"message:{a.message}" in messages and "SMTP 550" in messages and "joao@beta.example" not in messages
    webhooks = await _page(admin_client, f"{base}/dead-letters?kind=webhooks")
    assert "alfa-erp.example" in webhooks and "beta-erp.example" not in webhooks
    unmatched = await _page(admin_client, f"{base}/unmatched")
    assert f"event:{a.unmatched}" in unmatched and f"event:{b.unmatched}" not in unmatched

    deliveries = await _page(admin_client, f"{base}/deliveries?status=dead")
    assert "c@example.com" in deliveries and "joao@beta.example" not in deliveries
    assert "alfa-erp.example" in await _page(admin_client, f"{base}/deliveries?channel=webhook")
    detail = await _page(admin_client, f"{base}/deliveries/{a.message}")
    assert "SMTP 550 mailbox unavailable" in detail

    customer = await _page(admin_client, f"{base}/customers/{tenants.a.customer_ids[0]}")
    assert "Casa do Pão" in customer
    assert await _page(admin_client, f"{base}/routines")
    assert await _page(admin_client, f"{base}/replays")


async def test_the_customer_timeline_carries_each_effects_delivery(admin_client, database, tenants, letters):
    from backoffice.tenants.timeline.models import TimelineEntry

    a, _ = letters
    customer_id = tenants.a.customer_ids[0]
    async with database.provider(tenants.a.id) as session:
        session.add(TimelineEntry(customer_id=customer_id, at=T0, kind="effect", title="E-mail to the customer: Boleto",
                                  reason="payment overdue", ref={"message_id": str(a.message), "channel": "email"}))
    page = await _page(admin_client, f"{_base(tenants.a.id)}/customers/{customer_id}")
    assert "E-mail to the customer: Boleto" in page and "SMTP 550 mailbox unavailable" in page
    assert f"/deliveries/{a.message}" in page


async def test_a_selection_replayed_from_the_page_shows_what_it_did(admin_client, database, tenants, letters,
                                                                     staff_members):
    a, b = letters
    base = _base(tenants.a.id)
    token = csrf_of((await admin_client.get(f"{base}/dead-letters")).text)
    answer = await admin_client.client.post(
        f"{base}/replays", headers=admin_client.headers, follow_redirects=False,
        data={"_csrf_token": token, "items": [f"event:{a.failed[0]}", f"event:{a.processed}"],
              "reason": "gateway back"})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{base}/replays/")
    page = await _page(admin_client, location)
    assert "requeued" in page.lower() or "reenfileirad" in page.lower()
    assert "the event is processed" in page  # the skipped item's reason
    assert 'hx-trigger="every 2s"' in page  # one item still waits for its job: the page polls
    async with database.provider(tenants.a.id) as session:
        assert (await session.get(Event, (tenants.a.id, a.failed[0]))).status == EventStatus.PENDING
        (await session.get(Event, (tenants.a.id, a.failed[0]))).status = EventStatus.PROCESSED
    fragment = await _page(admin_client, f"{location}/progress")
    assert "hx-trigger" not in fragment and 'data-state="done"><strong>1</strong>' in fragment
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "dead_letters.replayed"))
                 ).scalars().one()
    assert (audit.actor_label, audit.actor_type, audit.tenant_id, audit.reason) == (
        staff_members.admin.email, "staff", tenants.a.id, "gateway back")
    async with database.provider(tenants.b.id) as session:
        assert (await session.get(Event, (tenants.b.id, b.failed[0]))).status == EventStatus.FAILED


async def test_one_item_and_a_window_replayed_from_the_page(admin_client, database, tenants, letters):
    a, b = letters
    base = _base(tenants.a.id)
    one = await admin_client.post_form(f"{base}/dead-letters?kind=webhooks", f"{base}/replays",
                                       {"one": f"webhook:{a.webhook}"})
    assert one.status_code == 303
    async with database.provider(tenants.a.id) as session:
        assert (await session.get(WebhookDelivery, (tenants.a.id, a.webhook))).status == WebhookDeliveryStatus.PENDING
    # The window is read on the tenant's wall clock (America/Sao_Paulo): T0 is 09:00 there.
    local = T0.astimezone(ZoneInfo("America/Sao_Paulo"))
    window = await admin_client.post_form(f"{base}/dead-letters", f"{base}/replays", {
        "mode": "window", "what": "dead_letters", "since": local.strftime("%Y-%m-%dT%H:%M"),
        "until": (local + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M")})
    assert window.status_code == 303
    async with database.provider(tenants.a.id) as session:
        replay = await session.get(Replay, (tenants.a.id, uuid.UUID(window.headers["location"].rsplit("/", 1)[1])))
        assert {i["id"] for i in replay.items} == {str(a.failed[0]), str(a.message)}
        assert (await session.get(OutboundMessage, (tenants.a.id, a.message))).status == DeliveryStatus.PENDING
    async with database.provider(tenants.b.id) as session:
        statuses = {e.status for e in (await session.execute(select(Event))).scalars()}
        assert EventStatus.PENDING not in statuses
        assert (await session.get(OutboundMessage, (tenants.b.id, b.message))).status == DeliveryStatus.DEAD
    bad = await admin_client.post_form(f"{base}/dead-letters", f"{base}/replays",
                                       {"mode": "window", "since": "yesterday", "until": ""})
    assert bad.status_code == 422 and "since" in bad.text


async def test_an_unassigned_operator_gets_404_on_every_page_and_action_of_another_tenant(
        operator_client, database, tenants, letters):
    a, b = letters
    other = _base(tenants.b.id)
    for path in ("", "/customers", f"/customers/{tenants.b.customer_ids[0]}", "/routines", "/dead-letters",
                 "/dead-letters?kind=webhooks", "/unmatched", "/deliveries", f"/deliveries/{b.message}", "/replays"):
        assert (await operator_client.get(other + path)).status_code == 404, path
    token = csrf_of((await operator_client.get(f"{_base(tenants.a.id)}/dead-letters")).text)
    for data in ({"one": f"event:{b.failed[0]}"}, {"items": f"event:{b.failed[0]}"},
                 {"mode": "window", "since": "2026-11-20T00:00", "until": "2026-11-21T00:00"}):
        answer = await operator_client.client.post(f"{other}/replays", data={**data, "_csrf_token": token},
                                                   headers=operator_client.headers, follow_redirects=False)
        assert answer.status_code == 404, data
    async with database.provider(tenants.b.id) as session:
        assert {e.status for e in (await session.execute(select(Event))).scalars()} == {
            EventStatus.FAILED, EventStatus.UNMATCHED, EventStatus.PROCESSED}


async def test_b_ids_under_a_path_are_404_and_replay_nothing(operator_client, admin_client, database, tenants,
                                                            letters):
    a, b = letters
    base = _base(tenants.a.id)
    token = csrf_of((await operator_client.get(f"{base}/dead-letters")).text)
    for data in ({"one": f"event:{b.failed[0]}"}, {"one": f"message:{b.message}"}, {"one": f"webhook:{b.webhook}"},
                 {"items": [f"event:{a.failed[0]}", f"event:{b.failed[0]}"]}):
        answer = await operator_client.client.post(f"{base}/replays", data={**data, "_csrf_token": token},
                                                   headers=operator_client.headers, follow_redirects=False)
        assert answer.status_code == 404, data
    assert (await operator_client.get(f"{base}/deliveries/{b.message}")).status_code == 404
    assert (await operator_client.get(f"{base}/customers/{tenants.b.customer_ids[0]}")).status_code == 404
    # A replay of B's, asked for under A's address.
    b_replay = await admin_client.post_form(f"{_base(tenants.b.id)}/dead-letters", f"{_base(tenants.b.id)}/replays",
                                            {"one": f"event:{b.failed[1]}"})
    replay_id = b_replay.headers["location"].rsplit("/", 1)[1]
    assert (await operator_client.get(f"{base}/replays/{replay_id}")).status_code == 404
    assert (await operator_client.get(f"{base}/replays/{replay_id}/progress")).status_code == 404
    async with database.provider(tenants.a.id) as session:
        assert (await session.get(Event, (tenants.a.id, a.failed[0]))).status == EventStatus.FAILED
    async with database.provider(tenants.b.id) as session:
        assert (await session.get(Event, (tenants.b.id, b.failed[0]))).status == EventStatus.FAILED


async def test_routines_start_pause_and_resume_from_their_page(operator_client, database, tenants, staff_members):
    base = _base(tenants.a.id)
    with registered(ROUTINE):
        page = await _page(operator_client, f"{base}/routines")
        assert "Faturamento de teste" in page
        started = await operator_client.post_form(f"{base}/routines", f"{base}/routines/{ROUTINE.name}/runs",
                                                  {"reason": "cliente pediu"})
        assert started.status_code == 303, started.text
        run_page = await _page(operator_client, started.headers["location"])
        assert "aguardando" in run_page.lower() or "waiting" in run_page.lower()
        # Pushed (the tenant's live stream), polled every 2 s only while the stream is not open.
        assert 'hx-trigger="live, every 2s [!window.backofficeLive]"' in run_page and "/progress" in run_page
        assert f'data-live="{base}/live"' in run_page
        assert (await operator_client.post_form(f"{base}/routines", f"{base}/routines/{ROUTINE.name}/pause",
                                                {"reason": "manutenção"})).status_code == 303
        assert "manutenção" in await _page(operator_client, f"{base}/routines")
        assert (await operator_client.post_form(f"{base}/routines", f"{base}/routines/{ROUTINE.name}/resume",
                                                {})).status_code == 303
        missing = await operator_client.post_form(f"{base}/routines", f"{base}/routines/no_such_routine/pause", {})
        assert missing.status_code == 404
        foreign = await operator_client.post_form(f"{base}/routines",
                                                  f"{_base(tenants.b.id)}/routines/{ROUTINE.name}/pause", {})
        assert foreign.status_code == 404
        # B's run, asked for (and retried) under A's address.
        from backoffice.platform.audit.service import Actor
        from backoffice.tenants.routines.engine import start_run

        async with database.provider(tenants.b.id) as session:
            b_run = await start_run(session, ROUTINE.name, actor=Actor.system("tests"))
        for path in (f"/routine-runs/{b_run.id}", f"/routine-runs/{b_run.id}/progress"):
            assert (await operator_client.get(base + path)).status_code == 404, path
        assert (await operator_client.post_form(f"{base}/routines", f"{base}/routine-runs/{b_run.id}/retry",
                                                {})).status_code == 404
    async with database.system() as session:
        actions = [(e.action, e.actor_label) for e in (await session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == tenants.a.id, AuditEntry.action.like("routine%"))
            .order_by(AuditEntry.occurred_at))).scalars()]
    assert [action for action, _ in actions] == ["routine.manual", "routine.pause", "routine.resume"]  # A's only
    assert {label for _, label in actions} == {staff_members.operator.email}
