"""The one intake function every source uses: validate, deduplicate on (tenant, source, external id), and
write the event and its outbox row in one transaction. Nothing is acknowledged before it is stored.

On PostgreSQL one statement writes both (a CTE: the event ``ON CONFLICT DO NOTHING RETURNING``, its outbox
row from what was returned), and a batch goes in as ``unnest()`` arrays; the embedded SQLite mode takes a
simpler two-statement path. The transaction stays the caller's.

Customer matching is not done here but in the process step: intake stays a couple of inserts, and an
event naming an unknown customer is still stored (then kept as unmatched for staff).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id, new_ids
from backoffice.platform.db.session import Database, dialect_insert, ensure_scope
from backoffice.platform.errors import FieldError, InputRefused, ValidationFailed
from backoffice.platform.input_rules import value_problems
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.events.catalogue import CATALOGUE, EventIn
from backoffice.tenants.events.models import Event, EventStatus

PROCESS_JOB = "spine.process_event"
MAX_BATCH = 1000


@dataclass(frozen=True)
class IntakeResult:
    event_id: uuid.UUID
    status: Literal["accepted", "duplicate"]


def validate(raw: dict[str, Any] | EventIn, prefix: str = "") -> EventIn:
    """Parse one event; every problem is reported with its field path (``data.charge.amount_cents``).

    Whatever its source, an event obeys the input rule (no NUL or unpaired surrogate in any text, bounded
    nesting and numbers): PostgreSQL's ``json`` column would store a ``\u0000`` and the process step, which
    writes such text to other columns, could never complete.
    """
    whole = raw.model_dump(mode="json", exclude_none=True) if isinstance(raw, EventIn) else raw
    if problems := value_problems(whole, field=prefix.removesuffix("."), root=prefix.removesuffix(".") or "event"):
        raise InputRefused(problems)
    try:
        event = raw if isinstance(raw, EventIn) else EventIn.model_validate(raw)
        model, _ = CATALOGUE[event.type]
        data = model.model_validate(event.data).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise ValidationFailed([_field_error(item, prefix, raw) for item in error.errors()]) from None
    if event.occurred_at is not None and event.occurred_at.utcoffset() is None:
        # A time without an offset is ambiguous (the tenant's zone? UTC?): refuse it rather than guess.
        raise ValidationFailed(FieldError(prefix + "occurred_at",
                                          "expected a date-time with a UTC offset, such as 2026-11-02T14:00:00Z"))
    return event.model_copy(update={"data": data})


def _field_error(item: dict[str, Any], prefix: str, raw: Any) -> FieldError:
    loc = [str(part) for part in item["loc"]]
    # Errors inside the data model are reported under "data."
    if isinstance(raw, dict) and loc and loc[0] not in EventIn.model_fields:
        loc = ["data", *loc]
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "literal_error" and loc == ["type"]:
        message = "expected one of the catalogue's event types (see README, Event catalogue)"
    return FieldError(prefix + ".".join(loc), message)


def _row(tenant_id: uuid.UUID, event: EventIn, now) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id, "id": new_id(), "type": event.type, "source": event.source,
        "external_id": event.external_id, "occurred_at": event.occurred_at or now, "received_at": now,
        "subject": event.customer.model_dump(mode="json", exclude_none=True) if event.customer else {},
        "data": event.data, "status": EventStatus.PENDING.value,
    }


def _payload(event_id: uuid.UUID) -> str:
    # The text json.dumps (SQLAlchemy's JSON type) writes for {"event_id": "<uuid>"}: the worker side reads it.
    return f'{{"event_id": "{event_id}"}}'


# The event and its outbox row in one statement. The final SELECT reads the table as it was when the
# statement began, so it finds an earlier duplicate but never the row inserted here: exactly one row comes
# back, except when a concurrent transaction committed the same key meanwhile (then none: see below).
INSERT_ONE_SQL = """
WITH new_event AS (
    INSERT INTO events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data, status)
    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::timestamptz, $7::timestamptz, $8::json, $9::json, $10)
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id
), new_outbox AS (
    INSERT INTO outbox (tenant_id, id, job, payload, created_at, available_at, attempts)
    SELECT $1::uuid, $11::uuid, $12, $13::json, $7::timestamptz, $7::timestamptz, 0
    FROM new_event
)
SELECT id, true AS created FROM new_event
UNION ALL
SELECT id, false FROM events WHERE tenant_id = $1::uuid AND source = $4 AND external_id = $5
"""

# A batch as parallel arrays: one statement and one parameter set of a fixed shape, whatever the size.
# Only the new events come back; duplicates (rare) are looked up afterwards, so the common batch does not
# probe the unique index a second time.
INSERT_MANY_SQL = """
WITH input AS (
    SELECT * FROM unnest($5::uuid[], $6::uuid[], $7::varchar[], $8::varchar[], $9::varchar[], $10::timestamptz[],
                         $11::json[], $12::json[], $13::json[])
        AS input(id, outbox_id, type, source, external_id, occurred_at, subject, data, payload)
), new_events AS (
    INSERT INTO events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data, status)
    SELECT $1::uuid, id, type, source, external_id, occurred_at, $2::timestamptz, subject, data, $3
    FROM input
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id, source, external_id
), new_outbox AS (
    INSERT INTO outbox (tenant_id, id, job, payload, created_at, available_at, attempts)
    SELECT $1::uuid, input.outbox_id, $4, input.payload, $2::timestamptz, $2::timestamptz, 0
    FROM new_events JOIN input ON input.id = new_events.id
)
SELECT id, source, external_id FROM new_events
"""


async def ingest(session: AsyncSession, tenant_id: uuid.UUID, raw: dict[str, Any] | EventIn) -> IntakeResult:
    """Store one event (or recognise it as a duplicate). The caller's transaction commits both rows."""
    event = validate(raw)
    if session.bind.dialect.name != "postgresql":
        return (await _ingest_portable(session, tenant_id, [event]))[0]
    ensure_scope(session, tenant_id)
    connection = await _connection(session)
    row = _row(tenant_id, event, clock.now())
    # Straight to asyncpg, in the session's transaction (begun, tenant set): the statement never changes,
    # and SQLAlchemy's execution layer around it cost more CPU than the rest of the call.
    driver = (await connection.get_raw_connection()).driver_connection
    found = await driver.fetchrow(
        INSERT_ONE_SQL, tenant_id, row["id"], row["type"], row["source"], row["external_id"], row["occurred_at"],
        row["received_at"], json.dumps(row["subject"]), json.dumps(row["data"]), row["status"], new_id(),
        PROCESS_JOB, _payload(row["id"]))
    if found is None:  # a concurrent twin committed after this statement's snapshot: read it now
        existing = await _existing(connection, tenant_id, [(event.source, event.external_id)])
        return IntakeResult(existing[(event.source, event.external_id)], "duplicate")
    if found["created"]:
        return IntakeResult(row["id"], "accepted")
    return IntakeResult(uuid.UUID(bytes=found["id"].bytes), "duplicate")  # a plain UUID, not asyncpg's own


