"""Replaying dead letters: failed and unmatched events, dead (or failing) outbound messages and webhook
deliveries. One item, a selection or a time window; every replay is one action by one actor, audited and
kept (``Replay``) with what it did to each item, so whoever replayed can watch what became of them.

The staff API, the staff console and the CLI call these functions and nothing else. Rows are read in
one statement per kind and the requeue (status reset plus an outbox row for the job that handles the
item) is written in the caller's flush: a replay of a thousand items is a handful of round trips.
An id the session's tenant does not own is a missing item (``NotFound``) and nothing is replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import TENANT_KEY, NotFound
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.deadletters.models import Replay
from backoffice.tenants.effects.jobs import replay as requeue_message
from backoffice.tenants.effects.models import DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.processes.engine import retry_event
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.service import requeue as requeue_delivery

KINDS = ("event", "message", "webhook")
MODELS: dict[str, type] = {"event": Event, "message": OutboundMessage, "webhook": WebhookDelivery}
MAX_SELECTION = 200  # items named one by one (a page of checkboxes)
MAX_WINDOW = 10_000  # items of one window replay; more are left for another (``Replay.remaining``)
# What a window replays: the dead letters (failed events, dead or failing deliveries) or the unmatched events.
WINDOW_SETS = ("dead_letters", "unmatched")

EVENT_REPLAYABLE = (EventStatus.FAILED, EventStatus.UNMATCHED)
MESSAGE_REPLAYABLE = (DeliveryStatus.DEAD, DeliveryStatus.FAILED)
WEBHOOK_REPLAYABLE = (WebhookDeliveryStatus.DEAD, WebhookDeliveryStatus.FAILED)
# The audit action of a one-item replay, by kind (the names the staff API has always written).
ONE_ACTIONS = {"event": "event.retried", "message": "outbound_message.replayed",
               "webhook": "webhook_delivery.replayed"}
ID_FIELDS = {"event": "event_id", "message": "message_id", "webhook": "delivery_id"}
TARGET_TYPES = {"event": "event", "message": "outbound_message", "webhook": "webhook_delivery"}


@dataclass(frozen=True)
class ItemRef:
    kind: str
    id: uuid.UUID

    @classmethod
    def parse(cls, text: str, field: str = "items") -> ItemRef:
        """``kind:uuid``, as the console's checkboxes and the CLI write them."""
        kind, _, ident = (text or "").partition(":")
        if kind not in KINDS:
            raise ValidationFailed(FieldError(field, f"expected kind:id with kind one of {', '.join(KINDS)}"))
        try:
            return cls(kind, uuid.UUID(ident))
        except ValueError:
            raise ValidationFailed(FieldError(field, f"{ident[:40]!r} is not an id")) from None


def _tenant(session: AsyncSession) -> uuid.UUID:
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise RuntimeError("a replay runs through a tenant's session (Database.provider)")
    return tenant_id


async def _load(session: AsyncSession, refs: list[ItemRef]) -> dict[tuple[str, uuid.UUID], Any]:
    """Every named row, one statement per kind; a missing (or another tenant's) id raises NotFound."""
    found: dict[tuple[str, uuid.UUID], Any] = {}
    for kind in KINDS:
        ids = [ref.id for ref in refs if ref.kind == kind]
        if not ids:
            continue
        model = MODELS[kind]
        rows = (await session.execute(select(model).where(model.id.in_(ids)))).scalars()
        found.update({(kind, row.id): row for row in rows})
    for ref in refs:
        if (ref.kind, ref.id) not in found:
            raise NotFound(MODELS[ref.kind], ref.id)
    return found


async def _endpoints(session: AsyncSession, rows: Iterable[Any]) -> dict[uuid.UUID, WebhookEndpoint]:
    ids = {row.endpoint_id for row in rows if isinstance(row, WebhookDelivery)}
    if not ids:
        return {}
    query = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids))
    return {endpoint.id: endpoint for endpoint in (await session.execute(query)).scalars()}


