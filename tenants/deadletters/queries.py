"""Reads of a tenant's dead letters, unmatched events, outbound deliveries and replays, for the staff console
and the staff API: statements to paginate, counts in one statement per panel, and what became of a replay's
items (one statement per kind, however many items it named). Run through ``Database.provider``."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import get_owned
from backoffice.tenants.deadletters.models import Replay
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

MESSAGE_DEAD = (DeliveryStatus.DEAD, DeliveryStatus.FAILED)
WEBHOOK_DEAD = (WebhookDeliveryStatus.DEAD, WebhookDeliveryStatus.FAILED)
# One status vocabulary for every delivery: a webhook delivery that succeeded was "sent".
STATUSES = ("pending", "sent", "failed", "dead")
CHANNELS = tuple(channel.value for channel in Channel)
_WEBHOOK_STATUS = {"pending": WebhookDeliveryStatus.PENDING, "sent": WebhookDeliveryStatus.SUCCEEDED,
                   "failed": WebhookDeliveryStatus.FAILED, "dead": WebhookDeliveryStatus.DEAD}


# --- lists (statements the edge paginates) --------------------------------------------------------

def failed_events_query() -> Select:
    return select(Event).where(Event.status == EventStatus.FAILED)


def unmatched_events_query() -> Select:
    return select(Event).where(Event.status == EventStatus.UNMATCHED)


def dead_messages_query() -> Select:
    return select(OutboundMessage).where(OutboundMessage.status.in_(MESSAGE_DEAD))


def dead_webhooks_query() -> Select:
    return select(WebhookDelivery).where(WebhookDelivery.status.in_(WEBHOOK_DEAD))


def messages_query(*, status: str | None = None, channel: str | None = None) -> Select:
    """Outbound messages (e-mail, chat, platform commands, and webhook messages as handed to the endpoints)."""
    query = select(OutboundMessage)
    if status in STATUSES:
        query = query.where(OutboundMessage.status == DeliveryStatus(status))
    if channel in CHANNELS:
        query = query.where(OutboundMessage.channel == Channel(channel))
    return query


def webhook_deliveries_query(*, status: str | None = None) -> Select:
    """One row per (webhook message, endpoint): the attempts that actually left for the tenant's systems."""
    query = select(WebhookDelivery)
    if status in STATUSES:
        query = query.where(WebhookDelivery.status == _WEBHOOK_STATUS[status])
    return query


