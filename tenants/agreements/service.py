"""Proposing a renegotiation (acordo), the one write of the agreements domain.

``propose_agreement`` validates the proposal (every problem named by its field), cancels the replaced
overdue charges at the gateway, creates the instalment plan there, and records in ONE transaction: the
agreement, its instalments (each also a charge, so the gateway's webhooks find it), the replaced charges
(cancelled) with their late-payment cases set to wait on the agreement, the audit entry, and the
``agreement.made`` event whose process step writes the customer's timeline and tells the responsible
people. What follows (instalments paid or missed) arrives as the gateway's payment webhooks and is run by
``tenants/processes/agreements.py``.

The gateway is called inside the request's transaction, before anything is written: a refusal writes
nothing here. Charges cancelled before a refusal of the plan stay cancelled at the gateway, and its
deletion webhooks close them at the platform as for any cancellation (the error says so).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import Collector
from backoffice.tenants.agreements.models import (
    Agreement, AgreementCharge, AgreementInstalment, AgreementStatus, InstalmentStatus,
)
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.billing.ports import PaymentGateway
from backoffice.tenants.connections import CallFailed, Unusable, directory
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.customers.queries import lock_customers
from backoffice.tenants.dunning.agreements import wait_on_agreement
from backoffice.tenants.dunning.models import DunningCase
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.registry.models import Tenant

MAX_INSTALMENTS = 24
EVENT_SOURCE = "agreements"
GATEWAY_KINDS = ("asaas",)  # the gateways whose ports create instalment plans


class GatewayRefused(Exception):
    """The gateway refused (or could not be reached for) a step of the agreement; nothing was written
    here. The message says which step and the gateway's words."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


async def payment_gateway(session: AsyncSession) -> PaymentGateway | None:
    """The tenant's payment gateway (its oldest enabled one), opened; None when it has none usable."""
    found = await directory().connections(session, GATEWAY_KINDS)
    if not found:
        return None
    try:
        return await directory().open(session, found[0])
    except Unusable:
        return None


def _count(value: object) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("expected a number of instalments from 1 to 24") from None
    if not 1 <= number <= MAX_INSTALMENTS:
        raise ValueError("expected a number of instalments from 1 to 24")
    return number


def _first_due(today: date):
    def parse(value: object) -> date:
        if isinstance(value, date):
            day = value
        else:
            try:
                day = date.fromisoformat(str(value).strip())
            except ValueError:
                raise ValueError("expected a date such as 2026-12-20") from None
        if day < today:
            raise ValueError("the first instalment cannot fall due in the past")
        return day
    return parse


