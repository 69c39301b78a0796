"""Customers born at the gateway (issue 17, item 2), on PostgreSQL, driven only by Asaas-shaped webhooks
posted to /hooks and the stateful Asaas stand-in: an unknown Asaas customer's first payment starts a
customer created from Asaas's record, once even when the webhooks come twice; an existing customer is
matched by CPF/CNPJ (and linked) instead; a record without a valid CPF/CNPJ, or a tenant whose policy says
no, leaves the payment unmatched with the reason; another tenant sees none of it."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings, provider  # noqa: F401  (the Stripe stand-in)
from tests.providers.asaas import FakeAsaas, connect, gateway_options, serving

pytestmark = pytest.mark.postgres_only
KEY_A, KEY_B = "$aact_born_alfa", "$aact_born_beta"
NEW_CPF = "39053344705"


@pytest.fixture
async def world(spine):
    with serving(FakeAsaas()) as asaas, gateway_options(spine.database):
        app = create_app(connector_settings(spine.database))
        async with AsyncTestClient(app=app) as web:
            a = await connect(spine.database, spine.tenants.a.id, asaas, KEY_A)
            b = await connect(spine.database, spine.tenants.b.id, asaas, KEY_B)
            yield World(spine, asaas, web, {spine.tenants.a.id: (KEY_A, a), spine.tenants.b.id: (KEY_B, b)})


class World:
    def __init__(self, spine, asaas: FakeAsaas, web, connectors) -> None:
        self.spine, self.asaas, self.web, self.connectors = spine, asaas, web, connectors
        self.a, self.b = spine.tenants.a, spine.tenants.b

    async def post(self, tenant, body: dict) -> None:
        key, instance_id = self.connectors[tenant.id]
        response = await self.web.post(f"/hooks/{tenant.slug}/{instance_id}", json=body,
                                       headers={"asaas-access-token": f"hook-{key}"})
        assert response.status_code == 200, response.text

    def paid_at_checkout(self, key: str, *, name: str, cpf: str, email: str | None = None) -> tuple[str, str]:
        """A customer who signed up and paid through the tenant's Asaas checkout: unknown to the platform."""
        customer = self.asaas.add_customer(key, name=name, cpf_cnpj=cpf, email=email)
        payment = self.asaas.plant(key, customer=customer["id"], value="149.90", status="RECEIVED",
                                   payment_date="2026-11-02", due_date="2026-11-02", description="Plano Essencial")
        return customer["id"], payment["id"]

    async def rows(self, tenant, model, *where):
        async with self.spine.database.tenant(tenant.id) as session:
            return list((await session.execute(select(model).where(*where))).scalars())


async def test_an_unknown_asaas_customers_first_payment_starts_a_customer_made_from_asaass_record(world):
    a, b = world.a, world.b
    cus, pay = world.paid_at_checkout(KEY_A, name="Padaria Nova Aurora", cpf=NEW_CPF, email="Fin@Aurora.example")
    created = world.asaas.hook(KEY_A, "PAYMENT_CREATED", pay)
    received = world.asaas.hook(KEY_A, "PAYMENT_RECEIVED", pay)
    # Both in one batch, and the payment's webhook delivered twice (Asaas retries with the same evt_ id).
    await world.post(a, created)
    await world.post(a, received)
    await world.post(a, received)
    await world.spine.settle()
    await world.post(a, received)  # and once more after everything settled
    await world.spine.settle()

    [customer] = await world.rows(a, Customer, Customer.tax_id == NEW_CPF)
    assert (customer.name, customer.tax_id_kind, customer.email) == ("Padaria Nova Aurora", "cpf", "fin@aurora.example")
    assert customer.external_ids == {"asaas": cus}
    assert customer.lifecycle == Lifecycle.ACTIVE  # the cleared payment started it (the default trigger)
    events = await world.rows(a, Event)
    assert sorted(e.type for e in events) == ["payment.cleared", "payment.created"]
    assert {e.status for e in events} == {EventStatus.PROCESSED} and {e.customer_id for e in events} == {customer.id}
    [charge] = await world.rows(a, Charge, Charge.external_id == pay)
    assert (charge.customer_id, charge.status, charge.amount_cents) == (customer.id, ChargeStatus.PAID, 14990)
    # Through the customers' door: audited, by the gateway's webhook; and on the customer's timeline.
    [audit] = await world.rows(a, AuditEntry, AuditEntry.action == "customer.created")
    assert (audit.target_id, audit.actor_label) == (str(customer.id), "system:asaas webhook")
    timeline = await world.rows(a, TimelineEntry, TimelineEntry.customer_id == customer.id)
    assert [t.title for t in timeline if t.kind == "customer"] == [f"Customer created from asaas's record of {cus}"]
    started = await world.rows(a, Notification, Notification.kind == "customer.started")
    assert [n.customer_id for n in started] == [customer.id]
    # Asaas was asked once for the customer, with tenant A's key; tenant B has none of it.
    assert [c.token for c in world.asaas.calls("GET", f"/v3/customers/{cus}")] == [KEY_A]
    assert await world.rows(b, Customer, Customer.tax_id == NEW_CPF) == []
    assert await world.rows(b, Event) == []


