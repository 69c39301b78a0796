"""The daily reconciliation with the payment gateway: every morning at 08:00 local, the day before is
compared, payment by payment, between what Asaas received and what the platform recorded.

Period: the reconciled day (``YYYY-MM-DD``, the run's local date minus one). Items: one per enabled Asaas
connector of the tenant (key ``instance:<id>``), since each is its own Asaas account.

An item lists every payment Asaas received that day (``paymentDate`` that day, status RECEIVED, CONFIRMED
or RECEIVED_IN_CASH, every page) and writes one finding per payment:

- ``matched``: the platform has the charge (source ``asaas``, the payment's id) paid, for the same amount;
- ``unrecorded``: the platform's charge is still open (pending, overdue; or canceled): a lost webhook;
- ``amount_mismatch``: the charge is paid but for another amount than Asaas received;
- ``unknown``: the platform has no charge for the payment (created at Asaas by hand, or never recorded);

and one per payment the platform recorded that day (source ``asaas``) that Asaas does not list as received
that day: ``missing``, with what Asaas says of it now (another day, another status, or not known at all).

The day is Asaas's calendar day (São Paulo): Asaas's dates are São Paulo dates, and the platform records an
Asaas payment at the start of that São Paulo day (``connectors.common.brazil_day``), so both sides are
cut at the same instants whatever the tenant's own time zone.

Findings are report lines, not failures: the item is done with the counts per kind and the run's summary
totals them. A repeat of the day (a re-run) replaces the findings it writes: each reference (Asaas payment
id) has one finding per day, the latest. Money from Asaas is decimal reais, read as exact cents.

An ``unrecorded`` or ``unknown`` payment (a lost webhook) can be repaired (``repairs.py``): the event the
webhook would have produced is ingested from the finding, by staff, or here at once when the tenant's policy
says ``reconciliation_auto_repair`` (the item's result counts ``repaired`` and ``repair_failed``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.billing.models import Charge, ChargeStatus, Payment
from backoffice.tenants.billing.ports import GATEWAY_CALENDAR, GatewayCharge, PaymentGateway
from backoffice.tenants.connections import CallFailed, Connection, directory
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.routines.catalogue import Daily, ItemSpec, Outcome, Plan, Routine
from backoffice.tenants.routines.engine import RoutineUnavailable, failing_connector
from backoffice.tenants.routines.gateways import connection_for, open_port
from backoffice.tenants.routines.models import FindingKind, ReconciliationFinding, RoutineRun, RunItem
from backoffice.tenants.routines.repairs import REPAIRABLE, RepairFailed, repair_finding

KINDS = ("asaas",)
SOURCE = "asaas"
PURPOSE = "payment gateway"
CHUNK = 500  # ids per IN (...)
POLICY = Actor.system("policy:reconciliation_auto_repair")  # who repairs when the policy does


async def _instances(session: AsyncSession) -> list[Connection]:
    return await directory().connections(session, KINDS)


# --- plan -------------------------------------------------------------------------------------------------

async def _plan(session: AsyncSession, run: RoutineRun) -> Plan:
    await connection_for(session, KINDS, PURPOSE)  # none: the run fails saying so
    return Plan(items=[ItemSpec(key=f"instance:{instance.id}", label=f"{instance.name} (Asaas), {run.period}",
                                data={"instance_id": str(instance.id), "name": instance.name})
                       for instance in await _instances(session)])


# --- work -------------------------------------------------------------------------------------------------

async def _work(session: AsyncSession, run: RoutineRun, item: RunItem) -> Outcome:
    instance = await directory().connection(session, uuid.UUID(item.data["instance_id"]))
    if instance is None or not instance.enabled:
        state = "removed" if instance is None else "disabled"
        return Outcome.failed(f"connector {item.data.get('name')!r} was {state} since the run was planned",
                              notify=False)
    try:
        gateway: PaymentGateway = await open_port(session, instance)
    except RoutineUnavailable as error:
        return Outcome.failed(str(error), notify=False)
    try:
        received = {p.id: p for p in await gateway.received_on(run.period)}
        findings = await _gateway_side(session, run, received)
        findings += await _platform_side(session, run, gateway, received)
    except CallFailed as error:
        if error.retryable:
            raise failing_connector(error, instance.id)  # the engine notes it and tries again later
        gateway.record_outcome(error)  # a refusal of our key marks the connector; of our data, it answered
        return Outcome.failed(str(error))
    gateway.record_outcome()
    await _replace(session, run, instance, findings)
    counts = Counter(finding.kind.value for finding in findings)
    _, policy = await current_policy(session)
    repaired = await _auto_repair(session, gateway, findings) if policy.reconciliation_auto_repair else {}
    return Outcome.done(**{each.value: counts[each.value] for each in FindingKind}, received=len(received),
                        **repaired)


async def _auto_repair(session: AsyncSession, gateway: PaymentGateway,
                       findings: list[ReconciliationFinding]) -> dict[str, int]:
    """The tenant's policy repairs every lost webhook at once, as staff would (``repairs.repair_finding``,
    audited as the policy); one that cannot be repaired now stays on the report for staff."""
    done = failed = 0
    for finding in findings:
        if finding.kind not in REPAIRABLE:
            continue
        try:
            async with session.begin_nested():
                await repair_finding(session, finding.id, acting=POLICY, gateway=gateway)
            done += 1
        except (RepairFailed, ValidationFailed):
            failed += 1
    return {"repaired": done, "repair_failed": failed}


def _finding(run: RoutineRun, kind: FindingKind, reference: str, **fields: Any) -> ReconciliationFinding:
    return ReconciliationFinding(run_id=run.id, day=run.period, source=SOURCE, kind=kind, reference=reference,
                                 created_at=clock.now(), **fields)


async def _gateway_side(session: AsyncSession, run: RoutineRun,
                        received: dict[str, GatewayCharge]) -> list[ReconciliationFinding]:
    """Each payment Asaas received, against the platform's charge of it."""
    charges: dict[str, Charge] = {}
    ids = sorted(received)
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(select(Charge).where(
            Charge.source == SOURCE, Charge.external_id.in_(ids[start:start + CHUNK])))
        charges.update({charge.external_id: charge for charge in rows.scalars()})
    owners = await _customers_at_asaas(session, [p.customer for i, p in received.items() if i not in charges])
    findings = []
    for payment_id in ids:
        payment = received[payment_id]
        value = payment.amount_cents
        said = f"Asaas {payment.status} on {payment.paid_on or run.period}"
        charge = charges.get(payment_id)
        if charge is None:
            findings.append(_finding(
                run, FindingKind.UNKNOWN, payment_id, received_cents=value, customer_id=owners.get(payment.customer),
                detail=_cut(f"{said}; no charge on record (Asaas customer {payment.customer}"
                            + (f", reference {payment.external_reference}" if payment.external_reference else "")
                            + ")")))
        elif charge.status != ChargeStatus.PAID:
            differs = f"; charged {charge.amount_cents}, received {value} (cents)" if charge.amount_cents != value else ""
            findings.append(_finding(
                run, FindingKind.UNRECORDED, payment_id, charge_id=charge.id, customer_id=charge.customer_id,
                expected_cents=charge.amount_cents, received_cents=value,
                detail=_cut(f"{said}; the charge is still {charge.status.value}{differs}")))
        elif charge.amount_cents != value:
            findings.append(_finding(
                run, FindingKind.AMOUNT_MISMATCH, payment_id, charge_id=charge.id, customer_id=charge.customer_id,
                expected_cents=charge.amount_cents, received_cents=value,
                detail=_cut(f"{said}; charged {charge.amount_cents}, received {value} (cents)")))
        else:
            findings.append(_finding(
                run, FindingKind.MATCHED, payment_id, charge_id=charge.id, customer_id=charge.customer_id,
                expected_cents=charge.amount_cents, received_cents=value))
    return findings


