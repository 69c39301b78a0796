"""The monthly billing run: on the 1st at 05:00 local, every active contract gets its month's charge at
the tenant's payment gateway (its Asaas connector).

Period: the month (``YYYY-MM``). Items: one per active contract that has no charge for the period yet
(key ``contract:<id>``); the charge is the contract's price, due on the contract's billing day of that
month (the 31st is the month's last day in a shorter month).

An item's work is idempotent towards Asaas, which has no idempotency key, by looking before creating:

1. a charge of the contract for the period on record: done, pointing at it (a re-run bills nothing twice;
   the unique index on (contract, period) is the last word);
2. the customer at Asaas: the id kept in ``Customer.external_ids["asaas"]``, else the customer Asaas holds
   under our reference (``externalReference`` = our customer id), else a new one, whose id is kept;
3. the payment at Asaas: the one Asaas holds under ``externalReference = "<contract id>:<period>"``, else
   a new one (billing type UNDEFINED: the customer picks boleto, Pix or card on Asaas's invoice page; with
   the policy's fine and interest, ``late_fine_percent`` and ``late_interest_percent_month``);
4. how to pay it, read once: the Pix copia-e-cola and QR code, the boleto's linha digitável (a refusal of
   one, an account without a Pix key say, leaves it out and is said in the item's result);
5. the charge on record (source ``asaas``, the payment's id), pending, with Asaas's invoice URL, its billing
   type and how to pay it (the e-mails that chase it and the portal show them).

A crash after Asaas created the customer or the payment and before our commit repeats the item, which
finds them at step 2 or 3 instead of creating them again. A refusal (a CPF/CNPJ Asaas finds invalid) fails
the item with Asaas's words and tells the customer's front-office people, with the charge it was about;
a hiccup (5xx, timeout) is retried by the engine.

A charge created after its day (a retry run late in the month) falls due the day it is created: Asaas
refuses due dates in the past.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import date
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.billing.ports import (
    GATEWAY_CALENDAR, OFFERS_BOLETO, OFFERS_PIX, BillingType, GatewayCharge, PaymentGateway,
)
from backoffice.tenants.connections import CallFailed
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.routines.catalogue import ItemSpec, Monthly, Outcome, Plan, Routine
from backoffice.tenants.routines.engine import RoutineUnavailable, failing_connector
from backoffice.tenants.routines.gateways import connection_for, open_port
from backoffice.tenants.routines.models import RoutineRun, RunItem

KINDS = ("asaas",)
SOURCE = "asaas"
PURPOSE = "payment gateway"
BILLING_TYPE = BillingType.UNDEFINED


def due_date(period: str, billing_day: int) -> date:
    """The contract's billing day in the period's month, the month's last day when it is shorter."""
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, min(max(billing_day, 1), calendar.monthrange(year, month)[1]))


def payment_reference(contract_id: uuid.UUID, period: str) -> str:
    """The payment's ``externalReference`` at Asaas: how a repeat finds what an earlier attempt created."""
    return f"{contract_id}:{period}"


# --- plan -------------------------------------------------------------------------------------------------

async def _plan(session: AsyncSession, run: RoutineRun) -> Plan:
    await connection_for(session, KINDS, PURPOSE)
    billed = (select(Charge.id)
              .where(Charge.contract_id == Contract.id, Charge.billing_period == run.period).exists())
    rows = (await session.execute(
        select(Contract, Customer.name)
        .join(Customer, and_(Customer.tenant_id == Contract.tenant_id, Customer.id == Contract.customer_id))
        .where(Contract.status == ContractStatus.ACTIVE, ~billed)
        .order_by(Customer.name, Contract.id)
    )).all()
    items = []
    for contract, name in rows:
        description = f"{contract.plan_name} — {run.period}"
        charge = {"amount_cents": contract.price_cents,
                  "due_date": due_date(run.period, contract.billing_day).isoformat(), "description": description}
        items.append(ItemSpec(key=f"contract:{contract.id}", label=f"{name} — {contract.plan_name}, {run.period}",
                              customer_id=contract.customer_id,
                              data={"contract_id": str(contract.id), "charge": charge}))
    return Plan(items=items)


# --- work -------------------------------------------------------------------------------------------------

async def _work(session: AsyncSession, run: RoutineRun, item: RunItem) -> Outcome:
    contract_id = uuid.UUID(item.data["contract_id"])
    charge = await _charge_of(session, contract_id, run.period)
    if charge is not None:
        return Outcome.done(**_result(charge))
    contract = (await session.execute(select(Contract).where(Contract.id == contract_id))).scalar_one_or_none()
    if contract is None or contract.status != ContractStatus.ACTIVE:
        # Canceled (or removed) between the plan and now: nothing to bill, and nothing went wrong.
        return Outcome.done(skipped=f"contract is {contract.status.value if contract else 'gone'}; not billed")
    try:
        connection = await connection_for(session, KINDS, PURPOSE)
        gateway: PaymentGateway = await open_port(session, connection)
    except RoutineUnavailable as error:
        # The connector went away after the plan (or a retry run, which has no plan step): staff's to fix.
        return Outcome.failed(str(error), notify=False)
    planned = item.data["charge"]
    customer = await _locked_customer(session, contract.customer_id)
    _, policy = await current_policy(session)
    try:
        gateway_customer = await _gateway_customer(gateway, customer)
        payment = await _gateway_charge(gateway, gateway_customer, contract, run.period, planned, policy)
        means, problem = await _payment_means(gateway, payment)
    except CallFailed as error:
        if error.retryable:
            # The engine records the connector's failure and tries the item again later.
            raise failing_connector(error, connection.id)
        gateway.record_outcome(error)
        return Outcome.failed(str(error))
    gateway.record_outcome()
    charge = await _record_charge(session, contract, run.period, gateway.source, payment)
    for name, value in means.items():
        setattr(charge, name, value)
    await session.flush()
    return Outcome.done(**_result(charge), **({"problem": problem} if problem else {}))


