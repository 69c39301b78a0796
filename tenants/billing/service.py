"""Recording what the gateway says about charges and payments (idempotent by the source's ids).

New rows get their ids when they are made, not at flush: the process steps run with autoflush off and
flush once per batch wave, and a caller may need a new charge's id (a payment, a late-payment case)
before that."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus, Payment
from backoffice.tenants.customers.models import Customer


async def upsert_charge(session: AsyncSession, customer: Customer, source: str, data: dict[str, Any]) -> Charge:
    charge = (await session.execute(
        select(Charge).where(Charge.source == source, Charge.external_id == data["external_id"])
    )).scalar_one_or_none()
    due = date.fromisoformat(data["due_date"]) if isinstance(data["due_date"], str) else data["due_date"]
    if charge is None:
        charge = Charge(id=new_id(), customer_id=customer.id, source=source, external_id=data["external_id"],
                        amount_cents=data["amount_cents"], due_date=due, status=ChargeStatus.PENDING,
                        created_at=clock.now())
        session.add(charge)
    charge.amount_cents = data["amount_cents"]
    charge.due_date = due
    charge.description = data.get("description", charge.description)
    charge.payment_url = data.get("payment_url", charge.payment_url)
    return charge


async def record_payment(
    session: AsyncSession, customer: Customer, charge: Charge, source: str, external_id: str, data: dict[str, Any]
) -> Payment:
    payment = (await session.execute(
        select(Payment).where(Payment.source == source, Payment.external_id == external_id)
    )).scalar_one_or_none()
    if payment is None:
        paid_at = datetime.fromisoformat(data["paid_at"]) if isinstance(data["paid_at"], str) else data["paid_at"]
        payment = Payment(id=new_id(), customer_id=customer.id, charge_id=charge.id, amount_cents=data["amount_cents"],
                          method=data.get("method"), paid_at=paid_at, source=source, external_id=external_id,
                          raw=data, created_at=clock.now())
        session.add(payment)
        charge.status = ChargeStatus.PAID
        charge.paid_at = paid_at
    return payment


async def open_charges(session: AsyncSession, customer: Customer) -> list[Charge]:
    query = select(Charge).where(Charge.customer_id == customer.id,
                                 Charge.status.in_([ChargeStatus.PENDING, ChargeStatus.OVERDUE]))
    return list((await session.execute(query)).scalars())


async def customer_contract(session: AsyncSession, customer: Customer, external_id: str | None = None) -> Contract | None:
    """The contract an event speaks of: by the source's id, else the customer's current one."""
    query = select(Contract).where(Contract.customer_id == customer.id)
    if external_id:
        found = (await session.execute(query.where(Contract.external_id == external_id))).scalar_one_or_none()
        if found:
            return found
    query = query.where(Contract.status != ContractStatus.CANCELED).order_by(Contract.created_at.desc())
    return (await session.execute(query.limit(1))).scalar_one_or_none()


async def ensure_contract(session: AsyncSession, customer: Customer, plan: dict[str, Any] | None) -> Contract | None:
    contract = await customer_contract(session, customer)
    if contract is None and plan:
        contract = Contract(id=new_id(), customer_id=customer.id, plan_code=plan["code"], plan_name=plan["name"],
                            price_cents=plan["price_cents"], billing_day=plan.get("billing_day") or 1,
                            status=ContractStatus.PENDING, created_at=clock.now())
        session.add(contract)
    return contract