# The single event of a request that writes nothing else, in one round trip (migration 0026).
INGEST_CALL_SQL = "SELECT event_id, created FROM bo_ingest_event($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"


async def ingest_alone(database: Database, tenant_id: uuid.UUID, raw: dict[str, Any] | EventIn) -> IntakeResult:
    """Store one event in a transaction of its own (the API's single-event route): on PostgreSQL one call of
    ``bo_ingest_event``, with no session; elsewhere :func:`ingest` in a tenant unit of work."""
    event = validate(raw)
    if database.dialect != "postgresql":
        async with database.tenant(tenant_id) as session:
            return await ingest(session, tenant_id, event)
    row = _row(tenant_id, event, clock.now())
    found = await database.call(INGEST_CALL_SQL, (
        tenant_id, row["id"], row["type"], row["source"], row["external_id"], row["occurred_at"],
        row["received_at"], json.dumps(row["subject"]), json.dumps(row["data"]), new_id(), PROCESS_JOB,
        _payload(row["id"])))
    if found is None or found.event_id is None:  # the function always answers one row with the stored id
        raise RuntimeError(f"bo_ingest_event found no event for ({event.source}, {event.external_id})")
    if found.created:
        return IntakeResult(row["id"], "accepted")
    return IntakeResult(uuid.UUID(bytes=found.event_id.bytes), "duplicate")  # a plain UUID, not asyncpg's own


