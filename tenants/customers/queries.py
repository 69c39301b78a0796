"""Reads of customers that the hot path makes: many subjects resolved in a few statements.

An event names its customer by our id, by the id a provider gave it (``external_ids[source]``) or by
CPF/CNPJ. A batch of events resolves all of its subjects with at most one statement per kind. The
provider's ids are looked up in ``customer_external_ids`` (kept by triggers, migration 0009) by index;
a lookup into the JSON column read every customer of the tenant (9–10 ms with 60,000 customers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.customers.models import Customer, CustomerExternalId


async def customers_by_ids(session: AsyncSession, ids: Iterable[uuid.UUID], *, fresh: bool = False
                           ) -> dict[uuid.UUID, Customer]:
    """``fresh``: overwrite what the session holds of them (after a rolled-back savepoint)."""
    ids = set(ids)
    if not ids:
        return {}
    query = select(Customer).where(Customer.id.in_(ids))
    rows = await session.execute(query.execution_options(populate_existing=True) if fresh else query)
    return {customer.id: customer for customer in rows.scalars()}


async def customers_by_external_ids(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Customer]:
    """``(source, external id)`` -> the customer known by it (the earliest, should two claim it)."""
    pairs = sorted(set(pairs))
    if not pairs:
        return {}
    query = (select(Customer, CustomerExternalId.source, CustomerExternalId.external_id)
             .join(CustomerExternalId, and_(CustomerExternalId.tenant_id == Customer.tenant_id,
                                            CustomerExternalId.customer_id == Customer.id))
             .where(tuple_(CustomerExternalId.source, CustomerExternalId.external_id).in_(pairs))
             .order_by(Customer.created_at, Customer.id))
    found: dict[tuple[str, str], Customer] = {}
    for customer, source, external_id in (await session.execute(query)).all():
        found.setdefault((source, external_id), customer)
    return found


async def customers_by_tax_ids(session: AsyncSession, numbers: Iterable[str]) -> dict[str, Customer]:
    numbers = set(numbers)
    if not numbers:
        return {}
    rows = await session.execute(select(Customer).where(Customer.tax_id.in_(numbers)))
    return {customer.tax_id: customer for customer in rows.scalars()}


async def lock_customers(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """Lock the customers in id order, in one statement: one customer's events are processed one at a time
    (a payment and a grace deadline racing on two workers would otherwise both read the case "in grace"),
    and two batches locking in the same order cannot deadlock. Reloads them: a row changed since it was
    read is seen as it is now."""
    ids = sorted(set(ids))
    if not ids:
        return
    query = (select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update()
             .execution_options(populate_existing=True))
    await session.execute(query)


__all__ = ["customers_by_external_ids", "customers_by_ids", "customers_by_tax_ids", "lock_customers"]
