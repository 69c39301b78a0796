"""Inbound provider webhooks: ``POST /hooks/{tenant_slug}/{instance_id}``.

Order of work, so that nothing is acknowledged before it is stored and nothing unverified is stored:
1. the tenant (unknown 404, suspended refused) and its instance (another tenant's id is 404, like a
   missing one; so is a disabled instance or a kind that receives no webhooks);
2. the body, at most ``MAX_BODY`` bytes (413 beyond), must be JSON obeying the input rule
   (``platform/input_rules.py``: no NUL, bounded nesting and numbers), else 400 naming the field, before
   any provider code parses it;
3. the kind verifies and normalises, outside any database transaction (it may re-fetch the object from
   the provider's API, and a transaction must not wait on the network): 401 when not authentic, 400
   when malformed, 503 when the provider's API cannot confirm it now (the provider retries);
4. every canonical event is validated, then stored with its outbox row in ONE transaction together
   with the instance's health; only after the commit the answer is 200. A duplicate (the provider
   retrying) is acknowledged without being processed again; an event type we do not use is acknowledged
   and ignored, so the provider does not retry it forever.

PostgreSQL or Redis unavailable at any step answers 503 with Retry-After (``web/errors.py``): nothing was
stored, and the provider retries on 5xx. The circuit breaker's Redis bookkeeping around a re-fetch fails
open (``connectors/http.py``): it never turns a provider's answer into an error.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State

from backoffice.connectors.http import ProviderError
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.kinds import InboundRequest, MalformedPayload, VerificationFailed, get_kind
from backoffice.connectors.service import open_context, record_failure, record_success
from backoffice.platform import metrics
from backoffice.platform.db.session import Database, NotFound, get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.input_rules import parse_json
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.tenants.events.intake import ingest_batch, validate
from backoffice.web.errors import problem
from backoffice.web.tenancy import provide_tenant

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _note_failure(database: Database, tenant_id: uuid.UUID, instance_id: uuid.UUID, reason: str) -> None:
    async with database.tenant(tenant_id) as session:
        record_failure(await get_owned(session, ConnectorInstance, instance_id), reason)


@post("/hooks/{tenant_slug:str}/{instance_id:uuid}", status_code=200, include_in_schema=False)
async def receive_hook(tenant_slug: str, instance_id: uuid.UUID, request: Request, state: State) -> Response:
    database: Database = state.database
    tenant = await provide_tenant(tenant_slug, state)
    async with database.tenant(tenant.id) as session:
        instance = await get_owned(session, ConnectorInstance, instance_id)
        kind = get_kind(instance.kind)
        if not instance.enabled or not kind.inbound:
            raise NotFound(ConnectorInstance, instance_id)
        try:
            ctx = open_context(instance, state.settings, **getattr(state, "connector_http_options", {}))
        except SecretUnreadable:
            ctx = None
    if ctx is None:
        await _note_failure(database, tenant.id, instance_id, "credentials unreadable: re-enter them")
        return problem(503, "Connector unavailable", "The connector's credentials must be re-entered.")
    try:
        body = await _read_body(request)
    except BodyTooLarge:
        return problem(413, "Payload too large", f"Webhook bodies are limited to {MAX_BODY} bytes.")
    inbound = InboundRequest(headers={k.lower(): v for k, v in request.headers.items()}, body=body,
                             query=dict(request.query_params))
    try:
        parse_json(body)  # every inbound kind reads JSON: the rule holds before provider code parses it
        raw_events = await kind.receive(ctx, inbound)
        events = [validate(raw, prefix=f"events[{n}].") for n, raw in enumerate(raw_events)]
    except VerificationFailed as error:
        log.warning("hook %s/%s refused: %s", tenant.slug, instance_id, error)
        await _note_failure(database, tenant.id, instance_id, f"webhook refused: {error}")
        return problem(401, "Unauthorized", str(error))
    except ValidationFailed as error:
        metrics.INTAKE_EVENTS.labels("provider_webhook", "refused").inc()
        log.warning("hook %s/%s malformed: %s", tenant.slug, instance_id, error)
        await _note_failure(database, tenant.id, instance_id, f"webhook malformed: {error}")
        return problem(400, "Malformed webhook", str(error),
                       errors=[{"field": e.field, "message": e.message} for e in error.errors])
    except MalformedPayload as error:
        metrics.INTAKE_EVENTS.labels("provider_webhook", "refused").inc()
        log.warning("hook %s/%s malformed: %s", tenant.slug, instance_id, error)
        await _note_failure(database, tenant.id, instance_id, f"webhook malformed: {error}")
        return problem(400, "Malformed webhook", str(error))
    except ProviderError as error:
        log.warning("hook %s/%s cannot be confirmed now: %s", tenant.slug, instance_id, error)
        await _note_failure(database, tenant.id, instance_id, f"webhook not confirmed: {error}")
        return _unavailable()
    with metrics.intake("provider_webhook") as counts:
        async with database.tenant(tenant.id) as session:
            results = await ingest_batch(session, tenant.id, events)
            record_success(await get_owned(session, ConnectorInstance, instance_id))
        for result in results:
            counts[result.status] += 1
    summary: dict[str, Any] = {
        "received": len(results),
        "accepted": sum(r.status == "accepted" for r in results),
        "duplicates": sum(r.status == "duplicate" for r in results),
        "events": [str(r.event_id) for r in results],
    }
    if not results:
        summary["ignored"] = True
    return Response(summary, status_code=200)


def _unavailable() -> Response:
    response = problem(503, "Provider unavailable", "The provider's API could not confirm this event; retry later.")
    response.headers["Retry-After"] = "60"
    return response
