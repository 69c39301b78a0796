"""/api/v1/webhooks: the tenant's outbound webhook endpoints (signed per Standard Webhooks), their
secrets, test sends, delivery log and replays. The logic is tenants/webhooks/service.py's."""

from __future__ import annotations

import uuid
from typing import Literal

from litestar import Router, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.webhooks import service
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.queries import endpoint_deliveries_query
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import OneTimeSecret, Page, replayed_secret


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https:// address that receives the signed POSTs.")
    event_types: list[str] | None = Field(default=None, max_length=50, description="Empty or absent: every type.")
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(EndpointIn):
    url: str | None = Field(default=None, max_length=2000)


class SecretPeriod(BaseModel):
    created_at: str
    expires_at: str | None


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: str | None
    secrets: list[SecretPeriod] = Field(description="When each live secret was made and when it stops signing.")
    consecutive_failures: int
    failing_since: str | None
    created_at: str


class EndpointCreated(EndpointOut):
    secret: OneTimeSecret = Field(description=replayed_secret(
        "The signing secret (whsec_...).", "If it was lost, rotate it (POST .../rotate-secret)."))


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_hours: float = Field(default=24, ge=0, le=168)


class RotatedSecret(BaseModel):
    secret: OneTimeSecret = Field(description=replayed_secret(
        "The new signing secret (whsec_...); the old one signs until the overlap ends.",
        "If it was lost, rotate again."))


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    webhook_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed", "dead"]
    attempts: int
    replays: int
    last_status_code: int | None
    response_snippet: str | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None


def _out(row) -> EndpointOut:
    return EndpointOut.model_validate(service.describe_endpoint(row))


@endpoint(get, "/", scope="webhooks:read", operation_id="listWebhookEndpoints")
async def list_(
    session: AsyncSession,
    sort: str = Parameter(default="created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[EndpointOut]:
    page = await paginate(session, service.endpoints_query(), WebhookEndpoint,
                          sorts={"created_at": WebhookEndpoint.created_at}, sort=sort, limit=limit, cursor=cursor)
    return Page[EndpointOut](data=[_out(e) for e in page.items], next_cursor=page.next_cursor)


@endpoint(post, "/", scope="webhooks:write", operation_id="createWebhookEndpoint", status_code=201)
async def create(data: EndpointIn, session: AsyncSession, principal: ApiPrincipal, state: State) -> EndpointCreated:
    row, secret = await service.create_endpoint(session, url=data.url, event_types=data.event_types,
                                                description=data.description, acting=principal.actor(),
                                                settings=state.settings)
    return EndpointCreated(**_out(row).model_dump(), secret=secret)


@endpoint(get, "/{endpoint_id:uuid}", scope="webhooks:read", operation_id="getWebhookEndpoint", errors=(404,))
async def get_one(endpoint_id: uuid.UUID, session: AsyncSession) -> EndpointOut:
    return _out(await service.get_endpoint(session, endpoint_id))


@endpoint(patch, "/{endpoint_id:uuid}", scope="webhooks:write", operation_id="updateWebhookEndpoint", errors=(404,))
async def update(endpoint_id: uuid.UUID, data: EndpointPatch, session: AsyncSession, principal: ApiPrincipal,
                 state: State) -> EndpointOut:
    row = await service.update_endpoint(session, endpoint_id, url=data.url, event_types=data.event_types,
                                        description=data.description, acting=principal.actor(),
                                        settings=state.settings)
    return _out(row)


@endpoint(post, "/{endpoint_id:uuid}/rotate-secret", scope="webhooks:write", operation_id="rotateWebhookSecret",
          status_code=201, errors=(404,))
async def rotate(endpoint_id: uuid.UUID, data: RotateIn, session: AsyncSession, principal: ApiPrincipal,
                 state: State) -> RotatedSecret:
    secret = await service.rotate_secret(session, endpoint_id, overlap_hours=data.overlap_hours,
                                         acting=principal.actor(), settings=state.settings)
    return RotatedSecret(secret=secret)


@endpoint(post, "/{endpoint_id:uuid}/test", scope="webhooks:write", operation_id="sendWebhookTest",
          status_code=202, errors=(404,))
async def send_test(endpoint_id: uuid.UUID, session: AsyncSession, principal: ApiPrincipal) -> DeliveryOut:
    delivery = await service.send_test(session, endpoint_id, acting=principal.actor())
    return DeliveryOut.model_validate(service.describe_delivery(delivery))


@endpoint(get, "/{endpoint_id:uuid}/deliveries", scope="webhooks:read", operation_id="listWebhookDeliveries",
          errors=(404,))
async def deliveries(
    endpoint_id: uuid.UUID,
    session: AsyncSession,
    status: WebhookDeliveryStatus | None = None,
    sort: str = Parameter(default="-created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[DeliveryOut]:
    await service.get_endpoint(session, endpoint_id)
    page = await paginate(session, endpoint_deliveries_query(endpoint_id, status=status), WebhookDelivery,
                          sorts={"created_at": WebhookDelivery.created_at}, sort=sort, limit=limit, cursor=cursor)
    return Page[DeliveryOut](data=[DeliveryOut.model_validate(service.describe_delivery(d)) for d in page.items],
                             next_cursor=page.next_cursor)


@endpoint(post, "/deliveries/{delivery_id:uuid}/replay", scope="webhooks:write", operation_id="replayWebhookDelivery",
          status_code=202, errors=(404,))
async def replay(delivery_id: uuid.UUID, session: AsyncSession, principal: ApiPrincipal) -> DeliveryOut:
    delivery = await service.replay_delivery(session, delivery_id, acting=principal.actor())
    return DeliveryOut.model_validate(service.describe_delivery(delivery))


router = Router("/webhooks", route_handlers=[list_, create, get_one, update, rotate, send_test, deliveries, replay],
                tags=["webhooks"])

