"""/api/v1/events: the tenant's systems send canonical events, one or a batch of up to 1,000."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import metrics
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.events.intake import MAX_BATCH, ingest_alone, ingest_batch, validate
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.events.queries import events_query
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import BatchIn, BatchItem, BatchOut, EventAccepted, EventOut, FieldProblem, Page

SORTS = {"received_at": Event.received_at, "occurred_at": Event.occurred_at}
BATCH_MAX_BODY = 16 * 1024 * 1024


@endpoint(post, "/", scope="events:write", operation_id="createEvent", status_code=202,
          description="Store one event (deduplicated on source + external_id) for processing.")
async def create(data: dict[str, Any], principal: ApiPrincipal, request: Request) -> EventAccepted:
    # No session: the event and its outbox row go in one call that sets the key's tenant for itself.
    with metrics.intake("api") as counts:
        result = await ingest_alone(request.app.state.database, principal.tenant_id, data)
        counts[result.status] += 1
    return EventAccepted(event_id=result.event_id, status=result.status)


@endpoint(post, "/batch", scope="events:write", operation_id="createEventBatch", status_code=207,
          request_max_body_size=BATCH_MAX_BODY,
          description=f"Up to {MAX_BATCH} events: valid ones are stored together, each item gets its result.")
async def create_batch(data: BatchIn, session: AsyncSession, principal: ApiPrincipal) -> Response[BatchOut]:
    results: list[BatchItem | None] = [None] * len(data.events)
    valid, positions = [], []
    with metrics.intake("api_batch") as measured:
        for index, raw in enumerate(data.events):
            try:
                valid.append(validate(raw))
                positions.append(index)
            except ValidationFailed as error:
                results[index] = BatchItem(index=index, status="invalid", errors=[
                    FieldProblem(field=e.field, message=e.message) for e in error.errors])
        for index, outcome in zip(positions, await ingest_batch(session, principal.tenant_id, valid), strict=True):
            results[index] = BatchItem(index=index, status=outcome.status, event_id=outcome.event_id)
        items = [r for r in results if r is not None]
        counts = {s: sum(1 for r in items if r.status == s) for s in ("accepted", "duplicate", "invalid")}
        measured.update(accepted=counts["accepted"], duplicate=counts["duplicate"], refused=counts["invalid"])
    return Response(BatchOut(**counts, results=items), status_code=207)


@endpoint(get, "/", scope="events:read", operation_id="listEvents")
async def list_(
    session: AsyncSession,
    type: str | None = Parameter(default=None, max_length=64),
    status: EventStatus | None = None,
    customer_id: uuid.UUID | None = None,
    sort: str = Parameter(default="-received_at", description="received_at, occurred_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[EventOut]:
    query = events_query(type=type, status=status, customer_id=customer_id)
    page = await paginate(session, query, Event, sorts=SORTS, sort=sort, limit=limit, cursor=cursor)
    return Page[EventOut](data=[EventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/{event_id:uuid}", scope="events:read", operation_id="getEvent", errors=(404,))
async def get_one(event_id: uuid.UUID, session: AsyncSession) -> EventOut:
    return EventOut.model_validate(await get_owned(session, Event, event_id))


router = Router("/events", route_handlers=[create, create_batch, list_, get_one], tags=["events"])
