"""Replaying dead letters: one item, a selection, a time window. Each replay requeues what can be replayed
(status reset plus the job's outbox row), skips the rest with the reason, is audited with the actor and
kept with what it did; another tenant's rows are never named, read or touched."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.deadletters import queries
from backoffice.tenants.deadletters.service import (
    ItemRef, replay_one, replay_selection, replay_window,
)
from backoffice.tenants.effects.models import DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from tests.tenants.deadletters.conftest import T0

STAFF = Actor(type="staff", label="staff:ops@provider.example", id="42")


async def _statuses(database, tenant_id, letters):
    async with database.provider(tenant_id) as session:
        events = {e.id: e.status for e in (await session.execute(select(Event))).scalars()}
        message = await session.get(OutboundMessage, (tenant_id, letters.message))
        webhook = await session.get(WebhookDelivery, (tenant_id, letters.webhook))
        return events, message.status, webhook.status


async def _outbox(database, tenant_id) -> list[OutboxEntry]:
    async with database.system() as session:
        return list((await session.execute(select(OutboxEntry).where(OutboxEntry.tenant_id == tenant_id))).scalars())


async def test_a_selection_requeues_what_it_can_and_says_why_it_skipped_the_rest(database, letters):
    a, b = letters
    refs = [ItemRef("event", a.failed[0]), ItemRef("event", a.unmatched), ItemRef("event", a.processed),
            ItemRef("message", a.message), ItemRef("webhook", a.webhook)]
    async with database.provider(a.tenant_id) as session:
        replay = await replay_selection(session, refs, acting=STAFF, reason="receiver fixed")
    assert replay.mode == "selection"
    actions = {item["id"]: (item["action"], item["reason"]) for item in replay.items}
    assert actions[str(a.processed)] == ("skipped", "the event is processed; only failed or unmatched events are "
                                                    "replayed")
    assert [actions[str(i)][0] for i in (a.failed[0], a.unmatched, a.message, a.webhook)] == ["requeued"] * 4

    events, message, webhook = await _statuses(database, a.tenant_id, a)
    assert events[a.failed[0]] == events[a.unmatched] == EventStatus.PENDING
    assert events[a.failed[1]] == EventStatus.FAILED  # not selected
    assert message == DeliveryStatus.PENDING and webhook == WebhookDeliveryStatus.PENDING
    jobs = sorted((e.job, next(iter(e.payload.values()))) for e in await _outbox(database, a.tenant_id))
    assert jobs == sorted([("spine.process_event", str(a.failed[0])), ("spine.process_event", str(a.unmatched)),
                           ("effects.deliver", str(a.message)), ("webhooks.deliver", str(a.webhook))])
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "dead_letters.replayed"))
                 ).scalars().one()
    assert (audit.tenant_id, audit.actor_label, audit.target_id, audit.reason) == (
        a.tenant_id, STAFF.label, str(replay.id), "receiver fixed")
    assert audit.detail["requeued"] == 4 and audit.detail["skipped"] == 1
    # The other tenant's dead letters are as they were.
    events_b, message_b, webhook_b = await _statuses(database, b.tenant_id, b)
    assert events_b[b.failed[0]] == EventStatus.FAILED and message_b == DeliveryStatus.DEAD
    assert await _outbox(database, b.tenant_id) == []


async def test_a_selection_naming_another_tenants_item_replays_nothing(database, letters):
    a, b = letters
    async with database.provider(a.tenant_id) as session:
        with pytest.raises(NotFound):
            await replay_selection(session, [ItemRef("event", a.failed[0]), ItemRef("event", b.failed[0])],
                                   acting=STAFF)
    with pytest.raises(NotFound):
        async with database.provider(a.tenant_id) as session:
            await replay_one(session, "webhook", b.webhook, acting=STAFF)
    assert (await _statuses(database, a.tenant_id, a))[0][a.failed[0]] == EventStatus.FAILED
    assert (await _statuses(database, b.tenant_id, b))[0][b.failed[0]] == EventStatus.FAILED
    assert await _outbox(database, a.tenant_id) == [] and await _outbox(database, b.tenant_id) == []


async def test_a_window_replays_the_tenants_dead_letters_in_it_and_no_other_tenants(database, letters):
    a, b = letters
    async with database.provider(a.tenant_id) as session:
        # [T0, T0+100min): failed events at T0 and T0+60, the e-mail at +30 and the webhook at +90; not the
        # failed event at T0+120, not the unmatched one (another set), not the processed one.
        replay = await replay_window(session, since=T0, until=T0 + timedelta(minutes=100), acting=STAFF)
    assert replay.mode == "window" and replay.remaining == 0
    assert [(i["kind"], i["id"]) for i in replay.items] == [
        ("event", str(a.failed[0])), ("message", str(a.message)), ("event", str(a.failed[1])),
        ("webhook", str(a.webhook))]
    events, message, webhook = await _statuses(database, a.tenant_id, a)
    assert events[a.failed[2]] == EventStatus.FAILED and events[a.unmatched] == EventStatus.UNMATCHED
    assert message == DeliveryStatus.PENDING and webhook == WebhookDeliveryStatus.PENDING
    events_b, message_b, webhook_b = await _statuses(database, b.tenant_id, b)
    assert set(events_b.values()) == {EventStatus.FAILED, EventStatus.UNMATCHED, EventStatus.PROCESSED}
    assert message_b == DeliveryStatus.DEAD and webhook_b == WebhookDeliveryStatus.DEAD
    assert await _outbox(database, b.tenant_id) == []

    async with database.provider(a.tenant_id) as session:
        unmatched = await replay_window(session, since=T0, until=T0 + timedelta(days=1), what="unmatched",
                                        acting=STAFF)
    assert [i["id"] for i in unmatched.items] == [str(a.unmatched)]


async def test_a_window_larger_than_its_limit_says_how_many_remain(database, letters):
    a, _ = letters
    async with database.provider(a.tenant_id) as session:
        first = await replay_window(session, since=T0, until=T0 + timedelta(days=1), acting=STAFF, limit=2)
    assert len(first.items) == 2 and first.remaining == 3
    async with database.provider(a.tenant_id) as session:
        second = await replay_window(session, since=T0, until=T0 + timedelta(days=1), acting=STAFF, limit=10)
    assert len(second.items) == 3 and second.remaining == 0
    assert not {i["id"] for i in first.items} & {i["id"] for i in second.items}


async def test_a_window_leaves_out_the_deliveries_of_a_disabled_endpoint(database, letters):
    a, _ = letters
    async with database.provider(a.tenant_id) as session:
        (await session.get(WebhookEndpoint, (a.tenant_id, a.endpoint))).enabled = False
    async with database.provider(a.tenant_id) as session:
        replay = await replay_window(session, since=T0, until=T0 + timedelta(days=1), acting=STAFF)
        assert str(a.webhook) not in {i["id"] for i in replay.items}
        with pytest.raises(ValidationFailed) as refused:
            await replay_one(session, "webhook", a.webhook, acting=STAFF)
    assert refused.value.errors[0].field == "delivery_id"


@pytest.mark.parametrize("since, until, field", [
    (None, T0, "since"), (T0.replace(tzinfo=None), T0 + timedelta(hours=1), "since"), (T0, T0, "until")])
async def test_a_window_needs_two_aware_times_in_order(database, letters, since, until, field):
    a, _ = letters
    async with database.provider(a.tenant_id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await replay_window(session, since=since, until=until, acting=STAFF)
    assert refused.value.errors[0].field == field
    assert await _outbox(database, a.tenant_id) == []


async def test_one_item_that_cannot_be_replayed_is_refused_naming_its_field(database, letters):
    a, _ = letters
    async with database.provider(a.tenant_id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await replay_one(session, "event", a.processed, acting=STAFF)
    assert refused.value.errors[0].field == "event_id"
    async with database.provider(a.tenant_id) as session:
        replay = await replay_one(session, "event", a.failed[0], acting=STAFF)
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "event.retried"))).scalars().one()
    assert audit.target_id == str(a.failed[0]) and audit.detail == {"replay_id": str(replay.id)}
    assert (audit.target_type, audit.actor_label) == ("event", STAFF.label)
    async with database.provider(a.tenant_id) as session:
        await replay_one(session, "webhook", a.webhook, acting=STAFF, reason="receiver back")
    async with database.system() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "webhook_delivery.replayed"))
                 ).scalars().one()
    assert (audit.target_type, audit.target_id, audit.reason) == ("webhook_delivery", str(a.webhook), "receiver back")


async def test_the_outcome_tells_per_item_what_became_of_it(database, letters):
    a, b = letters
    refs = [ItemRef("event", a.failed[0]), ItemRef("event", a.processed), ItemRef("message", a.message),
            ItemRef("webhook", a.webhook)]
    async with database.provider(a.tenant_id) as session:
        replay = await replay_selection(session, refs, acting=STAFF)
    async with database.provider(a.tenant_id) as session:
        waiting = await queries.replay_outcome(session, replay.id)
    assert waiting.totals == {"waiting": 3, "skipped": 1} and not waiting.settled
    # The jobs ran: the event was processed, the e-mail failed for good again, the webhook was delivered.
    async with database.provider(a.tenant_id) as session:
        event = await session.get(Event, (a.tenant_id, a.failed[0]))
        event.status = EventStatus.PROCESSED
        message = await session.get(OutboundMessage, (a.tenant_id, a.message))
        message.status, message.last_error = DeliveryStatus.DEAD, "SMTP 550 still unavailable"
        (await session.get(WebhookDelivery, (a.tenant_id, a.webhook))).status = WebhookDeliveryStatus.SUCCEEDED
    async with database.provider(a.tenant_id) as session:
        outcome = await queries.replay_outcome(session, replay.id)
    assert outcome.settled and outcome.totals == {"done": 2, "failed_again": 1, "skipped": 1}
    states = {item.id: (item.state, item.status, item.error) for item in outcome.items}
    assert states[a.message] == ("failed_again", "dead", "SMTP 550 still unavailable")
    assert states[a.webhook][:2] == ("done", "sent")
    assert states[a.processed][0] == "skipped"
    # The replay is the tenant's: another tenant's session does not find it.
    async with database.provider(b.tenant_id) as session:
        with pytest.raises(NotFound):
            await queries.replay_outcome(session, replay.id)


async def test_counts_are_the_tenants_own(database, letters):
    a, _ = letters
    async with database.provider(a.tenant_id) as session:
        counts = await queries.counts(session)
    assert (counts.failed_events, counts.unmatched_events, counts.dead_messages, counts.dead_webhooks) == (3, 1, 1, 1)
    assert counts.dead_letters == 5 and counts.pending_events == 0 and counts.oldest_pending_at is None