def _ids(values: list[object]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            raise ValueError("unknown charge") from None
    if not ids:
        raise ValueError("choose at least one overdue charge")
    return sorted(set(ids))


def tenant_today(tenant: Tenant, now: datetime | None = None) -> date:
    return (now or clock.now()).astimezone(ZoneInfo(tenant.timezone)).date()


async def propose_agreement(
    session: AsyncSession, tenant: Tenant, customer_id: uuid.UUID, *, charge_ids: list[object],
    instalments: object, first_due_date: object, acting: Actor, note: str | None = None,
) -> Agreement:
    """Replace ``charge_ids`` (overdue charges of the customer) by ``instalments`` monthly charges from
    ``first_due_date``. Raises ValidationFailed naming ``charges``, ``instalments``, ``first_due_date``,
    ``customer`` or ``gateway``; GatewayRefused when the gateway refuses."""
    customer = await get_owned(session, Customer, customer_id)
    gateway = await payment_gateway(session)
    errors = Collector()
    count = errors.check("instalments", _count, instalments)
    first_due = errors.check("first_due_date", _first_due(tenant_today(tenant)), first_due_date)
    ids = errors.check("charges", _ids, list(charge_ids))
    if gateway is None:
        errors.add("gateway", "the company has no payment gateway (Asaas) enabled")
    elif not (customer.external_ids or {}).get(gateway.source):
        errors.add("customer", "the customer is not registered at the payment gateway")
    errors.raise_if_any()
    await lock_customers(session, [customer.id])  # one customer's changes at a time, with its process steps
    charges = list((await session.execute(select(Charge).where(Charge.id.in_(ids)))).scalars())
    taken = set((await session.execute(select(AgreementCharge.charge_id).where(
        AgreementCharge.charge_id.in_(ids)))).scalars())
    usable = [c for c in charges if c.customer_id == customer.id and c.status == ChargeStatus.OVERDUE
              and c.source == gateway.source and c.id not in taken]
    if len(usable) != len(ids):
        errors.add("charges", "only this customer's overdue gateway charges that no other agreement took")
        errors.raise_if_any()
    total = sum(c.amount_cents for c in usable)
    agreement_id = new_id()
    step = "cancelling the overdue charges"
    try:
        for charge in usable:
            await gateway.cancel_charge(charge.external_id)
        step = "creating the instalments"
        reference = f"agreement:{agreement_id}"
        description = f"Acordo de renegociação ({count} parcela{'s' if count > 1 else ''})"
        if count == 1:  # one payment, not a plan of one (Asaas plans have two or more instalments)
            single = await gateway.find_charge(external_reference=reference) or await gateway.create_charge(
                customer=customer.external_ids[gateway.source], amount_cents=total, due_date=first_due,
                description=description, external_reference=reference)
            plan, created = None, [single]
        else:
            plan, created = await gateway.create_instalments(
                customer=customer.external_ids[gateway.source], total_cents=total, count=count, first_due=first_due,
                description=description, external_reference=reference)
    except CallFailed as error:
        raise GatewayRefused(f"{step} at the gateway: {error}", retryable=error.retryable) from None
    now = clock.now()
    agreement = Agreement(id=agreement_id, customer_id=customer.id, status=AgreementStatus.PROPOSED,
                          source=gateway.source, installment_ref=plan, instalment_count=len(created),
                          total_cents=total, first_due_date=first_due, proposed_by=acting.label[:254],
                          proposed_at=now, note=(note or "").strip()[:500] or None)
    session.add(agreement)
    charges_made = []
    for number, part in enumerate(created, start=1):
        charges_made.append(Charge(
            id=new_id(), customer_id=customer.id, amount_cents=part.amount_cents, due_date=part.due_date,
            description=f"Acordo: parcela {number} de {len(created)}", status=ChargeStatus.PENDING,
            source=gateway.source, external_id=part.id, payment_url=part.payment_url, created_at=now))
    session.add_all(charges_made)
    await session.flush()  # the agreement and the new charges before the rows that point at them
    cases = list((await session.execute(select(DunningCase).where(DunningCase.charge_id.in_(ids)))).scalars())
    case_of = {case.charge_id: case.id for case in cases}
    for charge in usable:
        charge.status = ChargeStatus.CANCELED
        session.add(AgreementCharge(agreement_id=agreement_id, charge_id=charge.id, case_id=case_of.get(charge.id),
                                    amount_cents=charge.amount_cents))
    for number, (part, charge) in enumerate(zip(created, charges_made, strict=True), start=1):
        session.add(AgreementInstalment(agreement_id=agreement_id, number=number, charge_id=charge.id,
                                        amount_cents=part.amount_cents, due_date=part.due_date,
                                        status=InstalmentStatus.PENDING))
    await wait_on_agreement(session, tenant.id, cases)
    await session.flush()
    await record(session, actor=acting, action="agreement.propose", target_type="customer", target_id=customer.id,
                 tenant_id=tenant.id, reason=agreement.note,
                 detail={"agreement_id": str(agreement_id), "charges": [c.external_id for c in usable],
                         "instalments": [p.id for p in created], "total_cents": total,
                         "first_due_date": first_due.isoformat()})
    await ingest(session, tenant.id, {
        "type": "agreement.made", "source": EVENT_SOURCE, "external_id": f"{agreement_id}:made",
        "customer": {"id": str(customer.id)}, "data": {"agreement_id": str(agreement_id)}})
    return agreement
