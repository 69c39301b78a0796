"""/api/v1/staff dead letters and unmatched events: list them, replay one, a selection or a time window, and
read what a replay did. Each replay is the service's (``tenants/deadletters/service.py``), the same call the
console and the CLI make, audited with the staff member as actor; a tenant the staff member does not
serve, or an id of another tenant's, answers 404 like a missing one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from litestar import get, post
from litestar.datastructures import State
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field

from backoffice.platform.db.session import get_owned
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.deadletters import queries, service
from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant
from backoffice.web.api.pagination import paginate
from backoffice.web.api.schemas import EventOut, Page
from backoffice.web.api.staff.auth import actor, staff_problems
from backoffice.web.api.staff.schemas import DeadLettersOut, DeadMessageOut

NO_NUL = r"^[^\x00]*$"
ITEM = r"^(event|message|webhook):[0-9a-fA-F-]{32,36}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonIn(Strict):
    reason: str | None = Field(default=None, max_length=1000, pattern=NO_NUL, description="Why; kept in the audit log.")


class SelectionIn(ReasonIn):
    items: list[str] = Field(min_length=1, max_length=service.MAX_SELECTION,
                             description="`kind:id`, kind one of event, message, webhook.",
                             json_schema_extra={"items": {"pattern": ITEM}})


class WindowIn(ReasonIn):
    since: datetime = Field(description="Start of the window (inclusive), with its UTC offset.")
    until: datetime = Field(description="End of the window (exclusive), with its UTC offset.")
    what: Literal["dead_letters", "unmatched"] = Field(
        default="dead_letters", description="dead_letters: failed events, dead or failing messages and webhook "
                                            "deliveries; unmatched: unmatched events.")
    limit: int = Field(default=service.MAX_WINDOW, ge=1, le=service.MAX_WINDOW,
                       description="At most this many items, oldest first; `remaining` says how many more matched.")


class ReplayItemOut(BaseModel):
    kind: Literal["event", "message", "webhook"]
    id: uuid.UUID
    action: Literal["requeued", "skipped"] = Field(description="What the replay did.")
    state: Literal["waiting", "done", "failed_again", "skipped", "gone"] = Field(
        description="What became of it: waiting for its job, done (processed or delivered), failed again.")
    status: str = Field(description="The item's status now.")
    error: str | None = Field(description="Why it was skipped, or the error of its last attempt.")
    next_attempt_at: datetime | None
    attempts: int | None


class ReplayOut(BaseModel):
    id: uuid.UUID
    mode: Literal["one", "selection", "window"]
    actor: str
    reason: str | None
    created_at: datetime
    since: datetime | None
    until: datetime | None
    remaining: int = Field(description="Window replays: matching items left for another replay.")
    requeued: int
    totals: dict[str, int] = Field(description="Items by state.")
    settled: bool = Field(description="No item waits for its job any more.")
    items: list[ReplayItemOut] = Field(description="Up to `items_limit` items, in the replay's order.")


def replay_out(outcome: queries.ReplayOutcome) -> ReplayOut:
    replay = outcome.replay
    return ReplayOut(
        id=replay.id, mode=replay.mode, actor=replay.actor_label, reason=replay.reason, created_at=replay.created_at,
        since=replay.since, until=replay.until, remaining=replay.remaining, requeued=outcome.requeued,
        totals=dict(outcome.totals), settled=outcome.settled,
        items=[ReplayItemOut(kind=i.kind, id=i.id, action=i.action, state=i.state, status=i.status, error=i.error,
                             next_attempt_at=i.next_attempt_at, attempts=i.attempts) for i in outcome.items])


async def _outcome(state: State, tenant_id: uuid.UUID, replay_id: uuid.UUID, limit: int = 200) -> ReplayOut:
    async with state.database.provider(tenant_id) as session:
        return replay_out(await queries.replay_outcome(session, replay_id, limit=limit))


@get("/tenants/{tenant_id:uuid}/unmatched-events", operation_id="staffListUnmatched", responses=staff_problems())
async def unmatched(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State,
                    sort: str = Parameter(default="-received_at", description="received_at; - for descending."),
                    limit: int = Parameter(default=100, ge=1, le=200),
                    cursor: str | None = Parameter(default=None, max_length=500)) -> Page[EventOut]:
    """Events no customer matched yet, newest first."""
    async with state.database.provider(tenant_id) as session:
        page = await paginate(session, queries.unmatched_events_query(), Event,
                              sorts={"received_at": Event.received_at}, sort=sort, limit=limit, cursor=cursor)
        return Page[EventOut](data=[EventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor)


@get("/tenants/{tenant_id:uuid}/dead-letters", operation_id="staffListDeadLetters", responses=staff_problems())
async def dead_letters(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State,
                       limit: int = Parameter(default=100, ge=1, le=200)) -> DeadLettersOut:
    """Failed events and dead (or failing) outbound messages, newest first."""
    async with state.database.provider(tenant_id) as session:
        events = (await session.execute(queries.failed_events_query().order_by(Event.received_at.desc())
                                        .limit(limit))).scalars()
        messages = (await session.execute(queries.dead_messages_query().order_by(OutboundMessage.created_at.desc())
                                          .limit(limit))).scalars()
        return DeadLettersOut(events=[EventOut.model_validate(e) for e in events],
                              messages=[DeadMessageOut.model_validate(m) for m in messages])


@post("/tenants/{tenant_id:uuid}/events/{event_id:uuid}/retry", operation_id="staffRetryEvent", status_code=202,
      responses=staff_problems())
async def retry(tenant_id: uuid.UUID, tenant: Tenant, event_id: uuid.UUID, staff: Staff, state: State) -> EventOut:
    """Process a failed or unmatched event again (422 naming ``event_id`` for any other)."""
    async with state.database.provider(tenant_id) as session:
        await service.replay_one(session, "event", event_id, acting=actor(staff))
        return EventOut.model_validate(await get_owned(session, Event, event_id))


@post("/tenants/{tenant_id:uuid}/messages/{message_id:uuid}/replay", operation_id="staffReplayMessage",
      status_code=202, responses=staff_problems())
async def replay_message(tenant_id: uuid.UUID, tenant: Tenant, message_id: uuid.UUID, staff: Staff,
                         state: State) -> DeadMessageOut:
    """Send a dead or failed outbound message again, attempts from zero (422 naming ``message_id`` otherwise)."""
    async with state.database.provider(tenant_id) as session:
        await service.replay_one(session, "message", message_id, acting=actor(staff))
        return DeadMessageOut.model_validate(await get_owned(session, OutboundMessage, message_id))


@post("/tenants/{tenant_id:uuid}/webhook-deliveries/{delivery_id:uuid}/replay",
      operation_id="staffReplayWebhookDelivery", status_code=202, responses=staff_problems())
async def replay_webhook(tenant_id: uuid.UUID, tenant: Tenant, delivery_id: uuid.UUID, staff: Staff,
                         state: State) -> ReplayOut:
    """Send a dead or failed webhook delivery again (422 naming ``delivery_id`` when it is neither, or its
    endpoint is disabled)."""
    async with state.database.provider(tenant_id) as session:
        done = await service.replay_one(session, "webhook", delivery_id, acting=actor(staff))
    return await _outcome(state, tenant_id, done.id)


@post("/tenants/{tenant_id:uuid}/replays", operation_id="staffReplaySelection", status_code=201,
      responses=staff_problems())
async def replay_selection(tenant_id: uuid.UUID, tenant: Tenant, data: SelectionIn, staff: Staff,
                           state: State) -> ReplayOut:
    """Replay the named items; one that cannot be replayed is skipped with the reason. An id the tenant does
    not own is a 404 and nothing is replayed."""
    refs = [service.ItemRef.parse(item) for item in data.items]
    async with state.database.provider(tenant_id) as session:
        done = await service.replay_selection(session, refs, acting=actor(staff), reason=data.reason)
    return await _outcome(state, tenant_id, done.id)


@post("/tenants/{tenant_id:uuid}/replays/window", operation_id="staffReplayWindow", status_code=201,
      responses=staff_problems())
async def replay_window(tenant_id: uuid.UUID, tenant: Tenant, data: WindowIn, staff: Staff,
                        state: State) -> ReplayOut:
    """Replay every replayable item of the tenant in [since, until), oldest first (webhook deliveries of a
    disabled endpoint are left out)."""
    async with state.database.provider(tenant_id) as session:
        done = await service.replay_window(session, since=data.since, until=data.until, what=data.what,
                                           acting=actor(staff), reason=data.reason, limit=data.limit)
    return await _outcome(state, tenant_id, done.id)


@get("/tenants/{tenant_id:uuid}/replays/{replay_id:uuid}", operation_id="staffGetReplay", responses=staff_problems())
async def get_replay(tenant_id: uuid.UUID, tenant: Tenant, replay_id: uuid.UUID, staff: Staff, state: State,
                     items_limit: int = Parameter(default=200, ge=1, le=1000)) -> ReplayOut:
    """What the replay did to each item and what became of it since."""
    return await _outcome(state, tenant_id, replay_id, items_limit)


deadletter_routes = [unmatched, dead_letters, retry, replay_message, replay_webhook, replay_selection, replay_window,
                     get_replay]
