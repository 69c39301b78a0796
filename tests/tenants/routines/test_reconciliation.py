"""The daily reconciliation through the real spine, against a stateful Asaas on a loopback port: each kind
of finding from planted payments, the run's summary, a re-run of the day replacing its findings, several
Asaas accounts of one tenant, a refusal failing the item in Asaas's words, and tenant isolation."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.connectors.common import brazil_day
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import Conflict
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.tenants.billing.models import Charge, ChargeStatus, Payment
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.events.models import Event
from backoffice.tenants.routines import engine, repairs
from backoffice.tenants.routines.models import FindingKind, ItemStatus, ReconciliationFinding, RunStatus
from backoffice.tenants.routines.repairs import FindingRepair
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings
from tests.providers.asaas import FakeAsaas, connect, gateway_options, serving
from tests.tenants.routines.runs import run_and_items

STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")
DAY = "2026-11-01"
A_KEY, B_KEY = "$aact_alfa", "$aact_beta"
NONE = {kind.value: 0 for kind in FindingKind}


@pytest.fixture
def asaas(database) -> Iterator[FakeAsaas]:
    with serving(FakeAsaas()) as fake, gateway_options(database):
        yield fake


async def on_record(database, tenant_id, customer_id, external_id: str, cents: int, *, status=ChargeStatus.PAID,
                    paid_on: str | None = DAY, paid_cents: int | None = None) -> uuid.UUID:
    """A charge the platform knows (from Asaas's webhooks), paid on ``paid_on`` when it is paid."""
    async with database.tenant(tenant_id) as session:
        charge = Charge(customer_id=customer_id, amount_cents=cents, due_date=brazil_day(DAY).date(), source="asaas",
                        external_id=external_id, status=status)
        session.add(charge)
        await session.flush()
        if status == ChargeStatus.PAID and paid_on:
            charge.paid_at = brazil_day(paid_on)
            session.add(Payment(customer_id=customer_id, charge_id=charge.id, amount_cents=paid_cents or cents,
                                paid_at=brazil_day(paid_on), source="asaas", external_id=external_id, method="pix"))
        return charge.id


async def start(spine, tenant_id, period=DAY) -> uuid.UUID:
    async with spine.database.provider(tenant_id) as session:
        return (await engine.start_run(session, "reconciliation", period=period, actor=STAFF)).id


async def findings(spine, tenant_id, **where) -> list[ReconciliationFinding]:
    async with spine.database.tenant(tenant_id) as session:
        query = select(ReconciliationFinding).filter_by(**where).order_by(ReconciliationFinding.kind,
                                                                         ReconciliationFinding.reference)
        return list((await session.execute(query)).scalars())


def lines(found: list[ReconciliationFinding]) -> set[tuple]:
    return {(f.kind.value, f.reference, f.expected_cents, f.received_cents) for f in found}


@pytest.fixture
async def planted(spine, asaas: FakeAsaas):
    """Tenant A: one payment of each kind on the day, and noise around it. Tenant B: its own account."""
    a, b = spine.tenants.a, spine.tenants.b
    casa, maria = a.customer_ids
    await connect(spine.database, a.id, asaas, A_KEY)
    await connect(spine.database, b.id, asaas, B_KEY)
    cus_casa = asaas.add_customer(A_KEY, name="Casa do Pão", cpf_cnpj="45723174000110", external_reference=str(casa))["id"]
    async with spine.database.tenant(a.id) as session:
        (await session.get(Customer, (a.id, casa))).external_ids = {"asaas": cus_casa}
    pay = {}
    pay["matched"] = asaas.plant(A_KEY, customer=cus_casa, value="99.00", payment_date=DAY)["id"]
    pay["confirmed"] = asaas.plant(A_KEY, customer=cus_casa, value="50.00", status="CONFIRMED", payment_date=DAY)["id"]
    pay["unrecorded"] = asaas.plant(A_KEY, customer=cus_casa, value="120.00", payment_date=DAY)["id"]
    pay["mismatch"] = asaas.plant(A_KEY, customer=cus_casa, value="90.00", status="RECEIVED_IN_CASH",
                                  payment_date=DAY)["id"]
    pay["unknown"] = asaas.plant(A_KEY, customer=cus_casa, value="35.50", payment_date=DAY,
                                 external_reference="pedido-77")["id"]
    pay["pending"] = asaas.plant(A_KEY, customer=cus_casa, value="70.00", status="PENDING")["id"]
    pay["next_day"] = asaas.plant(A_KEY, customer=cus_casa, value="45.00", payment_date="2026-11-02")["id"]
    pay["day_before"] = asaas.plant(A_KEY, customer=cus_casa, value="15.00", payment_date="2026-10-31")["id"]
    await on_record(spine.database, a.id, casa, pay["matched"], 9900)
    await on_record(spine.database, a.id, casa, pay["confirmed"], 5000)
    await on_record(spine.database, a.id, maria, pay["unrecorded"], 12000, status=ChargeStatus.PENDING)
    await on_record(spine.database, a.id, maria, pay["mismatch"], 10000)
    await on_record(spine.database, a.id, casa, pay["pending"], 7000)  # recorded paid; Asaas has it pending
    await on_record(spine.database, a.id, casa, pay["next_day"], 4500)  # recorded on the 1st; Asaas says the 2nd
    await on_record(spine.database, a.id, casa, pay["day_before"], 1500, paid_on="2026-10-31")
    await on_record(spine.database, a.id, maria, "pay_000000999999", 2500)  # Asaas never heard of it
    b_customer = b.customer_ids[0]
    pay["b_matched"] = asaas.plant(B_KEY, customer="cus_b", value="10.00", payment_date=DAY)["id"]
    pay["b_unknown"] = asaas.plant(B_KEY, customer="cus_b", value="20.00", payment_date=DAY)["id"]
    await on_record(spine.database, b.id, b_customer, pay["b_matched"], 1000)
    return pay


A_EXPECTED = {
    ("matched", "matched", 9900, 9900), ("matched", "confirmed", 5000, 5000),
    ("unrecorded", "unrecorded", 12000, 12000), ("amount_mismatch", "mismatch", 10000, 9000),
    ("unknown", "unknown", None, 3550), ("missing", "pending", 7000, None), ("missing", "next_day", 4500, None),
}


def expected(pay: dict[str, str]) -> set[tuple]:
    return {(kind, pay[name], want, got) for kind, name, want, got in A_EXPECTED} | {
        ("missing", "pay_000000999999", 2500, None)}


async def test_a_day_is_reconciled_into_exactly_its_findings_and_a_rerun_replaces_them(spine, asaas, planted):
    a, b = spine.tenants.a, spine.tenants.b
    pay = planted
    run_a = await start(spine, a.id)
    run_b = await start(spine, b.id)
    await spine.settle()

    run, [item] = await run_and_items(spine, a.id, run_a)
    assert (run.status, item.status) == (RunStatus.SUCCEEDED, ItemStatus.DONE)
    async with spine.database.tenant(a.id) as session:
        instance = (await session.execute(select(ConnectorInstance))).scalar_one()
    assert (item.key, item.label) == (f"instance:{instance.id}", f"Asaas (Asaas), {DAY}")
    summary = {"matched": 2, "unrecorded": 1, "amount_mismatch": 1, "unknown": 1, "missing": 3}
    assert run.summary == summary
    assert item.result == {**summary, "received": 5}
    found = await findings(spine, a.id)
    assert lines(found) == expected(pay)
    by_reference = {f.reference: f for f in found}
    casa, maria = a.customer_ids
    assert (by_reference[pay["unknown"]].customer_id, by_reference[pay["unknown"]].charge_id) == (casa, None)
    assert "reference pedido-77" in by_reference[pay["unknown"]].detail
    assert by_reference[pay["unrecorded"]].detail == f"Asaas RECEIVED on {DAY}; the charge is still pending"
    assert by_reference[pay["mismatch"]].customer_id == maria
    assert by_reference[pay["pending"]].detail == f"recorded as paid on {DAY}; Asaas has it PENDING"
    assert by_reference[pay["next_day"]].detail == f"recorded as paid on {DAY}; Asaas lists it RECEIVED on 2026-11-02"
    assert by_reference["pay_000000999999"].detail == f"recorded as paid on {DAY}; Asaas does not know this payment"
    assert all(f.day == DAY and f.source == "asaas" and f.run_id == run_a for f in found)
    # Every page of every received status was read (two per page here), and only with documented filters.
    listings = asaas.calls("GET", "/v3/payments", token=A_KEY)
    assert {c.query["status"] for c in listings} == {"RECEIVED", "CONFIRMED", "RECEIVED_IN_CASH"}
    assert {c.query["offset"] for c in listings if c.query["status"] == "RECEIVED"} == {"0", "2"}
    assert all(c.status == 200 for c in asaas.calls("GET", "/v3/payments"))

    # B: its own account, its own findings, nothing of A's.
    other, _ = await run_and_items(spine, b.id, run_b)
    assert other.summary == {**NONE, "matched": 1, "unknown": 1}
    assert lines(await findings(spine, b.id)) == {("matched", pay["b_matched"], 1000, 1000),
                                                  ("unknown", pay["b_unknown"], None, 2000)}

    # A re-run of the day: the same findings in its own report; the first run's report is kept as it was.
    first = {f.id for f in await findings(spine, a.id, day=DAY)}
    again = await start(spine, a.id)
    await spine.settle()
    rerun, _ = await run_and_items(spine, a.id, again)
    assert rerun.summary == summary
    found = await findings(spine, a.id, day=DAY, run_id=again)
    assert lines(found) == expected(pay) and len(found) == len(expected(pay))
    assert {f.id for f in await findings(spine, a.id, day=DAY) if f.run_id != again} == first
    assert len(await findings(spine, b.id)) == 2


async def test_each_of_a_tenants_asaas_accounts_is_reconciled_against_its_own_payments(spine, asaas, planted):
    b = spine.tenants.b
    second = "$aact_beta_2"
    await connect(spine.database, b.id, asaas, second, name="Asaas filial")
    moved = asaas.plant(second, customer="cus_b2", value="30.00", payment_date=DAY)["id"]
    await on_record(spine.database, b.id, b.customer_ids[1], moved, 3000)
    run_id = await start(spine, b.id)
    await spine.settle()
    run, items = await run_and_items(spine, b.id, run_id)
    assert (run.status, len(items)) == (RunStatus.SUCCEEDED, 2)
    assert sorted(i.label for i in items) == [f"Asaas (Asaas), {DAY}", f"Asaas filial (Asaas), {DAY}"]
    # Each account's payments are the other account's unknown ids, not "missing" from it.
    assert lines(await findings(spine, b.id)) == {
        ("matched", planted["b_matched"], 1000, 1000), ("unknown", planted["b_unknown"], None, 2000),
        ("matched", moved, 3000, 3000)}
    assert run.summary == {**NONE, "matched": 2, "unknown": 1}
    assert {c.token for c in asaas.calls(path=f"/v3/payments/{moved}")} == {B_KEY}


async def test_an_asaas_refusal_fails_the_item_with_asaas_words(spine, asaas):
    a = spine.tenants.a
    instance_id = await connect(spine.database, a.id, asaas, A_KEY)
    del asaas.accounts[A_KEY]  # the key was revoked at Asaas
    run_id = await start(spine, a.id)
    await spine.settle()
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert (run.status, item.status) == (RunStatus.FAILED, ItemStatus.FAILED)
    assert item.error == "GET asaas payments: Asaas refused (401): A chave de API informada é inválida. (invalid_access_token)"
    assert await findings(spine, a.id) == []
    async with spine.database.tenant(a.id) as session:
        instance = await get_owned(session, ConnectorInstance, instance_id)
    assert instance.health == Health.FAILING and "A chave de API informada é inválida" in instance.last_error


async def test_an_asaas_hiccup_is_retried_and_the_day_still_reconciled(spine, asaas, planted):
    a = spine.tenants.a
    asaas.fail("GET", "/v3/payments", times=2, token=A_KEY)  # both tries of one listing: the item waits
    run_id = await start(spine, a.id)
    await spine.settle()
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert (run.status, item.status, item.error) == (RunStatus.RUNNING, ItemStatus.PENDING,
                                                     "GET asaas payments: provider answered 503")
    assert await findings(spine, a.id) == []
    await spine.advance(seconds=15)
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert (run.status, item.attempts) == (RunStatus.SUCCEEDED, 2)
    assert lines(await findings(spine, a.id)) == expected(planted)


async def test_a_tenant_without_asaas_gets_a_failed_run_and_another_tenants_findings_stay_unseen(spine, asaas,
                                                                                                planted):
    a, b = spine.tenants.a, spine.tenants.b
    await start(spine, a.id)
    await spine.settle()
    async with spine.database.tenant(b.id) as session:
        assert (await session.execute(select(ReconciliationFinding))).first() is None
    assert asaas.calls(token=B_KEY) == []
    # Disabled between the start and the plan: the run fails saying why; a new start is refused at once.
    run_id = await start(spine, b.id)
    async with spine.database.tenant(b.id) as session:
        instance = (await session.execute(select(ConnectorInstance))).scalar_one()
        instance.enabled = False
    await spine.settle()
    run, items = await run_and_items(spine, b.id, run_id)
    assert (run.status, items, run.error) == (
        RunStatus.FAILED, [], "no payment gateway connector configured for this company (asaas)")
    with pytest.raises(Conflict, match="needs an enabled asaas connector"):
        await start(spine, b.id)
    assert Counter(f.kind.value for f in await findings(spine, a.id)) == Counter(
        {"matched": 2, "unrecorded": 1, "amount_mismatch": 1, "unknown": 1, "missing": 3})


# --- repairs (issue 17, item 6) ------------------------------------------------------------------------------

async def _lost_webhook(spine, asaas) -> tuple[str, uuid.UUID, uuid.UUID]:
    """Tenant A: Maria's charge on record, pending; Asaas received it on the day; its webhook never came."""
    a = spine.tenants.a
    maria = a.customer_ids[1]
    instance_id = await connect(spine.database, a.id, asaas, A_KEY)
    cus = asaas.add_customer(A_KEY, name="Maria", cpf_cnpj="39053344705", external_reference=str(maria))["id"]
    async with spine.database.tenant(a.id) as session:
        (await session.get(Customer, (a.id, maria))).external_ids = {"asaas": cus}
    pay = asaas.plant(A_KEY, customer=cus, value="120.00", payment_date=DAY, due_date=DAY)["id"]
    await on_record(spine.database, a.id, maria, pay, 12000, status=ChargeStatus.PENDING)
    return pay, maria, instance_id


@pytest.mark.postgres_only
async def test_a_repaired_finding_becomes_the_event_and_its_effects_once(spine, asaas):
    a, b = spine.tenants.a, spine.tenants.b
    pay, maria, instance_id = await _lost_webhook(spine, asaas)
    await start(spine, a.id)
    await spine.settle()
    [finding] = await findings(spine, a.id, kind=FindingKind.UNRECORDED)

    # Another tenant cannot repair it (the same 404 as a finding that does not exist).
    with pytest.raises(NotFound):
        async with spine.database.provider(b.id) as session:
            await repairs.repair_finding(session, finding.id, acting=STAFF)
    async with spine.database.provider(a.id) as session:
        repair = await repairs.repair_finding(session, finding.id, acting=STAFF)
    assert (repair.outcome, repair.repaired_by) == ("accepted", STAFF.label)
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        [event] = (await session.execute(select(Event))).scalars().all()
        charge = (await session.execute(select(Charge).where(Charge.external_id == pay))).scalar_one()
        [payment] = (await session.execute(select(Payment).where(Payment.external_id == pay))).scalars().all()
        [audit] = (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "reconciliation.repair"))).scalars().all()
    assert (event.type, event.external_id, event.status.value) == ("payment.cleared", f"{pay}:cleared", "processed")
    assert event.customer_id == maria and charge.status == ChargeStatus.PAID and payment.amount_cents == 12000
    assert audit.actor_label == STAFF.label and audit.detail["event_id"] == str(event.id)

    # Repairing again does nothing more; nor does the real webhook arriving late (a duplicate).
    async with spine.database.provider(a.id) as session:
        again = await repairs.repair_finding(session, finding.id, acting=STAFF)
        assert again.id == repair.id
        repaired, failed = await repairs.repair_all(session, acting=STAFF)
        assert (repaired, failed) == ([], {})
    app = create_app(connector_settings(spine.database))
    async with AsyncTestClient(app=app) as web:
        late = await web.post(f"/hooks/{a.slug}/{instance_id}", json=asaas.hook(A_KEY, "PAYMENT_RECEIVED", pay),
                              headers={"asaas-access-token": f"hook-{A_KEY}"})
    assert late.status_code == 200 and late.json()["duplicates"] == 1, late.text
    await spine.settle()
    async with spine.database.tenant(a.id) as session:
        assert len((await session.execute(select(Event))).scalars().all()) == 1
        assert len((await session.execute(select(Payment).where(Payment.external_id == pay))).scalars().all()) == 1


async def test_the_policy_repairs_a_lost_webhook_during_the_run(spine, asaas):
    a = spine.tenants.a
    pay, maria, _ = await _lost_webhook(spine, asaas)
    await spine.set_policy(a.id, reconciliation_auto_repair=True)
    run_id = await start(spine, a.id)
    await spine.settle()
    run, [item] = await run_and_items(spine, a.id, run_id)
    assert item.result["repaired"] == 1 and item.result["repair_failed"] == 0
    async with spine.database.tenant(a.id) as session:
        [repair] = (await session.execute(select(FindingRepair))).scalars().all()
        [event] = (await session.execute(select(Event))).scalars().all()
        charge = (await session.execute(select(Charge).where(Charge.external_id == pay))).scalar_one()
    assert repair.repaired_by == "system:policy:reconciliation_auto_repair" and repair.event_id == event.id
    assert charge.status == ChargeStatus.PAID and event.customer_id == maria
