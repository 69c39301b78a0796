"""Each standard process driven only by provider webhooks posted to POST /hooks/{tenant}/{instance}, through
the running spine (relay, broker, worker threads), with the e-mail leaving through the tenant's SMTP
settings to a local aiosmtpd server."""

from __future__ import annotations

import json

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.connectors import clicksign, stripe
from backoffice.connectors.smtp import SmtpPort
from backoffice.platform import clock
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.tasks.models import Task
from backoffice.web.app import create_app
from tests.connectors.conftest import Answer, connector_settings, make_instance
from tests.web.test_hooks import API_KEY, TOKEN, asaas_hook, asaas_payment
from tests.connectors.test_ports import smtp_config, smtp_server  # noqa: F401  fixture
from tests.tenants.conftest import new_customer, spine  # noqa: F401  fixture

import pytest


@pytest.fixture
async def web_for(spine):  # noqa: F811
    app = create_app(connector_settings(spine.database))
    async with AsyncTestClient(app=app) as client:
        yield client


async def hook(web, slug, instance_id, body: bytes, headers: dict):
    response = await web.post(f"/hooks/{slug}/{instance_id}", content=body,
                              headers={"content-type": "application/json", **headers})
    assert response.status_code == 200, response.text
    return response.json()


async def rows(spine, tenant_id, model):  # noqa: F811
    async with spine.database.tenant(tenant_id) as session:
        # ids are time-ordered (UUID v7 from the real clock): creation order, whatever the heap does
        return list((await session.execute(select(model).order_by(model.id))).scalars())


async def test_asaas_payment_received_starts_a_new_customer(spine, provider, web_for):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="11.222.333/0001-81", external={"asaas": "cus_000005219613"})
    instance_id = await make_instance(spine.database, a.id, "asaas",
                                      {"base_url": provider.url, "api_key": API_KEY, "webhook_token": TOKEN})
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment(value=199.9)))
    body = json.dumps(asaas_hook()).encode()
    assert (await hook(web_for, a.slug, instance_id, body, {"asaas-access-token": TOKEN}))["accepted"] == 1
    await spine.settle()
    [note] = await rows(spine, a.id, Notification)
    assert note.recipient_id == a.member_id and note.kind == "customer.started"
    assert "Padaria Estrela Ltda" in note.body and "199,90" in note.body
    [task] = await rows(spine, a.id, Task)
    assert task.kind == "onboarding"
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    assert await rows(spine, b.id, Notification) == []


async def test_asaas_overdue_starts_grace_and_emails_through_the_tenants_smtp(spine, provider, web_for,  # noqa: F811
                                                                             smtp_server):  # noqa: F811
    a = spine.tenants.a
    inbox, port = smtp_server()
    set_port(Channel.EMAIL, SmtpPort(settings=connector_settings(spine.database)))  # the spine restores its own
    await make_instance(spine.database, a.id, "smtp", smtp_config(port))
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Oficina Rápida",
                                     tax_id="12.ABC.345/01DE-35", email="financeiro@oficina.example",
                                     lifecycle=Lifecycle.ACTIVE, external={"asaas": "cus_000005219613"})
    instance_id = await make_instance(spine.database, a.id, "asaas",
                                      {"base_url": provider.url, "api_key": API_KEY, "webhook_token": TOKEN})
    provider.on("GET", "/v3/payments/pay_od", Answer(200, asaas_payment("pay_od", status="OVERDUE")))
    body = json.dumps(asaas_hook("PAYMENT_OVERDUE", evt="evt_overdue", payment="pay_od")).encode()
    await hook(web_for, a.slug, instance_id, body, {"asaas-access-token": TOKEN})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.IN_GRACE
    assert [n.kind for n in await rows(spine, a.id, Notification)] == ["dunning.grace_started"]
    emails = [m for m in await rows(spine, a.id, OutboundMessage) if m.channel == Channel.EMAIL]
    assert [m.status for m in emails] == [DeliveryStatus.SENT], [m.last_error for m in emails]
    [(recipients, mail)] = inbox.messages
    assert recipients == ["financeiro@oficina.example"]
    assert mail["From"] == "Aurora Cobrança <cobranca@aurora.example>"
    assert "07/11/2026" in mail.get_body(("plain",)).get_content()


async def test_stripe_subscription_update_notifies_the_plan_change(spine, web_for):  # noqa: F811
    a = spine.tenants.a
    await new_customer(spine.database, a.id, a.admin_id, name="Academia Forte", tax_id="04.252.011/0001-10",
                       lifecycle=Lifecycle.ACTIVE, external={"stripe": "cus_Stripe1"})
    instance_id = await make_instance(spine.database, a.id, "stripe", {"webhook_secret": "whsec_e2e"})
    item = lambda price, amount, name: {"data": [{"price": {"id": price, "unit_amount": amount, "nickname": name}}]}  # noqa: E731
    body = json.dumps({"id": "evt_sub", "type": "customer.subscription.updated",
                       "created": int(clock.now().timestamp()),
                       "data": {"object": {"id": "sub_1", "customer": "cus_Stripe1",
                                           "items": item("price_max", 29990, "Plano Max")},
                                "previous_attributes": {"items": item("price_pro", 19990, "Plano Pro")}}}).encode()
    at = int(clock.now().timestamp())  # the spine's frozen clock: the tolerance is measured against it
    await hook(web_for, a.slug, instance_id, body, {"stripe-signature": f"t={at},v1={stripe.sign('whsec_e2e', at, body)}"})
    await spine.settle()
    [note] = await rows(spine, a.id, Notification)
    assert note.kind == "subscription.changed"
    assert "Plano Pro" in note.body and "Plano Max" in note.body
    [command] = spine.sent(Channel.PLATFORM, a.id)
    assert command.payload["data"]["plan"]["code"] == "price_max"


