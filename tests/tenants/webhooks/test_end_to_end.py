"""Through the running spine: an event ingested for tenant A reaches A's endpoint signed, and the late
payment's block reaches A's platform as a signed command whose acknowledgement is kept."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.connectors.platform_http import KIND, PlatformPort
from backoffice.platform.security.standard_webhooks import new_secret
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.webhooks import service
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from backoffice.tenants.webhooks.port import WebhookPort
from tests.connectors.conftest import make_instance
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the spine fixture)
from tests.tenants.webhooks.conftest import ACTOR


async def test_events_reach_the_tenants_endpoint_and_the_block_reaches_its_platform(spine, receiver):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    settings = spine.database.settings.model_copy(update={"allow_private_targets": True})
    ports = {Channel.WEBHOOK: WebhookPort(settings=settings, total_timeout=5.0),
             Channel.PLATFORM: PlatformPort(settings=settings, http_options={"timeout": 5.0, "retries": 0})}
    previous = {channel: set_port(channel, port) for channel, port in ports.items()}
    try:
        async with spine.database.tenant(a.id) as session:
            mine, secret = await service.create_endpoint(
                session, url=receiver.url("/alfa"), event_types=["payment.overdue", "dunning.deadline_reached"],
                acting=ACTOR, settings=settings)
        async with spine.database.tenant(b.id) as session:
            _, theirs = await service.create_endpoint(session, url=receiver.url("/beta"), acting=ACTOR,
                                                      settings=settings)
        receiver.secrets.update({"/alfa": [secret], "/beta": [theirs]})
        platform_secret = new_secret()
        receiver.secrets["/platform"] = [platform_secret]
        await make_instance(spine.database, a.id, KIND, {"url": receiver.url("/platform"), "secret": platform_secret})
        customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Oficina Bom Motor",
                                         tax_id="390.533.447-05", lifecycle=Lifecycle.ACTIVE)

        await spine.ingest(a.id, {
            "type": "payment.overdue", "source": "asaas", "external_id": "evt_od",
            "customer": {"id": str(customer_id)},
            "data": {"charge": {"external_id": "pay_2", "amount_cents": 19990, "due_date": "2026-11-01"}}})
        await spine.settle()
        [overdue] = receiver.at("/alfa")
        assert overdue.verified, overdue.problem
        assert overdue.json["type"] == "payment.overdue" and overdue.json["customer"]["id"] == str(customer_id)
        assert receiver.at("/platform") == []

        await spine.advance(days=6)  # reminders, then the grace deadline passes unpaid
        assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
        [block] = receiver.at("/platform")
        assert block.verified, block.problem
        assert block.json["command"] == "block" and "not paid" in block.json["reason"]
        assert [r.json["type"] for r in receiver.at("/alfa")] == ["payment.overdue", "dunning.deadline_reached"]
        assert all(r.verified for r in receiver.at("/alfa"))
        assert receiver.at("/beta") == []  # B hears nothing of A's events

        async with spine.database.tenant(a.id) as session:
            [command] = (await session.execute(select(OutboundMessage).where(
                OutboundMessage.channel == Channel.PLATFORM))).scalars().all()
            deliveries = (await session.execute(select(WebhookDelivery))).scalars().all()
        assert command.status == DeliveryStatus.SENT and command.response["status"] == 200
        assert block.webhook_id == command.effect_key
        assert {d.status for d in deliveries} == {WebhookDeliveryStatus.SUCCEEDED}
        assert {d.endpoint_id for d in deliveries} == {mine.id}
    finally:
        for channel, port in previous.items():
            set_port(channel, port)


async def test_the_timeline_names_a_webhook_only_when_an_endpoint_heard_the_event(spine, receiver):  # noqa: F811
    from backoffice.tenants.timeline.models import TimelineEntry

    a, b = spine.tenants.a, spine.tenants.b
    settings = spine.database.settings.model_copy(update={"allow_private_targets": True})
    previous = set_port(Channel.WEBHOOK, WebhookPort(settings=settings, total_timeout=5.0))
    try:
        async with spine.database.tenant(b.id) as session:  # only Beta has an endpoint
            _, secret = await service.create_endpoint(session, url=receiver.url("/beta"), acting=ACTOR,
                                                      settings=settings)
        receiver.secrets["/beta"] = [secret]
        customers = {}
        for tenant, tax_id in ((a, "111.444.777-35"), (b, "123.456.789-09")):
            customers[tenant.id] = await new_customer(spine.database, tenant.id, tenant.admin_id, name="Cliente",
                                                      tax_id=tax_id, lifecycle=Lifecycle.ACTIVE)
            await spine.ingest(tenant.id, {
                "type": "payment.overdue", "source": "asaas", "external_id": f"evt_{tenant.slug}",
                "customer": {"id": str(customers[tenant.id])},
                "data": {"charge": {"external_id": "pay_9", "amount_cents": 500, "due_date": "2026-11-01"}}})
        await spine.settle()
        titles = {}
        for tenant in (a, b):
            async with spine.database.tenant(tenant.id) as session:
                titles[tenant.id] = [e.title for e in (await session.execute(select(TimelineEntry).where(
                    TimelineEntry.customer_id == customers[tenant.id]))).scalars()]
        assert titles[a.id] and not [t for t in titles[a.id] if "webhook" in t.lower()]
        assert [t for t in titles[b.id] if "webhook" in t.lower()] == ["Webhook payment.overdue to the company's systems"]
        async with spine.database.tenant(b.id) as session:  # kept as a message id, for each reader's language
            [said] = (await session.execute(select(TimelineEntry.message).where(
                TimelineEntry.customer_id == customers[b.id], TimelineEntry.title.like("Webhook %")))).scalars()
        assert said["title"] == {"id": "Webhook {type} to the company's systems", "params": {"type": "payment.overdue"}}
        assert len(receiver.at("/beta")) == 1
    finally:
        set_port(Channel.WEBHOOK, previous)