async def _charge_of(session: AsyncSession, contract_id: uuid.UUID, period: str) -> Charge | None:
    return (await session.execute(select(Charge).where(
        Charge.contract_id == contract_id, Charge.billing_period == period))).scalar_one_or_none()


def _result(charge: Charge) -> dict[str, Any]:
    return {"charge_id": str(charge.id), "external_id": charge.external_id, "payment_url": charge.payment_url,
            "due_date": charge.due_date.isoformat(), "billing_type": charge.billing_type}


async def _locked_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    # Locked while we look for and create its Asaas customer: two items of one customer (two contracts)
    # must not each create one. SQLite's write lock serialises them already.
    query = select(Customer).where(Customer.id == customer_id).execution_options(populate_existing=True)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one()


async def _gateway_customer(gateway: PaymentGateway, customer: Customer) -> str:
    known = (customer.external_ids or {}).get(gateway.source)
    if known:
        return known
    reference = str(customer.id)
    found = await gateway.find_customer(external_reference=reference)
    if found is None:
        found = await gateway.create_customer(name=customer.name, tax_id=customer.tax_id, email=customer.email,
                                              external_reference=reference)
    # a new dict: the change is seen
    customer.external_ids = {**(customer.external_ids or {}), gateway.source: found.id}
    return found.id


async def _gateway_charge(gateway: PaymentGateway, gateway_customer: str, contract: Contract, period: str,
                          planned: dict[str, Any], policy: PolicyConfig) -> GatewayCharge:
    reference = payment_reference(contract.id, period)
    found = await gateway.find_charge(external_reference=reference)
    if found is not None:
        return found
    today = clock.now().astimezone(GATEWAY_CALENDAR).date()
    due = max(date.fromisoformat(planned["due_date"]), today)
    return await gateway.create_charge(customer=gateway_customer, amount_cents=planned["amount_cents"],
                                       due_date=due, billing_type=BILLING_TYPE,
                                       description=planned.get("description"), external_reference=reference,
                                       fine_percent=policy.late_fine_percent or None,
                                       interest_percent=policy.late_interest_percent_month or None)


async def _payment_means(gateway: PaymentGateway, payment: GatewayCharge) -> tuple[dict[str, Any], str | None]:
    """What paying the charge takes, read once now so e-mails and the portal show it without asking the
    gateway again: the billing type, the Pix copia-e-cola and QR code, the boleto's linha digitável and PDF.
    A refusal of one of them (a gateway account without a Pix key, say) leaves that one out and is said in
    the item's result; a hiccup is raised, and the engine tries the item again (it finds the charge)."""
    kind = BillingType(payment.billing_type) if payment.billing_type in set(BillingType) else BillingType.UNDEFINED
    means: dict[str, Any] = {"billing_type": kind.value, "boleto_url": payment.boleto_url}
    problems = []
    if kind in OFFERS_PIX:
        try:
            pix = await gateway.pix_code(payment.id)
        except CallFailed as error:
            if error.retryable:
                raise
            problems.append(f"no Pix code: {error}")
        else:
            if pix is not None:
                means.update(pix_payload=pix.payload, pix_qr_png=pix.qr_png)
    if kind in OFFERS_BOLETO:
        try:
            line = await gateway.boleto_line(payment.id)
        except CallFailed as error:
            if error.retryable:
                raise
            problems.append(f"no boleto line: {error}")
        else:
            means["boleto_line"] = line[:64] if line else None
    return means, "; ".join(problems)[:500] or None


async def _record_charge(session: AsyncSession, contract: Contract, period: str, source: str,
                         payment: GatewayCharge) -> Charge:
    """The charge on record for the gateway's charge. Its own creation webhook (Asaas's
    ``PAYMENT_CREATED``) may have recorded it first (without contract or period): that row is completed."""
    for _ in range(2):
        charge = (await session.execute(select(Charge).where(
            Charge.source == source, Charge.external_id == payment.id))).scalar_one_or_none()
        try:
            async with session.begin_nested():
                if charge is None:
                    charge = Charge(customer_id=contract.customer_id, source=source, external_id=payment.id,
                                    status=ChargeStatus.PENDING, created_at=clock.now())
                    session.add(charge)
                charge.contract_id, charge.billing_period = contract.id, period
                charge.amount_cents = payment.amount_cents
                if payment.due_date is None:
                    raise CallFailed(f"the gateway's charge {payment.id} has no due date")
                charge.due_date = payment.due_date
                charge.description = (payment.description or charge.description or "")[:500] or None
                charge.payment_url = payment.payment_url or charge.payment_url
                await session.flush()
            return charge
        except IntegrityError:
            continue  # the webhook's row was committed between our look and our insert: complete that one
    raise RuntimeError(f"charge for {source} payment {payment.id} could not be recorded")


BILLING = Routine(
    name="billing",
    title={"pt-BR": "Faturamento mensal", "en": "Monthly billing"},
    item_noun={"pt-BR": "cobranças emitidas", "en": "charges issued"},
    schedule=Monthly(day=1, hour=5),
    plan=_plan,
    work=_work,
    requires=KINDS,
)