async def endpoint_urls(session: AsyncSession, endpoint_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not endpoint_ids:
        return {}
    rows = await session.execute(select(WebhookEndpoint.id, WebhookEndpoint.url)
                                 .where(WebhookEndpoint.id.in_(endpoint_ids)))
    return dict(rows.all())


async def webhook_deliveries_of(session: AsyncSession, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, list]:
    """The webhook deliveries each webhook message fanned out into, with the endpoint's URL: one statement."""
    if not message_ids:
        return {}
    rows = await session.execute(
        select(WebhookDelivery, WebhookEndpoint.url)
        .join(WebhookEndpoint, and_(WebhookEndpoint.tenant_id == WebhookDelivery.tenant_id,
                                    WebhookEndpoint.id == WebhookDelivery.endpoint_id))
        .where(WebhookDelivery.outbound_message_id.in_(message_ids))
        .order_by(WebhookDelivery.created_at))
    found: dict[uuid.UUID, list] = {}
    for delivery, url in rows.all():
        found.setdefault(delivery.outbound_message_id, []).append((delivery, url))
    return found


async def customer_deliveries(session: AsyncSession, customer_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    """The delivery details of each outbound effect of a customer (its timeline's ``ref["message_id"]``):
    the message, and for a webhook message the endpoint deliveries it fanned out into. Two statements."""
    messages = list((await session.execute(
        select(OutboundMessage).where(OutboundMessage.customer_id == customer_id)
        .order_by(OutboundMessage.created_at.desc()).limit(1000))).scalars())
    webhooks = await webhook_deliveries_of(session, {m.id for m in messages if m.channel == Channel.WEBHOOK})
    return {m.id: {"message": m, "webhooks": webhooks.get(m.id, [])} for m in messages}


# --- counts (one statement) -----------------------------------------------------------------------

@dataclass(frozen=True)
class DeadLetterCounts:
    failed_events: int
    unmatched_events: int
    pending_events: int
    oldest_pending_at: datetime | None
    dead_messages: int
    dead_webhooks: int

    @property
    def dead_letters(self) -> int:
        return self.failed_events + self.dead_messages + self.dead_webhooks


async def counts(session: AsyncSession) -> DeadLetterCounts:
    """The tenant's waiting, failed and unmatched events and its dead or failing deliveries, in one statement."""
    def count(model, *where):
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    row = (await session.execute(select(
        count(Event, Event.status == EventStatus.FAILED),
        count(Event, Event.status == EventStatus.UNMATCHED),
        count(Event, Event.status == EventStatus.PENDING),
        select(func.min(Event.received_at)).where(Event.status == EventStatus.PENDING).scalar_subquery(),
        count(OutboundMessage, OutboundMessage.status.in_(MESSAGE_DEAD)),
        count(WebhookDelivery, WebhookDelivery.status.in_(WEBHOOK_DEAD)),
    ))).one()
    oldest = row[3]
    if isinstance(oldest, str):  # SQLite answers an aggregate over a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return DeadLetterCounts(row[0], row[1], row[2], oldest, row[4], row[5])


# --- a replay and what became of its items --------------------------------------------------------

async def get_replay(session: AsyncSession, replay_id: uuid.UUID) -> Replay:
    return await get_owned(session, Replay, replay_id)


def replays_query() -> Select:
    return select(Replay)


@dataclass
class ItemOutcome:
    kind: str
    id: uuid.UUID
    action: str  # requeued | skipped (what the replay did)
    state: str  # waiting | done | failed_again | skipped | gone
    label: str  # the event's type, the message's channel and target
    status: str  # the row's status now
    error: str | None  # the skip's reason, or the error of the failed attempt
    next_attempt_at: datetime | None = None
    attempts: int | None = None


@dataclass
class ReplayOutcome:
    replay: Replay
    items: list[ItemOutcome]  # the page asked for
    totals: Counter = field(default_factory=Counter)  # state -> count, over every item

    @property
    def settled(self) -> bool:
        return self.totals.get("waiting", 0) == 0

    @property
    def requeued(self) -> int:
        return sum(1 for item in self.replay.items if item["action"] == "requeued")


def _state_of(kind: str, row: Any) -> tuple[str, str, str | None, datetime | None, int | None, str]:
    if kind == "event":
        status = row.status.value
        state = {"pending": "waiting", "processed": "done"}.get(status, "failed_again")
        return state, status, row.error, None, None, row.type
    if kind == "message":
        status = row.status.value
        state = {"pending": "waiting", "sent": "done"}.get(status, "failed_again")
        target = f"{row.channel.value} → {row.target}" if row.target else row.channel.value
        return state, status, row.last_error, row.next_attempt_at, row.attempts, target
    status = "sent" if row.status == WebhookDeliveryStatus.SUCCEEDED else row.status.value
    state = {"pending": "waiting", "sent": "done"}.get(status, "failed_again")
    return state, status, row.last_error, row.next_attempt_at, row.attempts, f"webhook → {row.event_type}"


async def replay_outcome(session: AsyncSession, replay_id: uuid.UUID, *, offset: int = 0,
                         limit: int = 100) -> ReplayOutcome:
    """Each item of the replay as it stands now: still waiting for its job, done (processed, delivered),
    failed again (with the error), or skipped by the replay (with the reason)."""
    replay = await get_replay(session, replay_id)
    current: dict[tuple[str, str], Any] = {}
    for kind, model in (("event", Event), ("message", OutboundMessage), ("webhook", WebhookDelivery)):
        ids = [uuid.UUID(item["id"]) for item in replay.items if item["kind"] == kind]
        if ids:
            rows = await session.execute(select(model).where(model.id.in_(ids)))
            current.update({(kind, str(row.id)): row for row in rows.scalars()})
    totals: Counter = Counter()
    outcomes = []
    for index, item in enumerate(replay.items):
        row = current.get((item["kind"], item["id"]))
        if row is not None and item["action"] == "skipped":
            _state, status, _error, next_at, attempts, label = _state_of(item["kind"], row)
            outcome = ItemOutcome(item["kind"], row.id, "skipped", "skipped", label, status, item["reason"], next_at,
                                  attempts)
        elif row is None:
            outcome = ItemOutcome(item["kind"], uuid.UUID(item["id"]), item["action"], "gone", "", "", item["reason"])
        else:
            state, status, error, next_at, attempts, label = _state_of(item["kind"], row)
            outcome = ItemOutcome(item["kind"], row.id, "requeued", state, label, status, error, next_at, attempts)
        totals[outcome.state] += 1
        if offset <= index < offset + limit:
            outcomes.append(outcome)
    return ReplayOutcome(replay, outcomes, totals)


__all__ = [
    "CHANNELS", "STATUSES", "DeadLetterCounts", "ItemOutcome", "ReplayOutcome", "counts", "customer_deliveries", "dead_messages_query",
    "dead_webhooks_query", "endpoint_urls", "failed_events_query", "get_replay", "messages_query", "replay_outcome",
    "replays_query", "unmatched_events_query", "webhook_deliveries_of", "webhook_deliveries_query",
]