async def test_clicksign_closed_envelope_starts_the_customer_when_the_policy_says_so(spine, web_for):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    await spine.set_policy(a.id, start_trigger="contract.signed")
    maria = a.customer_ids[1]  # "Maria Silva", CPF 529.982.247-25, in both tenants
    instance_id = await make_instance(spine.database, a.id, "clicksign", {"hmac_secret": "cs-secret"})
    body = json.dumps({"event": {"name": "auto_close", "occurred_at": "2026-11-02T12:00:00-03:00"},
                       "document": {"key": "env-77", "status": "closed",
                                    "downloads": {"signed_file_url": "https://app.clicksign.com/s/env-77.pdf"},
                                    "signers": [{"documentation": "529.982.247-25"}]}}).encode()
    await hook(web_for, a.slug, instance_id, body, {"content-hmac": clicksign.sign("cs-secret", body)})
    await spine.settle()
    assert (await spine.customer(a.id, maria)).lifecycle == Lifecycle.ACTIVE
    [note] = await rows(spine, a.id, Notification)
    assert note.kind == "customer.started"
    assert any(d.get("url") == "https://app.clicksign.com/s/env-77.pdf" for d in note.detail["documents"])
    assert (await spine.customer(b.id, b.customer_ids[1])).lifecycle == Lifecycle.ONBOARDING


async def test_asaas_late_payment_blocks_at_the_deadline_and_a_later_payment_unblocks(spine, provider,  # noqa: F811
                                                                                       web_for):
    """Only Asaas webhooks and the passing of time: overdue -> grace -> blocked on the tenant's platform ->
    PAYMENT_RECEIVED for the same charge -> unblocked, each step told to the account manager."""
    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Oficina Rápida",
                                     tax_id="12.ABC.345/01DE-35", lifecycle=Lifecycle.ACTIVE,
                                     external={"asaas": "cus_000005219613"})
    instance_id = await make_instance(spine.database, a.id, "asaas",
                                      {"base_url": provider.url, "api_key": API_KEY, "webhook_token": TOKEN})
    provider.on("GET", "/v3/payments/pay_late", Answer(200, asaas_payment("pay_late", status="OVERDUE")))
    overdue = json.dumps(asaas_hook("PAYMENT_OVERDUE", evt="evt_late_1", payment="pay_late")).encode()
    await hook(web_for, a.slug, instance_id, overdue, {"asaas-access-token": TOKEN})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.IN_GRACE

    await spine.advance(days=7)  # the grace deadline passes unpaid
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block"]

    provider.on("GET", "/v3/payments/pay_late", Answer(200, asaas_payment("pay_late", status="RECEIVED")))
    received = json.dumps(asaas_hook("PAYMENT_RECEIVED", evt="evt_late_2", payment="pay_late")).encode()
    await hook(web_for, a.slug, instance_id, received, {"asaas-access-token": TOKEN})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "unblock"]
    kinds = [n.kind for n in await rows(spine, a.id, Notification)]
    assert kinds == ["dunning.grace_started", "dunning.blocked", "dunning.unblocked"]


async def test_stripe_subscription_deleted_ends_the_relationship(spine, web_for):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Academia Forte",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE,
                                     external={"stripe": "cus_Stripe1"})
    instance_id = await make_instance(spine.database, a.id, "stripe", {"webhook_secret": "whsec_e2e"})
    at = int(clock.now().timestamp())
    body = json.dumps({"id": "evt_end", "type": "customer.subscription.deleted", "created": at,
                       "data": {"object": {"id": "sub_1", "customer": "cus_Stripe1", "ended_at": at,
                                           "cancellation_details": {"reason": "cancellation_requested"},
                                           "items": {"data": [{"price": {"id": "price_pro", "unit_amount": 19990,
                                                                         "nickname": "Plano Pro"}}]}}}}).encode()
    await hook(web_for, a.slug, instance_id, body, {"stripe-signature": f"t={at},v1={stripe.sign('whsec_e2e', at, body)}"})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.TERMINATED
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["deprovision"]
    assert [t.kind for t in await rows(spine, a.id, Task)] == ["offboarding"]
    assert [n.kind for n in await rows(spine, a.id, Notification)] == ["customer.terminated"]
    assert await rows(spine, b.id, Notification) == [] and spine.sent(Channel.PLATFORM, b.id) == []