async def _customers_at_asaas(session: AsyncSession, asaas_ids: list[str | None]) -> dict[str, uuid.UUID]:
    """Our customers by their Asaas id, for payments the platform has no charge of."""
    wanted = sorted({i for i in asaas_ids if i})
    found: dict[str, uuid.UUID] = {}
    key = Customer.external_ids[SOURCE].as_string()
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(select(key, Customer.id).where(key.in_(wanted[start:start + CHUNK])))
        found.update({asaas_id: customer_id for asaas_id, customer_id in rows.all()})
    return found


def _day_window(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=GATEWAY_CALENDAR)
    return start, datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), tzinfo=GATEWAY_CALENDAR)


async def _platform_side(session: AsyncSession, run: RoutineRun, gateway: PaymentGateway,
                         received: dict[str, GatewayCharge]) -> list[ReconciliationFinding]:
    """Each payment the platform recorded that day that Asaas did not list as received that day."""
    start, end = _day_window(run.period)
    recorded = (await session.execute(select(Payment).where(
        Payment.source == SOURCE, Payment.paid_at >= start, Payment.paid_at < end)
        .order_by(Payment.paid_at, Payment.id))).scalars().all()
    unlisted = [payment for payment in recorded if payment.external_id not in received]
    shared = len(await _instances(session)) > 1 if unlisted else False
    findings = []
    for payment in unlisted:
        # What Asaas says of it now makes the line actionable (paid another day, still pending, unknown).
        now = await gateway.fetch_charge(payment.external_id)
        if now is None and shared:
            continue  # another of the tenant's Asaas accounts holds it; that account's item reconciles it
        findings.append(_finding(
            run, FindingKind.MISSING, payment.external_id, charge_id=payment.charge_id,
            customer_id=payment.customer_id, expected_cents=payment.amount_cents,
            detail=_cut(f"recorded as paid on {run.period}; {_what_asaas_says(now, run.period)}")))
    return findings


