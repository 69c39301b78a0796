"""The one intake function every source uses: validate, deduplicate on (tenant, source, external id), and
write the event and its outbox row in one transaction. Nothing is acknowledged before it is stored.

Customer matching is not done here but in the process step: intake stays a couple of inserts, and an
event naming an unknown customer is still stored (then kept as unmatched for staff).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import dialect_insert, ensure_scope
from backoffice.platform.errors import FieldError, ValidationFailed
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
    """Parse one event; every problem is reported with its field path (``data.charge.amount_cents``)."""
    try:
        event = raw if isinstance(raw, EventIn) else EventIn.model_validate(raw)
        model, _ = CATALOGUE[event.type]
        data = model.model_validate(event.data).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise ValidationFailed([_field_error(item, prefix, raw) for item in error.errors()]) from None
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


async def ingest(session: AsyncSession, tenant_id: uuid.UUID, raw: dict[str, Any] | EventIn) -> IntakeResult:
    """Store one event (or recognise it as a duplicate). The caller's transaction commits both rows."""
    return (await ingest_batch(session, tenant_id, [validate(raw)]))[0]


async def ingest_batch(session: AsyncSession, tenant_id: uuid.UUID, events: list[EventIn]) -> list[IntakeResult]:
    """Store already-validated events in two set-based statements; one result per event, in order.

    A duplicate of an earlier event (or of another item in the same batch) returns the stored event's id.
    """
    ensure_scope(session, tenant_id)
    if not events:
        return []
    if len(events) > MAX_BATCH:
        raise ValidationFailed(FieldError("events", f"expected at most {MAX_BATCH} events per batch"))
    now = clock.now()
    rows, seen = [], set()
    for event in events:
        key = (event.source, event.external_id)
        if key not in seen:
            seen.add(key)
            rows.append(_row(tenant_id, event, now))
    insert = dialect_insert(session)
    # Parameter lists (executemany) rather than .values(rows): SQLAlchemy caches one compiled statement
    # and sends the rows as batched multi-row INSERTs ("insertmanyvalues"), RETURNING included.
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
    results, reported = [], set()
    for event in events:
        key = (event.source, event.external_id)
        if key in created and key not in reported:
            results.append(IntakeResult(created[key], "accepted"))
            reported.add(key)
        else:
            results.append(IntakeResult(created.get(key) or existing[key], "duplicate"))
    return results
