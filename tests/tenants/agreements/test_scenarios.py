"""Renegotiation (acordo) end to end on PostgreSQL, driven by Asaas-shaped webhooks posted to /hooks and the
stateful Asaas stand-in: three instalments paid to the end; a missed instalment that reopens the case and
blocks again; a subscription blocked alone, unblocked by the first instalment; what a proposal refuses,
naming the field; another tenant sees none of it."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.agreements import service
from backoffice.tenants.agreements.models import Agreement, AgreementStatus
from backoffice.tenants.agreements.queries import customer_agreements
from backoffice.tenants.billing.models import Charge, Contract, ContractStatus
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings
from tests.providers.asaas import FakeAsaas, connect, gateway_options, serving
from tests.tenants.conftest import new_customer

pytestmark = pytest.mark.postgres_only
KEY = "$aact_acordo"
STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")


@pytest.fixture
async def world(spine):
    with serving(FakeAsaas()) as asaas, gateway_options(spine.database):
        app = create_app(connector_settings(spine.database))
        async with AsyncTestClient(app=app) as web:
            instance = await connect(spine.database, spine.tenants.a.id, asaas, KEY)
            yield World(spine, asaas, web, getattr(instance, "id", instance))


class World:
    def __init__(self, spine, asaas: FakeAsaas, web, instance_id) -> None:
        self.spine, self.asaas, self.web, self.instance_id = spine, asaas, web, instance_id
        self.a = spine.tenants.a

    async def hook(self, event: str, payment_id: str) -> dict:
        response = await self.web.post(f"/hooks/{self.a.slug}/{self.instance_id}",
                                        json=self.asaas.hook(KEY, event, payment_id),
                                        headers={"asaas-access-token": f"hook-{KEY}"})
        assert response.status_code == 200, response.text
        await self.spine.settle()
        return response.json()

    async def late_customer(self, name: str, tax_id: str) -> tuple[uuid.UUID, str]:
        """An active customer whose charge went overdue at Asaas (the webhook opened the case)."""
        cus = self.asaas.add_customer(KEY, name=name, cpf_cnpj=tax_id.replace(".", "").replace("/", "").replace("-", ""))
        customer_id = await new_customer(self.spine.database, self.a.id, self.a.member_id, name=name, tax_id=tax_id,
                                         lifecycle=Lifecycle.ACTIVE, external={"asaas": cus["id"]})
        pay = self.asaas.plant(KEY, customer=cus["id"], value="300.00", status="PENDING", due_date="2026-10-30")["id"]
        await self.hook("PAYMENT_CREATED", pay)
        self.asaas.mark_overdue(KEY, pay)
        await self.hook("PAYMENT_OVERDUE", pay)
        return customer_id, pay

    async def propose(self, customer_id: uuid.UUID, charge_ids, count=3, first_due="2026-11-20") -> Agreement:
        async with self.spine.database.provider(self.a.id) as session:
            tenant = await session.get(Tenant, self.a.id)
            agreement = await service.propose_agreement(session, tenant, customer_id, charge_ids=charge_ids,
                                                        instalments=count, first_due_date=first_due, acting=STAFF)
        await self.spine.settle()
        return agreement

    async def rows(self, model, *where, tenant=None):
        async with self.spine.database.tenant(tenant or self.a.id) as session:
            return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())

    async def agreement(self, customer_id):
        async with self.spine.database.tenant(self.a.id) as session:
            [view] = await customer_agreements(session, customer_id)
            return view

    async def charge_id(self, external_id: str) -> uuid.UUID:
        [charge] = await self.rows(Charge, Charge.external_id == external_id)
        return charge.id


async def test_three_instalments_paid_to_the_end(world):
    spine, asaas, a = world.spine, world.asaas, world.a
    customer_id, old = await world.late_customer("Padaria Estrela Ltda", "11.222.333/0001-81")
    [case] = await world.rows(DunningCase)
    assert case.status == CaseStatus.GRACE
    await spine.advance(days=6)  # the grace deadline passes: blocked
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED

    agreement = await world.propose(customer_id, [await world.charge_id(old)])
    # Asaas: the old payment deleted, a plan of three created splitting R$ 300,00.
    assert asaas.account(KEY).payments[old]["deleted"] is True
    view = await world.agreement(customer_id)
    assert [i.amount_cents for i, _ in view.instalments] == [10000, 10000, 10000]
    assert [c.due_date for _, c in view.instalments] == [date(2026, 11, 20), date(2026, 12, 20), date(2027, 1, 20)]
    [case] = await world.rows(DunningCase)
    assert case.status == CaseStatus.AGREEMENT  # waits: no deadline, no new block
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
    notes = await world.rows(Notification, Notification.kind == "agreement.made")
    assert notes and "Padaria Estrela Ltda" in notes[0].body and "R$ 300,00" in notes[0].body
    [audit] = await world.rows(AuditEntry, AuditEntry.action == "agreement.propose")
    assert audit.actor_label == STAFF.label and audit.detail["agreement_id"] == str(agreement.id)
    await world.hook("PAYMENT_DELETED", old)  # Asaas tells of the deletion: the waiting case is untouched
    assert (await world.rows(DunningCase))[0].status == CaseStatus.AGREEMENT

    payments = [c.external_id for _, c in view.instalments]
    asaas.settle(KEY, payments[0], payment_date="2026-11-19")
    await world.hook("PAYMENT_RECEIVED", payments[0])
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "unblock"]
    assert (await world.agreement(customer_id)).agreement.status == AgreementStatus.ACTIVE
    for n, payment in enumerate(payments[1:], start=2):
        asaas.settle(KEY, payment, payment_date=f"2026-1{n - 1}-19" if n == 2 else "2027-01-19")
        await world.hook("PAYMENT_RECEIVED", payment)
    view = await world.agreement(customer_id)
    assert view.agreement.status == AgreementStatus.COMPLETED and view.paid == 3
    [case] = await world.rows(DunningCase)
    assert case.status == CaseStatus.RESOLVED
    assert {n.kind for n in await world.rows(Notification)} >= {"agreement.made", "agreement.first_paid",
                                                                 "agreement.completed"}
    titles = [e.title for e in await world.rows(TimelineEntry, TimelineEntry.customer_id == customer_id)]
    assert any(t.startswith("Agreement recorded") for t in titles)
    assert any("instalment 2 of 3 paid" in t for t in titles) and "Agreement paid in full: 3 instalment(s)" in titles
    steps = [(e.action, e.actor_label) for e in await world.rows(AuditEntry, AuditEntry.target_type == "agreement")]
    assert sorted(steps) == [("agreement.completed", "system:process:agreements"),
                             ("agreement.first_paid", "system:process:agreements"),
                             ("agreement.made", "system:process:agreements")]
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "unblock"]
    # The other tenant saw none of it.
    assert await world.rows(Agreement, tenant=spine.tenants.b.id) == []
    assert await world.rows(Notification, tenant=spine.tenants.b.id) == []


async def test_a_missed_instalment_reopens_the_case_and_blocks_again(world):
    spine, asaas, a = world.spine, world.asaas, world.a
    customer_id, old = await world.late_customer("Oficina Rápida Ltda", "04.252.011/0001-10")
    await spine.advance(days=6)
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
    await world.propose(customer_id, [await world.charge_id(old)])
    payments = [c.external_id for _, c in (await world.agreement(customer_id)).instalments]
    asaas.settle(KEY, payments[0], payment_date="2026-11-19")
    await world.hook("PAYMENT_RECEIVED", payments[0])
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE

    asaas.mark_overdue(KEY, payments[1])
    await world.hook("PAYMENT_OVERDUE", payments[1])
    view = await world.agreement(customer_id)
    assert view.agreement.status == AgreementStatus.BROKEN
    cases = await world.rows(DunningCase)
    assert [c.status for c in cases] == [CaseStatus.GRACE]  # the debt's case reopened; no second case
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.IN_GRACE
    [broken] = await world.rows(Notification, Notification.kind == "agreement.broken")
    assert "parcela 2 de 3" in broken.body or "Instalment 2 of 3" in broken.body
    await spine.advance(days=6)  # the reopened case's deadline passes: blocked again
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "unblock", "block"]


async def test_a_proposal_names_what_it_refuses(world):
    spine, a = world.spine, world.a
    customer_id, old = await world.late_customer("Mercado Bom Preço", "111.444.777-35")
    old_id = await world.charge_id(old)
    other_id = await new_customer(spine.database, a.id, a.member_id, name="Outro", tax_id="935.411.347-80")

    async def refused(**kw) -> set[str]:
        arguments = {"charge_ids": [old_id], "instalments": 3, "first_due_date": "2026-11-20", **kw}
        with pytest.raises(ValidationFailed) as error:
            async with spine.database.provider(a.id) as session:
                tenant = await session.get(Tenant, a.id)
                await service.propose_agreement(session, tenant, kw.pop("customer", customer_id), acting=STAFF,
                                                **{k: v for k, v in arguments.items() if k != "customer"})
        return {e.field for e in error.value.errors}

    assert await refused(instalments=0) == {"instalments"}
    assert await refused(instalments=25) == {"instalments"}
    assert await refused(instalments="três") == {"instalments"}
    assert await refused(first_due_date="2026-11-01") == {"first_due_date"}  # yesterday, for the tenant
    assert await refused(first_due_date="20/11/2026") == {"first_due_date"}
    assert await refused(charge_ids=[]) == {"charges"}
    assert await refused(customer=other_id) == {"customer"}  # not registered at Asaas
    at_asaas = await new_customer(spine.database, a.id, a.member_id, name="Outro Ltda", tax_id="98.765.432/0001-98",
                                  external={"asaas": "cus_other"})
    assert await refused(customer=at_asaas) == {"charges"}  # another customer's charge
    assert await refused(charge_ids=["not-a-uuid"]) == {"charges"}
    assert world.asaas.calls("DELETE") == []  # nothing reached the gateway
    assert await world.rows(Agreement) == []


async def test_a_subscription_blocked_alone_is_unblocked_by_the_first_instalment(world):
    spine, asaas, a = world.spine, world.asaas, world.a
    cus = asaas.add_customer(KEY, name="Academia Forte", cpf_cnpj="98765432000198")["id"]
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Academia Forte",
                                     tax_id="98.765.432/0001-98", lifecycle=Lifecycle.ACTIVE, external={"asaas": cus})
    async with spine.database.tenant(a.id) as session:
        for sub, plan in (("sub_late", "Plano Pro"), ("sub_ok", "Add-on Relatórios")):
            session.add(Contract(customer_id=customer_id, plan_code=sub, plan_name=plan, price_cents=30000,
                                 status=ContractStatus.ACTIVE, source="asaas", external_id=sub,
                                 lifecycle=Lifecycle.ACTIVE))
    pay = asaas.plant(KEY, customer=cus, value="300.00", status="PENDING", due_date="2026-10-30",
                      subscription="sub_late")["id"]
    asaas.mark_overdue(KEY, pay)
    await world.hook("PAYMENT_OVERDUE", pay)
    await spine.advance(days=6)
    [block] = spine.sent(Channel.PLATFORM, a.id)
    assert block.payload["data"]["scope"] == "contract" and block.payload["data"]["entitlement"] == "sub_late"
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.IN_GRACE  # the add-on still runs

    await world.propose(customer_id, [await world.charge_id(pay)])
    first = (await world.agreement(customer_id)).instalments[0][1].external_id
    asaas.settle(KEY, first, payment_date="2026-11-19")
    await world.hook("PAYMENT_RECEIVED", first)
    _, unblock = spine.sent(Channel.PLATFORM, a.id)
    assert unblock.payload["command"] == "unblock" and unblock.payload["data"]["entitlement"] == "sub_late"
    contracts = {c.external_id: c.lifecycle for c in await world.rows(Contract)}
    assert contracts == {"sub_late": Lifecycle.ACTIVE, "sub_ok": Lifecycle.ACTIVE}
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE


async def test_an_agreement_of_one_instalment_is_one_payment(world):
    customer_id, old = await world.late_customer("Loja Única Ltda", "123.456.789-09")
    await world.propose(customer_id, [await world.charge_id(old)], count=1, first_due="2026-11-10")
    [create] = [c for c in world.asaas.calls("POST", "/v3/payments")]
    assert "installmentCount" not in create.body and create.body["value"] == "300.00"
    view = await world.agreement(customer_id)
    assert [(i.number, i.amount_cents, c.due_date) for i, c in view.instalments] == [(1, 30000, date(2026, 11, 10))]
    asaas_id = view.instalments[0][1].external_id
    world.asaas.settle(KEY, asaas_id, payment_date="2026-11-09")
    await world.hook("PAYMENT_RECEIVED", asaas_id)
    assert (await world.agreement(customer_id)).agreement.status == AgreementStatus.COMPLETED
    assert (await world.spine.customer(world.a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
