"""Resolving many customers at once by a provider's id: kept true by the database's triggers, per tenant."""

from __future__ import annotations

from sqlalchemy import select

from backoffice.tenants.customers.models import Customer, CustomerExternalId
from backoffice.tenants.customers.queries import customers_by_external_ids


async def _add(database, tenant_id, name: str, tax_id: str, external: dict) -> Customer:
    async with database.tenant(tenant_id) as session:
        customer = Customer(name=name, tax_id_kind="cpf", tax_id=tax_id, external_ids=external)
        session.add(customer)
    return customer


async def test_a_providers_id_finds_the_customer_and_follows_changes(database, tenants):
    a, b = tenants.a, tenants.b
    mine = await _add(database, a.id, "Cliente A", "39053344705", {"asaas": "cus_1", "stripe": "cus_S"})
    theirs = await _add(database, b.id, "Cliente B", "39053344705", {"asaas": "cus_1"})
    async with database.tenant(a.id) as session:
        found = await customers_by_external_ids(session, [("asaas", "cus_1"), ("stripe", "cus_S"), ("asaas", "nope")])
    assert {key: c.id for key, c in found.items()} == {("asaas", "cus_1"): mine.id, ("stripe", "cus_S"): mine.id}
    async with database.tenant(b.id) as session:
        found = await customers_by_external_ids(session, [("asaas", "cus_1"), ("stripe", "cus_S")])
    assert {key: c.id for key, c in found.items()} == {("asaas", "cus_1"): theirs.id}

    async with database.tenant(a.id) as session:  # the gateway's id changes: the old one no longer names it
        customer = await session.get(Customer, (a.id, mine.id))
        customer.external_ids = {"asaas": "cus_2"}
    async with database.tenant(a.id) as session:
        found = await customers_by_external_ids(session, [("asaas", "cus_1"), ("asaas", "cus_2"), ("stripe", "cus_S")])
        rows = (await session.execute(select(CustomerExternalId.source, CustomerExternalId.external_id))).all()
    assert {key: c.id for key, c in found.items()} == {("asaas", "cus_2"): mine.id}
    assert rows == [("asaas", "cus_2")]  # tenant A's rows only, and only the current one
