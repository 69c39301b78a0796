"""Dead letters of two tenants, written as the spine leaves them: a failed and an unmatched event, a dead
e-mail, a dead webhook delivery (its endpoint enabled) and a processed event, at known times."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Letters:
    tenant_id: uuid.UUID
    failed: list[uuid.UUID] = field(default_factory=list)  # failed events, one an hour from T0
    unmatched: uuid.UUID | None = None
    processed: uuid.UUID | None = None
    message: uuid.UUID | None = None  # a dead e-mail at T0 + 30 min
    webhook: uuid.UUID | None = None  # a dead webhook delivery at T0 + 90 min
    endpoint: uuid.UUID | None = None


async def write_letters(database, tenant_id: uuid.UUID, *, url: str = "https://hooks.example/in",
                        failed: int = 3) -> Letters:
    letters = Letters(tenant_id)
    async with database.provider(tenant_id) as session:
        for n in range(failed):
            event = Event(type="payment.overdue", source="asaas", external_id=f"f{n}", occurred_at=T0,
                          received_at=T0 + timedelta(hours=n), status=EventStatus.FAILED, error=f"boom {n}",
                          subject={"tax_id": "52998224725"}, data={})
            session.add(event)
            await session.flush()
            letters.failed.append(event.id)
        unmatched = Event(type="payment.received", source="asaas", external_id="u1", occurred_at=T0,
                          received_at=T0 + timedelta(minutes=10), status=EventStatus.UNMATCHED,
                          error="no customer has tax id 00000000000", subject={"tax_id": "00000000000"}, data={})
        processed = Event(type="payment.received", source="asaas", external_id="p1", occurred_at=T0,
                          received_at=T0 + timedelta(minutes=20), status=EventStatus.PROCESSED, processed_at=T0,
                          subject={}, data={})
        message = OutboundMessage(effect_key=f"{uuid.uuid4()}:email", channel=Channel.EMAIL, target="c@example.com",
                                  payload={"to": "c@example.com"}, status=DeliveryStatus.DEAD, attempts=9,
                                  last_error="SMTP 550 mailbox unavailable", created_at=T0 + timedelta(minutes=30))
        endpoint = WebhookEndpoint(url=url, description="ERP", event_types=[], enabled=True, secrets=[])
        session.add_all([unmatched, processed, message, endpoint])
        await session.flush()
        delivery = WebhookDelivery(endpoint_id=endpoint.id, message_id=f"msg_{uuid.uuid4().hex}",
                                   event_type="payment.overdue", payload={"type": "payment.overdue"},
                                   status=WebhookDeliveryStatus.DEAD, attempts=8, last_error="HTTP 503",
                                   created_at=T0 + timedelta(minutes=90))
        session.add(delivery)
        await session.flush()
        letters.unmatched, letters.processed, letters.message = unmatched.id, processed.id, message.id
        letters.webhook, letters.endpoint = delivery.id, endpoint.id
    return letters


@pytest.fixture
async def letters(database, tenants) -> tuple[Letters, Letters]:
    return (await write_letters(database, tenants.a.id), await write_letters(database, tenants.b.id))