def _why_not(kind: str, row: Any, endpoints: dict[uuid.UUID, WebhookEndpoint]) -> str | None:
    """Why the item is not replayed (None: it is)."""
    if kind == "event":
        return None if row.status in EVENT_REPLAYABLE else \
            f"the event is {row.status.value}; only failed or unmatched events are replayed"
    if kind == "message":
        return None if row.status in MESSAGE_REPLAYABLE else \
            f"the message is {row.status.value}; only dead or failed messages are replayed"
    if row.status not in WEBHOOK_REPLAYABLE:
        return f"the delivery is {row.status.value}; only dead or failed deliveries are replayed"
    endpoint = endpoints.get(row.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return "the endpoint is disabled; enable it before replaying"
    return None


async def _requeue(session: AsyncSession, kind: str, row: Any) -> None:
    if kind == "event":
        await retry_event(session, row)
    elif kind == "message":
        await requeue_message(session, row)
    else:
        await requeue_delivery(session, row)


async def _replay(session: AsyncSession, refs: list[ItemRef], rows: dict[tuple[str, uuid.UUID], Any], *,
                  mode: str, acting: Actor, reason: str | None, since: datetime | None = None,
                  until: datetime | None = None, remaining: int = 0) -> Replay:
    endpoints = await _endpoints(session, rows.values())
    items = []
    for ref in refs:
        row = rows[(ref.kind, ref.id)]
        why_not = _why_not(ref.kind, row, endpoints)
        if why_not is None:
            await _requeue(session, ref.kind, row)
        items.append({"kind": ref.kind, "id": str(ref.id), "action": "skipped" if why_not else "requeued",
                      "reason": why_not})
    replay = Replay(tenant_id=_tenant(session), created_at=clock.now(), actor_label=acting.label, mode=mode,
                    since=since, until=until, items=items, remaining=remaining, reason=reason,
                    created_by=acting.id)
    session.add(replay)
    await session.flush()
    return replay


def _clean_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip()
    if len(reason) > 1000:
        raise ValidationFailed(FieldError("reason", "expected at most 1000 characters"))
    return reason or None


async def replay_one(session: AsyncSession, kind: str, item_id: uuid.UUID, *, acting: Actor,
                     reason: str | None = None) -> Replay:
    """One item; an item that cannot be replayed is refused (422 naming its id field), not skipped."""
    if kind not in KINDS:
        raise ValidationFailed(FieldError("kind", f"expected one of {', '.join(KINDS)}"))
    reason = _clean_reason(reason)
    ref = ItemRef(kind, item_id)
    rows = await _load(session, [ref])
    row = rows[(kind, item_id)]
    why_not = _why_not(kind, row, await _endpoints(session, [row]))
    if why_not:
        raise ValidationFailed(FieldError(ID_FIELDS[kind], why_not))
    replay = await _replay(session, [ref], rows, mode="one", acting=acting, reason=reason)
    detail: dict[str, Any] = {"replay_id": str(replay.id)}
    if kind == "webhook":
        detail.update(delivery_id=str(row.id), message_id=row.message_id)
    await record(session, actor=acting, action=ONE_ACTIONS[kind], target_type=TARGET_TYPES[kind],
                 target_id=item_id, tenant_id=replay.tenant_id, reason=reason, detail=detail)
    return replay


async def replay_selection(session: AsyncSession, refs: Iterable[ItemRef], *, acting: Actor,
                           reason: str | None = None) -> Replay:
    """Items named one by one; those that cannot be replayed (already processed, endpoint disabled) are
    skipped with the reason. Any id the tenant does not own is NotFound, and nothing is replayed."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        raise ValidationFailed(FieldError("items", "select at least one item"))
    if len(refs) > MAX_SELECTION:
        raise ValidationFailed(FieldError("items", f"expected at most {MAX_SELECTION} items"))
    reason = _clean_reason(reason)
    rows = await _load(session, refs)
    replay = await _replay(session, refs, rows, mode="selection", acting=acting, reason=reason)
    await _audit(session, replay, acting)
    return replay


def _window_queries(what: str, since: datetime, until: datetime) -> list[tuple[str, Any, Any]]:
    """(kind, statement of (id, time), its count) for each kind the window replays."""
    def ranged(model, column, *conditions):
        where = (column >= since, column < until, *conditions)
        return (select(model.id, column.label("at")).where(*where),
                select(func.count()).select_from(model).where(*where))

    if what == "unmatched":
        return [("event", *ranged(Event, Event.received_at, Event.status == EventStatus.UNMATCHED))]
    enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    return [
        ("event", *ranged(Event, Event.received_at, Event.status == EventStatus.FAILED)),
        ("message", *ranged(OutboundMessage, OutboundMessage.created_at,
                            OutboundMessage.status.in_(MESSAGE_REPLAYABLE))),
        ("webhook", *ranged(WebhookDelivery, WebhookDelivery.created_at,
                            WebhookDelivery.status.in_(WEBHOOK_REPLAYABLE),
                            WebhookDelivery.endpoint_id.in_(enabled))),
    ]


def check_window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    problems = []
    for field, value in (("since", since), ("until", until)):
        if value is None:
            problems.append(FieldError(field, "expected a date and time"))
        elif value.tzinfo is None:
            problems.append(FieldError(field, "expected a time with its UTC offset"))
    if not problems and since >= until:
        problems.append(FieldError("until", "expected a time after since"))
    if problems:
        raise ValidationFailed(problems)
    return since, until


async def replay_window(session: AsyncSession, *, since: datetime, until: datetime, what: str = "dead_letters",
                        acting: Actor, reason: str | None = None, limit: int = MAX_WINDOW) -> Replay:
    """Every replayable item of the tenant that arrived (events) or was created (deliveries) in
    [since, until), oldest first, at most ``limit``; ``remaining`` says how many more matched.
    Webhook deliveries of disabled endpoints are left out (enable the endpoint first)."""
    since, until = check_window(since, until)
    if what not in WINDOW_SETS:
        raise ValidationFailed(FieldError("what", f"expected one of {', '.join(WINDOW_SETS)}"))
    if not 1 <= limit <= MAX_WINDOW:
        raise ValidationFailed(FieldError("limit", f"expected 1-{MAX_WINDOW}"))
    reason = _clean_reason(reason)
    matched: list[tuple[datetime, str, uuid.UUID]] = []
    total = 0
    for kind, rows, count in _window_queries(what, since, until):
        total += (await session.execute(count)).scalar_one()
        found = await session.execute(rows.order_by("at").limit(limit))
        matched.extend((at, kind, ident) for ident, at in found.all())
    matched.sort(key=lambda entry: (entry[0], entry[2]))
    refs = [ItemRef(kind, ident) for _at, kind, ident in matched[:limit]]
    loaded = await _load(session, refs)
    replay = await _replay(session, refs, loaded, mode="window", acting=acting, reason=reason, since=since,
                           until=until, remaining=max(0, total - len(refs)))
    await _audit(session, replay, acting)
    return replay


async def _audit(session: AsyncSession, replay: Replay, acting: Actor) -> None:
    requeued = sum(1 for item in replay.items if item["action"] == "requeued")
    detail: dict[str, Any] = {"mode": replay.mode, "requeued": requeued, "skipped": len(replay.items) - requeued,
                              "remaining": replay.remaining}
    if replay.since is not None:
        detail.update(since=replay.since.isoformat(), until=replay.until.isoformat())
    await record(session, actor=acting, action="dead_letters.replayed", target_type="replay", target_id=replay.id,
                 tenant_id=replay.tenant_id, reason=replay.reason, detail=detail)


__all__ = ["ItemRef", "KINDS", "MAX_SELECTION", "MAX_WINDOW", "WINDOW_SETS", "check_window",
           "replay_one", "replay_selection", "replay_window"]