def _what_asaas_says(payment: GatewayCharge | None, day: str) -> str:
    if payment is None:
        return "Asaas does not know this payment"
    if payment.deleted:
        return "Asaas has it deleted"
    if payment.paid and payment.paid_on and payment.paid_on != day:
        return f"Asaas lists it {payment.status} on {payment.paid_on}"
    return f"Asaas has it {payment.status}"


def _cut(text: str) -> str:
    return text[:500]


async def _replace(session: AsyncSession, run: RoutineRun, instance: Connection,
                   findings: list[ReconciliationFinding]) -> None:
    """This run's findings for this account, written afresh: a repeat of the item (a redelivery, a crash
    before the commit) never adds duplicates; another account's lines and earlier runs' reports are left
    as they were."""
    await session.execute(delete(ReconciliationFinding).where(
        ReconciliationFinding.run_id == run.id, ReconciliationFinding.connector_id == instance.id
    ).execution_options(synchronize_session=False))
    for finding in findings:
        finding.connector_id = instance.id
    session.add_all(findings)
    await session.flush()


# --- finish -----------------------------------------------------------------------------------------------

async def _finish(session: AsyncSession, run: RoutineRun) -> None:
    rows = (await session.execute(
        select(ReconciliationFinding.kind, func.count()).where(ReconciliationFinding.run_id == run.id)
        .group_by(ReconciliationFinding.kind))).all()
    totals = {kind.value: 0 for kind in FindingKind}
    totals.update({FindingKind(kind).value: count for kind, count in rows})
    run.summary = {**(run.summary or {}), **totals}


RECONCILIATION = Routine(
    name="reconciliation",
    title={"pt-BR": "Conciliação com o gateway", "en": "Gateway reconciliation"},
    item_noun={"pt-BR": "contas do gateway conciliadas", "en": "gateway accounts reconciled"},
    schedule=Daily(hour=8, offset_days=-1),
    plan=_plan,
    work=_work,
    finish=_finish,
    requires=KINDS,
)