async def test_an_existing_customer_is_matched_by_cpf_cnpj_and_linked_not_created_again(world):
    a = world.a
    maria = a.customer_ids[1]  # Maria Silva, 529.982.247-25, registered on the platform without an Asaas id
    cus, pay = world.paid_at_checkout(KEY_A, name="Maria S.", cpf="52998224725")
    await world.post(a, world.asaas.hook(KEY_A, "PAYMENT_RECEIVED", pay))
    await world.spine.settle()
    [customer] = await world.rows(a, Customer, Customer.tax_id == "52998224725")
    assert customer.id == maria and customer.name == "Maria Silva"
    assert customer.external_ids.get("asaas") == cus
    [event] = await world.rows(a, Event)
    assert (event.status, event.customer_id) == (EventStatus.PROCESSED, maria)
    assert await world.rows(a, AuditEntry, AuditEntry.action == "customer.created") == []
    [linked] = await world.rows(a, AuditEntry, AuditEntry.action == "customer.updated")
    assert linked.target_id == str(maria) and linked.detail == {"fields": ["external_ids"]}


async def test_no_valid_cpf_cnpj_or_a_policy_that_says_no_leaves_the_payment_unmatched_with_the_reason(world):
    a, b = world.a, world.b
    _, bad_pay = world.paid_at_checkout(KEY_A, name="Cliente Sem Documento", cpf="12345678900")
    await world.post(a, world.asaas.hook(KEY_A, "PAYMENT_RECEIVED", bad_pay))
    await world.spine.set_policy(b.id, create_customers_from_gateway=False)
    cus_b, pay_b = world.paid_at_checkout(KEY_B, name="Loja Beta", cpf=NEW_CPF)
    await world.post(b, world.asaas.hook(KEY_B, "PAYMENT_RECEIVED", pay_b))
    await world.spine.settle()

    [unmatched_a] = await world.rows(a, Event)
    assert unmatched_a.status == EventStatus.UNMATCHED
    assert "no valid CPF/CNPJ" in unmatched_a.error and "12345678900" in unmatched_a.error
    [unmatched_b] = await world.rows(b, Event)
    assert unmatched_b.status == EventStatus.UNMATCHED
    assert cus_b in unmatched_b.error and "create_customers_from_gateway" in unmatched_b.error
    assert await world.rows(b, Customer, Customer.tax_id == NEW_CPF) == []
    assert await world.rows(a, Customer, Customer.tax_id == "12345678900") == []


async def test_a_gateway_that_cannot_be_asked_keeps_the_payment_waiting_not_unmatched(world):
    a = world.a
    cus, pay = world.paid_at_checkout(KEY_A, name="Oficina Central", cpf="11144477735")
    world.asaas.fail("GET", f"/v3/customers/{cus}", times=2, status=503, token=KEY_A)
    await world.post(a, world.asaas.hook(KEY_A, "PAYMENT_RECEIVED", pay))
    await world.spine.settle()
    [event] = await world.rows(a, Event)
    assert event.status == EventStatus.PENDING  # deferred: Asaas answered 503 twice (the HTTP helper retries a GET once)
    await world.spine.advance(seconds=5)
    [event] = await world.rows(a, Event)
    [customer] = await world.rows(a, Customer, Customer.tax_id == "11144477735")
    assert (event.status, event.customer_id, customer.external_ids) == (EventStatus.PROCESSED, customer.id,
                                                                        {"asaas": cus})


# --- Stripe: the same, its customer read with GET /v1/customers/{id} -----------------------------------------

async def test_an_unknown_stripe_customers_paid_invoice_starts_a_customer_made_from_stripes_record(spine, provider):
    from tests.connectors.conftest import Answer, make_instance
    from tests.web.test_hooks import INVOICE, WHSEC, stripe_event, stripe_headers

    a, b = spine.tenants.a, spine.tenants.b
    provider.on("GET", "/v1/customers/cus_Stripe1", Answer(200, {
        "id": "cus_Stripe1", "object": "customer", "name": "Estúdio Lumen", "email": "contato@lumen.example",
        "tax_ids": {"object": "list", "data": [{"id": "txi_1", "object": "tax_id", "type": "br_cnpj",
                                                "value": "04.252.011/0001-10", "country": "BR"}]}}))
    with gateway_options(spine.database):
        app = create_app(connector_settings(spine.database))
        async with AsyncTestClient(app=app) as web:
            hook_id = await make_instance(spine.database, a.id, "stripe", {
                "webhook_secret": WHSEC, "api_key": "rk_test_customers", "base_url": provider.url})
            body = stripe_event("invoice.paid", INVOICE, evt="evt_paid_lumen")
            for _ in range(2):  # Stripe delivers at least once
                response = await web.post(f"/hooks/{a.slug}/{hook_id}", content=body,
                                          headers={"content-type": "application/json",
                                                   **stripe_headers(body, at=int(spine.clock.now().timestamp()))})
                assert response.status_code == 200, response.text
            await spine.settle()
    async with spine.database.tenant(a.id) as session:
        [customer] = (await session.execute(select(Customer).where(Customer.tax_id == "04252011000110"))).scalars().all()
        [event] = (await session.execute(select(Event))).scalars().all()
    assert (customer.name, customer.tax_id_kind, customer.email) == ("Estúdio Lumen", "cnpj", "contato@lumen.example")
    assert customer.external_ids == {"stripe": "cus_Stripe1"} and customer.lifecycle == Lifecycle.ACTIVE
    assert (event.status, event.customer_id) == (EventStatus.PROCESSED, customer.id)
    [asked] = provider.requests("GET", "/v1/customers/cus_Stripe1")
    assert asked.headers["authorization"] == "Bearer rk_test_customers" and "tax_ids" in asked.query
    async with spine.database.tenant(b.id) as session:
        assert (await session.execute(select(Customer).where(Customer.tax_id == "04252011000110"))).all() == []