async def ingest_batch(session: AsyncSession, tenant_id: uuid.UUID, events: list[EventIn]) -> list[IntakeResult]:
    """Store already-validated events set-based; one result per event, in order.

    A duplicate of an earlier event (or of another item in the same batch) returns the stored event's id.
    """
    ensure_scope(session, tenant_id)
    if not events:
        return []
    if len(events) > MAX_BATCH:
        raise ValidationFailed(FieldError("events", f"expected at most {MAX_BATCH} events per batch"))
    if session.bind.dialect.name != "postgresql":
        return await _ingest_portable(session, tenant_id, events)
    now = clock.now()
    connection = await _connection(session)
    unique: dict[tuple[str, str], EventIn] = {}
    for event in events:
        unique.setdefault((event.source, event.external_id), event)
    ids = new_ids(2 * len(unique))
    event_ids, outbox_ids = ids[:len(unique)], ids[len(unique):]
    batch = list(unique.values())
    driver = (await connection.get_raw_connection()).driver_connection  # as in ingest()
    result = await driver.fetch(
        INSERT_MANY_SQL, tenant_id, now, EventStatus.PENDING.value, PROCESS_JOB, event_ids, outbox_ids,
        [e.type for e in batch], [e.source for e in batch], [e.external_id for e in batch],
        [e.occurred_at or now for e in batch],
        [json.dumps(e.customer.model_dump(mode="json", exclude_none=True)) if e.customer else "{}" for e in batch],
        [json.dumps(e.data) for e in batch], [_payload(i) for i in event_ids])
    by_text = {str(i): i for i in event_ids}  # hand back plain UUIDs, not asyncpg's own type
    created = {(row["source"], row["external_id"]): by_text[str(row["id"])] for row in result}
    seen = unique.keys()
    missing = [key for key in seen if key not in created]
    existing = await _existing(connection, tenant_id, missing) if missing else {}
    return _results(events, created, existing)


async def _connection(session: AsyncSession):
    """The session's connection, in its transaction (tenant setting included), after any pending ORM writes."""
    if session.new or session.dirty or session.deleted:
        await session.flush()
    return await session.connection()


async def _existing(connection, tenant_id: uuid.UUID, keys: list[tuple[str, str]]) -> dict[tuple[str, str], uuid.UUID]:
    query = select(Event.id, Event.source, Event.external_id).where(
        Event.tenant_id == tenant_id, tuple_(Event.source, Event.external_id).in_(keys))
    return {(r.source, r.external_id): r.id for r in (await connection.execute(query)).all()}


def _results(events: list[EventIn], created: dict, existing: dict) -> list[IntakeResult]:
    results, reported = [], set()
    for event in events:
        key = (event.source, event.external_id)
        if key in created and key not in reported:
            results.append(IntakeResult(created[key], "accepted"))
            reported.add(key)
        else:
            results.append(IntakeResult(created.get(key) or existing[key], "duplicate"))
    return results


async def _ingest_portable(session: AsyncSession, tenant_id: uuid.UUID, events: list[EventIn]) -> list[IntakeResult]:
    """The embedded (SQLite) path: two set-based statements through SQLAlchemy's batched executemany."""
    ensure_scope(session, tenant_id)
    now = clock.now()
    rows, seen = [], set()
    for event in events:
        key = (event.source, event.external_id)
        if key not in seen:
            seen.add(key)
            rows.append(_row(tenant_id, event, now))
    insert = dialect_insert(session)
    # Rows are matched back by (source, external id), so no RETURNING order is needed (asking for one
    # would fall back to a statement per row: the key has no sentinel column).
    event_table, outbox_table = Event.__table__, OutboxEntry.__table__
    statement = (
        insert(event_table)
        .on_conflict_do_nothing(index_elements=["tenant_id", "source", "external_id"])
        .returning(event_table.c.id, event_table.c.source, event_table.c.external_id)
    )
    result = await session.execute(statement, rows)
    created = {(r.source, r.external_id): r.id for r in result.all() if r.id is not None}
    if created:
        await session.execute(insert(outbox_table), [
            {"tenant_id": tenant_id, "id": new_id(), "job": PROCESS_JOB, "payload": {"event_id": str(event_id)},
             "created_at": now, "available_at": now, "attempts": 0}
            for event_id in created.values()
        ])
    missing = [key for key in seen if key not in created]
    existing: dict[tuple[str, str], uuid.UUID] = {}
    if missing:
        query = select(Event.id, Event.source, Event.external_id).where(
            Event.tenant_id == tenant_id, tuple_(Event.source, Event.external_id).in_(missing))
        existing = {(r.source, r.external_id): r.id for r in (await session.execute(query)).all()}
    return _results(events, created, existing)


async def fail_given_up(session: AsyncSession, tenant_id: uuid.UUID, payload: dict[str, Any], reason: str) -> None:
    """The outbox gave up on an event's process step (``platform/outbox/exhausted.py``): the event fails with
    the reason, so staff see it among the dead letters and can replay it."""
    event_id = payload.get("event_id")
    if not event_id:
        return
    await session.execute(
        update(Event)
        .where(Event.tenant_id == tenant_id, Event.id == uuid.UUID(str(event_id)), Event.status == EventStatus.PENDING)
        .values(status=EventStatus.FAILED, error=reason, processed_at=clock.now())
    )
