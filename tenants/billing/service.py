"""Recording what the gateway says about charges and payments (idempotent by the source's ids).

New rows get their ids when they are made, not at flush: the process steps run with autoflush off and
flush once per batch wave, and a caller may need a new charge's id (a payment, a late-payment case)
before that."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus, Payment
from backoffice.tenants.customers.models import Customer


@dataclass
class SessionLookups:
    """How the functions below find existing rows: a query each. A process batch passes its own
    (``tenants/processes/known.py``), which answers from rows read for the whole batch and is told of
    every row created here."""

    session: AsyncSession

    async def charge(self, source: str, external_id: str) -> Charge | None:
        query = select(Charge).where(Charge.source == source, Charge.external_id == external_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def payment(self, source: str, external_id: str) -> Payment | None:
        query = select(Payment).where(Payment.source == source, Payment.external_id == external_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def contracts(self, customer: Customer) -> list[Contract]:
        query = select(Contract).where(Contract.customer_id == customer.id)
        return list((await self.session.execute(query)).scalars())

    def add(self, row: Any) -> None:
        """A row was created: nothing to remember when every lookup is a query."""


async def upsert_charge(session: AsyncSession, customer: Customer, source: str, data: dict[str, Any], *,
                        known: SessionLookups | None = None) -> Charge:
    known = known or SessionLookups(session)
    source = data.get("source") or source  # a charge named with its issuer (the sweep's) is that issuer's
    charge = await known.charge(source, data["external_id"])
    due = date.fromisoformat(data["due_date"]) if isinstance(data["due_date"], str) else data["due_date"]
    if charge is None:
        charge = Charge(id=new_id(), customer_id=customer.id, source=source, external_id=data["external_id"],
                        amount_cents=data["amount_cents"], due_date=due, status=ChargeStatus.PENDING,
                        created_at=clock.now())
        session.add(charge)
        known.add(charge)
    charge.amount_cents = data["amount_cents"]
    charge.due_date = due
    charge.description = data.get("description", charge.description)
    charge.payment_url = data.get("payment_url", charge.payment_url)
    charge.billing_type = data.get("billing_type", charge.billing_type)
    charge.boleto_url = data.get("boleto_url", charge.boleto_url)
    charge.pix_payload = data.get("pix_payload", charge.pix_payload)
    charge.boleto_line = data.get("boleto_line", charge.boleto_line)
    return charge


async def record_payment(
    session: AsyncSession, customer: Customer, charge: Charge, source: str, external_id: str, data: dict[str, Any],
    *, known: SessionLookups | None = None,
) -> Payment:
    known = known or SessionLookups(session)
    payment = await known.payment(source, external_id)
    if payment is None:
        paid_at = datetime.fromisoformat(data["paid_at"]) if isinstance(data["paid_at"], str) else data["paid_at"]
        payment = Payment(id=new_id(), customer_id=customer.id, charge_id=charge.id, amount_cents=data["amount_cents"],
                          method=data.get("method"), paid_at=paid_at, source=source, external_id=external_id,
                          raw=data, created_at=clock.now())
        session.add(payment)
        known.add(payment)
        charge.status = ChargeStatus.PAID
        charge.paid_at = paid_at
    return payment


def current_contract(contracts: list[Contract], external_id: str | None = None) -> Contract | None:
    """The contract an event speaks of: by the source's id, else the customer's latest not canceled."""
    if external_id:
        for contract in contracts:
            if contract.external_id == external_id:
                return contract
    live = [c for c in contracts if c.status != ContractStatus.CANCELED]
    return max(live, key=lambda c: (c.created_at, c.id), default=None)


async def customer_contract(session: AsyncSession, customer: Customer, external_id: str | None = None, *,
                            known: SessionLookups | None = None) -> Contract | None:
    return current_contract(await (known or SessionLookups(session)).contracts(customer), external_id)


async def ensure_contract(session: AsyncSession, customer: Customer, plan: dict[str, Any] | None, *,
                          known: SessionLookups | None = None) -> Contract | None:
    known = known or SessionLookups(session)
    contract = await customer_contract(session, customer, known=known)
    if contract is None and plan:
        contract = Contract(id=new_id(), customer_id=customer.id, plan_code=plan["code"], plan_name=plan["name"],
                            price_cents=plan["price_cents"], billing_day=plan.get("billing_day") or 1,
                            status=ContractStatus.PENDING, created_at=clock.now())
        session.add(contract)
        known.add(contract)
    return contract
