"""Dead letters through the staff API: a selection and a time window replayed by the same service the
console and the CLI call, audited with the staff member; another tenant's ids are 404 and replay nothing;
a replay reads back what it did and what became of each item."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.effects.models import DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from tests.tenants.deadletters.conftest import T0, write_letters
from tests.web.api.test_staff import _token, staff  # noqa: F401  (fixture)


async def test_staff_replay_a_selection_and_a_window_and_read_what_they_did(client, database, tenants, staff):
    a = await write_letters(database, tenants.a.id)
    b = await write_letters(database, tenants.b.id)
    operator = await _token(client, "op@provider.example")
    base = f"/api/v1/staff/tenants/{tenants.a.id}"

    chosen = await client.post(f"{base}/replays", headers=operator, json={
        "items": [f"event:{a.failed[0]}", f"message:{a.message}", f"event:{a.processed}"], "reason": "fixed"})
    assert chosen.status_code == 201, chosen.text
    body = chosen.json()
    assert (body["mode"], body["actor"], body["requeued"], body["totals"], body["settled"]) == (
        "selection", "op@provider.example", 2, {"waiting": 2, "skipped": 1}, False)
    skipped = next(i for i in body["items"] if i["action"] == "skipped")
    assert skipped["id"] == str(a.processed) and "processed" in skipped["error"]

    window = await client.post(f"{base}/replays/window", headers=operator, json={
        "since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()})
    assert window.status_code == 201, window.text
    assert {(i["kind"], i["id"]) for i in window.json()["items"]} == {
        ("event", str(a.failed[1])), ("event", str(a.failed[2])), ("webhook", str(a.webhook))}

    read = await client.get(f"{base}/replays/{body['id']}", headers=operator)
    assert read.status_code == 200 and read.json()["id"] == body["id"]

    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "dead_letters.replayed")
                                       .order_by(AuditEntry.occurred_at))).scalars().all()
    assert [(e.actor_label, e.tenant_id, e.detail["mode"]) for e in audit] == [
        ("op@provider.example", tenants.a.id, "selection"), ("op@provider.example", tenants.a.id, "window")]
    async with database.provider(tenants.b.id) as session:
        assert {e.status for e in (await session.execute(select(Event))).scalars()} == {
            EventStatus.FAILED, EventStatus.UNMATCHED, EventStatus.PROCESSED}
        assert (await session.get(OutboundMessage, (tenants.b.id, b.message))).status == DeliveryStatus.DEAD
        assert (await session.get(WebhookDelivery, (tenants.b.id, b.webhook))).status == WebhookDeliveryStatus.DEAD


async def test_another_tenants_ids_are_404_and_bad_input_names_its_field(client, database, tenants, staff):
    a = await write_letters(database, tenants.a.id)
    b = await write_letters(database, tenants.b.id)
    operator = await _token(client, "op@provider.example")
    base = f"/api/v1/staff/tenants/{tenants.a.id}"
    assert (await client.post(f"{base}/replays", headers=operator,
                              json={"items": [f"event:{a.failed[0]}", f"event:{b.failed[0]}"]})).status_code == 404
    assert (await client.post(f"{base}/webhook-deliveries/{b.webhook}/replay", headers=operator)).status_code == 404
    assert (await client.post(f"{base}/events/{b.failed[0]}/retry", headers=operator)).status_code == 404
    # The operator does not serve B: its window is a 404 like a missing tenant.
    other = await client.post(f"/api/v1/staff/tenants/{tenants.b.id}/replays/window", headers=operator, json={
        "since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()})
    assert other.status_code == 404
    async with database.provider(tenants.a.id) as session:
        assert (await session.get(Event, (tenants.a.id, a.failed[0]))).status == EventStatus.FAILED

    backwards = await client.post(f"{base}/replays/window", headers=operator, json={
        "since": T0.isoformat(), "until": T0.isoformat()})
    assert backwards.status_code == 422 and "until" in backwards.text
    naive = await client.post(f"{base}/replays/window", headers=operator, json={
        "since": "2026-11-20T12:00:00", "until": "2026-11-21T12:00:00"})
    assert naive.status_code == 422 and "since" in naive.text
    empty = await client.post(f"{base}/replays", headers=operator, json={"items": []})
    assert empty.status_code in (400, 422) and "items" in empty.text
    wrong = await client.post(f"{base}/replays", headers=operator, json={"items": ["task:123"]})
    assert wrong.status_code in (400, 422) and "items" in wrong.text
    async with database.system() as session:
        assert (await session.execute(select(AuditEntry).where(AuditEntry.action == "dead_letters.replayed"))
                ).scalars().all() == []
