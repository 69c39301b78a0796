"""The monthly billing run through the real spine, against a stateful Asaas on a loopback port: one charge
per active contract at each tenant's own Asaas account, nothing created twice (a re-run, a worker crash
after Asaas created the payment, a connection cut before its answer), Asaas's refusal reaching the item and
the front office in Asaas's words, hiccups retried, and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from backoffice.connectors.asaas import Asaas, refusal
from backoffice.connectors.common import BRAZIL
from backoffice.connectors.http import ProviderError
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import Conflict
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.events.models import Event
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.routines import billing, engine
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunStatus, Trigger
from tests.providers.asaas import FakeAsaas, connect, gateway_options, serving
from tests.tenants.routines.runs import run_and_items

STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")
PERIOD = "2026-11"
A_KEY, B_KEY = "$aact_alfa", "$aact_beta"


@pytest.fixture
def asaas(database) -> Iterator[FakeAsaas]:
    fake = FakeAsaas()
    # Asaas refuses due dates before its today; the spine's clock says what today is.
    fake.today = lambda: clock.now().astimezone(BRAZIL).date()
    with serving(fake), gateway_options(database):
        yield fake


async def add_contract(database, tenant_id, customer_id, *, plan="Plano Pro", price=19990, day=5,
                       status=ContractStatus.ACTIVE) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        contract = Contract(customer_id=customer_id, plan_code=plan.lower().replace(" ", "-"), plan_name=plan,
                            price_cents=price, billing_day=day, status=status)
        session.add(contract)
        await session.flush()
        return contract.id


async def start(spine, tenant_id, period=PERIOD) -> uuid.UUID:
    async with spine.database.provider(tenant_id) as session:
        return (await engine.start_run(session, "billing", period=period, actor=STAFF)).id


async def charges(spine, tenant_id) -> list[Charge]:
    async with spine.database.tenant(tenant_id) as session:
        return list((await session.execute(select(Charge).order_by(Charge.due_date, Charge.id))).scalars())


def payments_by_reference(asaas: FakeAsaas, token: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for payment in asaas.account(token).payments.values():
        found.setdefault(payment["externalReference"], []).append(payment)
    return found


async def test_a_run_charges_each_active_contract_once_at_the_tenants_own_asaas(spine, asaas):
    a, b = spine.tenants.a, spine.tenants.b
    casa, maria = a.customer_ids
    await connect(spine.database, a.id, asaas, A_KEY)
    await connect(spine.database, b.id, asaas, B_KEY)
    pro = await add_contract(spine.database, a.id, casa, plan="Plano Pro", price=19990, day=5)
    basic = await add_contract(spine.database, a.id, maria, plan="Plano Básico", price=9900, day=31)
    await add_contract(spine.database, a.id, casa, plan="Plano Antigo", status=ContractStatus.CANCELED)
    late = await add_contract(spine.database, b.id, b.customer_ids[0], plan="Plano Mini", price=4990, day=1)
    # Maria is at A's Asaas already, under our reference (registered by an earlier attempt): found, not re-created.
    known = asaas.add_customer(A_KEY, name="Maria Silva", cpf_cnpj="52998224725", external_reference=str(maria))

    run_b = await start(spine, b.id)
    await spine.settle()
    assert await charges(spine, a.id) == []  # B's run touched nothing of A's
    run_a = await start(spine, a.id)
    await spine.settle()

    run, items = await run_and_items(spine, a.id, run_a)
    assert (run.status, run.items_total, run.items_done) == (RunStatus.SUCCEEDED, 2, 2)
    assert [i.label for i in items] == ["Casa do Pão — Plano Pro, 2026-11", "Maria Silva — Plano Básico, 2026-11"]
    assert items[0].data["charge"] == {"amount_cents": 19990, "due_date": "2026-11-05", "description": "Plano Pro — 2026-11"}
    # At A's Asaas: one payment per contract, under the contract and period's reference.
    at_a = payments_by_reference(asaas, A_KEY)
    assert sorted(at_a) == sorted([f"{pro}:{PERIOD}", f"{basic}:{PERIOD}"])
    pro_payment, basic_payment = at_a[f"{pro}:{PERIOD}"][0], at_a[f"{basic}:{PERIOD}"][0]
    assert (pro_payment["value"], pro_payment["dueDate"], pro_payment["billingType"]) == (199.9, "2026-11-05", "UNDEFINED")
    assert (basic_payment["value"], basic_payment["dueDate"]) == (99.0, "2026-11-30")  # the 31st of a 30-day month
    assert basic_payment["customer"] == known["id"]
    created = [c for c in asaas.account(A_KEY).customers.values() if c["id"] != known["id"]]
    assert [(c["name"], c["cpfCnpj"], c["externalReference"]) for c in created] == [
        ("Casa do Pão", "45723174000110", str(casa))]
    # On record: the charges, pointing at Asaas's payments, and the customers' Asaas ids.
    recorded = await charges(spine, a.id)
    assert [(c.contract_id, c.billing_period, c.source, c.external_id, c.amount_cents, c.due_date, c.status,
             c.payment_url, c.description) for c in recorded] == [
        (pro, PERIOD, "asaas", pro_payment["id"], 19990, date(2026, 11, 5), ChargeStatus.PENDING,
         pro_payment["invoiceUrl"], "Plano Pro — 2026-11"),
        (basic, PERIOD, "asaas", basic_payment["id"], 9900, date(2026, 11, 30), ChargeStatus.PENDING,
         basic_payment["invoiceUrl"], "Plano Básico — 2026-11"),
    ]
    assert items[0].result == {"charge_id": str(recorded[0].id), "external_id": pro_payment["id"],
                               "payment_url": pro_payment["invoiceUrl"], "due_date": "2026-11-05",
                               "billing_type": "UNDEFINED"}
    async with spine.database.tenant(a.id) as session:
        ids = {c.id: c.external_ids for c in (await session.execute(select(Customer))).scalars()}
        instance = (await session.execute(select(ConnectorInstance))).scalar_one()
    assert ids[casa] == {"asaas": created[0]["id"]} and ids[maria] == {"asaas": known["id"]}
    assert instance.health == Health.OK and instance.last_success_at is not None

    # B: its own account, its own charge; billed on the 2nd for the 1st, so due the day Asaas has it created.
    other, _ = await run_and_items(spine, b.id, run_b)
    assert (other.status, other.items_done) == (RunStatus.SUCCEEDED, 1)
    at_b = payments_by_reference(asaas, B_KEY)
    assert list(at_b) == [f"{late}:{PERIOD}"] and at_b[f"{late}:{PERIOD}"][0]["dueDate"] == "2026-11-02"
    assert [(c.contract_id, c.due_date) for c in await charges(spine, b.id)] == [(late, date(2026, 11, 2))]
    assert {c.token for c in asaas.calls()} == {A_KEY, B_KEY}

    # A re-run of the period finds every contract billed: nothing sent to Asaas, nothing recorded.
    posts = len(asaas.calls("POST"))
    again = await start(spine, a.id)
    await spine.settle()
    rerun, rerun_items = await run_and_items(spine, a.id, again)
    assert (rerun.status, rerun.items_total, rerun_items) == (RunStatus.SUCCEEDED, 0, [])
    assert len(asaas.calls("POST")) == posts
    assert len(await charges(spine, a.id)) == 2


async def test_a_worker_crash_after_asaas_created_the_payment_does_not_charge_twice(spine, asaas,
                                                                                     monkeypatch):
    a = spine.tenants.a
    await connect(spine.database, a.id, asaas, A_KEY)
    contracts = [await add_contract(spine.database, a.id, customer) for customer in a.customer_ids]
    record, crashed = billing._record_charge, []

    async def crash_once(session, contract, period, source, payment):
        if not crashed:
            crashed.append(payment.id)  # Asaas has the payment; our transaction is about to be lost
            raise ConnectionResetError("worker lost its database connection before the commit")
        return await record(session, contract, period, source, payment)

    monkeypatch.setattr(billing, "_record_charge", crash_once)
    run_id = await start(spine, a.id)
    await spine.settle()

    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done) == (RunStatus.SUCCEEDED, 2)
    at_a = payments_by_reference(asaas, A_KEY)
    assert sorted(at_a) == sorted(f"{c}:{PERIOD}" for c in contracts)
    assert all(len(found) == 1 for found in at_a.values())
    assert len(asaas.calls("POST", "/v3/payments")) == 2
    # The repeat found the crashed attempt's payment by its reference and recorded that one.
    assert crashed[0] in {c.external_id for c in await charges(spine, a.id)}
    assert len(asaas.calls("GET", "/v3/payments")) == 3


async def test_a_worker_crash_after_asaas_created_the_customer_adopts_it_instead_of_a_second(spine, asaas,
                                                                                             monkeypatch):
    """Asaas created the customer (externalReference = our customer id) and the worker died before our
    commit kept its id: the next attempt finds it by that reference and bills it; Asaas holds one."""
    a = spine.tenants.a
    await connect(spine.database, a.id, asaas, A_KEY)
    contract = await add_contract(spine.database, a.id, a.customer_ids[0])
    create, crashed = Asaas.create_customer, []

    async def create_then_crash(self, ctx, **fields):
        created = await create(self, ctx, **fields)
        if not crashed:
            crashed.append(created["id"])
            raise ConnectionResetError("worker lost its database connection before the commit")
        return created

    monkeypatch.setattr(Asaas, "create_customer", create_then_crash)
    run_id = await start(spine, a.id)
    await spine.settle()

    run, _ = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done) == (RunStatus.SUCCEEDED, 1)
    customers = list(asaas.account(A_KEY).customers.values())
    assert [(c["id"], c["externalReference"]) for c in customers] == [(crashed[0], str(a.customer_ids[0]))]
    assert len(asaas.calls("POST", "/v3/customers")) == 1
    [payment] = payments_by_reference(asaas, A_KEY)[f"{contract}:{PERIOD}"]
    assert payment["customer"] == crashed[0]
    async with spine.database.tenant(a.id) as session:
        assert (await session.get(Customer, (a.id, a.customer_ids[0]))).external_ids["asaas"] == crashed[0]


async def test_a_payment_created_but_never_answered_is_found_on_the_next_attempt(spine, asaas):
    a = spine.tenants.a
    await connect(spine.database, a.id, asaas, A_KEY)
    contract = await add_contract(spine.database, a.id, a.customer_ids[0])
    asaas.cut_after_create()  # Asaas creates the payment, then the connection drops before its answer
    run_id = await start(spine, a.id)
    await spine.settle()
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert (run.status, item.status, item.attempts) == (RunStatus.RUNNING, ItemStatus.PENDING, 1)
    assert "POST asaas payment: cannot reach the provider" in item.error
    await spine.advance(seconds=15)
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert (run.status, item.status, item.attempts) == (RunStatus.SUCCEEDED, ItemStatus.DONE, 2)
    [payment] = asaas.account(A_KEY).payments.values()
    assert payment["externalReference"] == f"{contract}:{PERIOD}"
    assert len(asaas.calls("POST", "/v3/payments")) == 1
    assert [c.external_id for c in await charges(spine, a.id)] == [payment["id"]]


async def test_an_asaas_refusal_fails_the_item_in_asaas_words_and_tells_the_front_office(spine, asaas):
    a, b = spine.tenants.a, spine.tenants.b
    casa, maria = a.customer_ids
    instance_id = await connect(spine.database, a.id, asaas, A_KEY)
    await add_contract(spine.database, a.id, casa)
    await add_contract(spine.database, a.id, maria, plan="Plano Básico", price=9900, day=10)
    asaas.account(A_KEY).refused_tax_ids.add("52998224725")  # Asaas will not take Maria's CPF
    run_id = await start(spine, a.id)
    await spine.settle()

    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done, run.items_failed) == (RunStatus.PARTIAL, 1, 1)
    failed = next(i for i in items if i.status == ItemStatus.FAILED)
    assert failed.customer_id == maria
    assert failed.error == "POST asaas customer: Asaas refused (400): O CPF/CNPJ informado é inválido. (invalid_cpfCnpj)"
    assert [c.customer_id for c in await charges(spine, a.id)] == [casa]
    async with spine.database.tenant(a.id) as session:
        event = (await session.execute(select(Event).where(Event.type == "routine.item_failed"))).scalar_one()
        notes = (await session.execute(select(Notification).where(Notification.kind == "routine.item_failed"))).scalars().all()
        instance = await get_owned(session, ConnectorInstance, instance_id)
    assert event.customer_id == maria and event.data["charge"] == {
        "amount_cents": 9900, "due_date": "2026-11-10", "description": "Plano Básico — 2026-11"}
    assert notes and all(n.customer_id == maria and "O CPF/CNPJ informado é inválido" in n.body for n in notes)
    assert instance.health == Health.OK  # Asaas answered; what it refused was the customer's data
    async with spine.database.tenant(b.id) as session:
        assert (await session.execute(select(Notification))).first() is None

    # Fixed at Asaas's end (or the customer's CPF corrected): retrying the failed item bills Maria.
    asaas.account(A_KEY).refused_tax_ids.clear()
    async with spine.database.provider(a.id) as session:
        retry_id = (await engine.retry_failed(session, run_id, actor=STAFF, reason="CPF corrected")).id
    await spine.settle()
    retry, [item] = await run_and_items(spine, a.id, retry_id)
    assert (retry.trigger, retry.status, item.customer_id, item.status) == (
        Trigger.RETRY, RunStatus.SUCCEEDED, maria, ItemStatus.DONE)
    assert sorted(c.customer_id for c in await charges(spine, a.id)) == sorted([casa, maria])
    assert len(asaas.account(A_KEY).payments) == 2


async def test_asaas_hiccups_are_retried_and_the_run_ends_done(spine, asaas):
    a = spine.tenants.a
    await connect(spine.database, a.id, asaas, A_KEY)
    for customer in a.customer_ids:
        await add_contract(spine.database, a.id, customer)
    asaas.fail("GET", "/v3/customers", times=1)  # a read: retried at once by the HTTP helper
    asaas.fail("POST", "/v3/payments", times=1)  # a create: never repeated blindly; the item tries again later
    run_id = await start(spine, a.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done) == (RunStatus.RUNNING, 1), [(i.status, i.error) for i in items]
    [waiting] = [i for i in items if i.status == ItemStatus.PENDING]
    assert waiting.error == "POST asaas payment: provider answered 503" and waiting.next_attempt_at is not None
    # The connector's health keeps the failure for staff, though the item's own work was rolled back
    # (its health is OK again: the other item's calls went through after it).
    async with spine.database.tenant(a.id) as session:
        [instance] = (await session.execute(select(ConnectorInstance))).scalars().all()
        assert instance.last_error == "POST asaas payment: provider answered 503" and instance.last_error_at
    await spine.advance(seconds=15)
    run, items = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done, run.items_failed) == (RunStatus.SUCCEEDED, 2, 0)
    async with spine.database.tenant(a.id) as session:
        assert (await session.execute(select(ConnectorInstance.health))).scalar_one() == Health.OK
    assert all(len(found) == 1 for found in payments_by_reference(asaas, A_KEY).values())
    assert len(asaas.account(A_KEY).payments) == 2 and len(await charges(spine, a.id)) == 2


async def test_each_tenant_bills_its_own_customers_through_its_own_connector_only(spine, asaas):
    # Both tenants have a "Maria Silva" with the same CPF: two customers, two Asaas accounts, never crossed.
    a, b = spine.tenants.a, spine.tenants.b
    await connect(spine.database, a.id, asaas, A_KEY)
    await connect(spine.database, b.id, asaas, B_KEY)
    a_maria, b_maria = a.customer_ids[1], b.customer_ids[1]
    a_contract = await add_contract(spine.database, a.id, a_maria)
    b_contract = await add_contract(spine.database, b.id, b_maria)
    await start(spine, b.id)
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        untouched = await get_owned(session, Customer, a_maria)
        assert untouched.external_ids == {} and (await session.execute(select(Charge))).first() is None
    assert asaas.calls(token=A_KEY) == [] and asaas.account(A_KEY).customers == {}
    await start(spine, a.id)
    await spine.settle()
    for tenant, token, customer_id, contract_id in ((a, A_KEY, a_maria, a_contract), (b, B_KEY, b_maria, b_contract)):
        account = asaas.account(token)
        [at_asaas] = account.customers.values()
        assert at_asaas["externalReference"] == str(customer_id)
        [payment] = account.payments.values()
        assert payment["externalReference"] == f"{contract_id}:{PERIOD}" and payment["customer"] == at_asaas["id"]
        async with spine.database.tenant(tenant.id) as session:
            customer = await get_owned(session, Customer, customer_id)
            assert customer.external_ids == {"asaas": at_asaas["id"]}
            assert [c.external_id for c in (await session.execute(select(Charge))).scalars()] == [payment["id"]]


async def test_a_billing_run_for_a_tenant_without_a_payment_gateway_is_refused_saying_why(spine, asaas):
    a = spine.tenants.a
    await add_contract(spine.database, a.id, a.customer_ids[0])
    with pytest.raises(Conflict) as refused:
        await start(spine, a.id)
    assert refused.value.errors[0].field == "routine"
    assert "needs an enabled asaas connector and this company has none" in refused.value.errors[0].message
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        assert (await session.execute(select(RoutineRun))).first() is None
    assert asaas.calls() == []


def test_the_due_date_is_the_billing_day_of_the_period_clamped_to_the_month():
    assert billing.due_date("2026-02", 31) == date(2026, 2, 28)
    assert billing.due_date("2028-02", 30) == date(2028, 2, 29)
    assert billing.due_date("2026-11", 0) == date(2026, 11, 1)
    assert billing.due_date("2026-12", 15) == date(2026, 12, 15)


def test_asaas_words_are_read_from_a_whole_or_a_cut_answer():
    whole = ProviderError('POST asaas payment: provider refused with 400: {"errors": [{"code": "invalid_value", '
                          '"description": "O valor deve ser maior que zero."}, {"code": "invalid_dueDate", '
                          '"description": "Data inv\\u00e1lida."}]}', retryable=False, status=400)
    assert refusal(whole) == "O valor deve ser maior que zero. (invalid_value); Data inválida. (invalid_dueDate)"
    cut = ProviderError('GET asaas payments: provider refused with 400: {"errors": [{"code": "a", "description": '
                        '"Primeiro problema."}, {"code": "b", "descri', retryable=False, status=400)
    assert refusal(cut) == "Primeiro problema."
    assert refusal(ProviderError("GET asaas payments: provider answered 503", retryable=True)) is None
    assert refusal(ProviderError("POST asaas customer: provider refused with 404: <html>", retryable=False,
                                 status=404)) is None
