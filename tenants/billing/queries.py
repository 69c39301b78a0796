"""Reads of a tenant's contracts and charges: the statements the API pages through, and the overdue amounts
the portal's dashboard ages (through the tenant's session, so that tenant's only)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus


def contracts_query(*, status: ContractStatus | None = None, customer_id: uuid.UUID | None = None) -> Select:
    query = select(Contract)
    if status is not None:
        query = query.where(Contract.status == status)
    if customer_id is not None:
        query = query.where(Contract.customer_id == customer_id)
    return query


def charges_query(*, status: ChargeStatus | None = None, customer_id: uuid.UUID | None = None) -> Select:
    query = select(Charge)
    if status is not None:
        query = query.where(Charge.status == status)
    if customer_id is not None:
        query = query.where(Charge.customer_id == customer_id)
    return query


async def overdue_amounts(session: AsyncSession) -> list[tuple[date, int]]:
    """(due date, amount in cents) of every overdue charge."""
    rows = await session.execute(select(Charge.due_date, Charge.amount_cents).where(Charge.status == ChargeStatus.OVERDUE))
    return [(due, cents) for due, cents in rows.all()]


__all__ = ["charges_query", "contracts_query", "overdue_amounts"]
