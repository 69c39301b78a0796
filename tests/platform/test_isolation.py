"""Tenant isolation, twice: the application's door (both backends) and PostgreSQL RLS under it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, ProgrammingError

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.session import NotFound, TenantMismatch, get_owned
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.users.models import TenantUser

from backoffice.platform.db.base import TenantOwned
from backoffice.web.entry.models import metadata

# Every tenant-owned table, found from the models, so a new table is covered the day it is added.
TENANT_TABLES = sorted(
    {mapper.local_table.name for mapper in TenantOwned.__subclasses__()[0].registry.mappers
     if issubclass(mapper.class_, TenantOwned)} | {"audit_log"}
)
assert set(TENANT_TABLES) <= set(metadata.tables)


# --- the application's door (PostgreSQL and SQLite) -------------------------------------------------

async def test_tenant_session_sees_only_its_own_rows(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        customers = (await session.execute(select(Customer))).scalars().all()
        users = (await session.execute(select(TenantUser))).scalars().all()
    assert {c.id for c in customers} == set(tenants.a.customer_ids)
    assert {u.tenant_id for u in users} == {tenants.a.id}


async def test_filters_apply_to_joins_counts_and_explicit_foreign_filters(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        count = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
        joined = (await session.execute(
            select(Customer.name, TenantUser.email).join(TenantUser, TenantUser.id == Customer.account_manager_id)
        )).all()
        # Asking for the other tenant by name still returns nothing: the scope is added, not replaced.
        foreign = (await session.execute(select(Customer).where(Customer.tenant_id == tenants.b.id))).all()
    assert count == len(tenants.a.customer_ids)
    assert {email for _, email in joined} == {"admin@alfa.example"}
    assert foreign == []


async def test_another_tenants_id_is_not_found_like_a_missing_one(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(NotFound):
            await get_owned(session, Customer, tenants.b.customer_ids[0])
        with pytest.raises(NotFound):
            await get_owned(session, Customer, uuid.uuid4())
        mine = await get_owned(session, Customer, tenants.a.customer_ids[0])
    assert mine.tenant_id == tenants.a.id


async def test_writing_another_tenants_row_is_refused(database, tenants):
    with pytest.raises(TenantMismatch):
        async with database.tenant(tenants.a.id) as session:
            session.add(Customer(tenant_id=tenants.b.id, name="Intruso", tax_id_kind="cpf", tax_id="11144477735"))
    async with database.tenant(tenants.b.id) as session:
        names = (await session.execute(select(Customer.name))).scalars().all()
    assert "Intruso" not in names


async def test_bulk_update_is_scoped_to_the_tenant(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        await session.execute(update(Customer).values(phone="+55 11 99999-0000"))
    async with database.tenant(tenants.b.id) as session:
        phones = (await session.execute(select(Customer.phone))).scalars().all()
    assert phones and all(phone is None for phone in phones)


async def test_new_rows_are_stamped_with_the_sessions_tenant(database, tenants):
    async with database.tenant(tenants.b.id) as session:
        customer = Customer(name="Nova Cliente", tax_id_kind="cpf", tax_id="39053344705")
        session.add(customer)
    assert customer.tenant_id == tenants.b.id


async def test_session_without_tenant_sees_no_tenant_rows_and_cannot_write_them(database, tenants):
    async with database.anonymous() as session:
        assert (await session.execute(select(Customer))).all() == []
        assert (await session.execute(select(TenantUser))).all() == []
    with pytest.raises(TenantMismatch):
        async with database.anonymous() as session:
            session.add(Customer(tenant_id=tenants.a.id, name="X", tax_id_kind="cpf", tax_id="11144477735"))


# --- PostgreSQL Row-Level Security, as the app role, with raw SQL ----------------------------------

pg = pytest.mark.postgres_only


async def _raw(database, sql: str, params: dict | None = None, *, tenant: uuid.UUID | None = None):
    """Raw SQL on the app role's own connection, bypassing the ORM door entirely."""
    async with database.engine.connect() as connection:
        if tenant is not None:
            await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        result = await connection.execute(text(sql), params or {})
        rows = result.all() if result.returns_rows else result.rowcount
        await connection.commit()
        return rows


@pg
@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_raw_sql_without_tenant_returns_no_rows(database, tenants, table):
    assert await _raw(database, f"SELECT * FROM {table}") == []


@pg
@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_raw_sql_with_a_tenant_returns_only_its_rows(database, tenants, table):
    everything = await _raw_as_owner(database, f"SELECT DISTINCT tenant_id FROM {table}")
    rows = await _raw(database, f"SELECT DISTINCT tenant_id FROM {table}", tenant=tenants.a.id)
    assert {row[0] for row in rows} <= {tenants.a.id}
    if {row[0] for row in everything} >= {tenants.a.id, tenants.b.id}:
        assert [row[0] for row in rows] == [tenants.a.id]


async def _raw_as_owner(database, sql: str):
    async with database.system_engine.connect() as connection:
        return (await connection.execute(text(sql))).all()


@pg
async def test_rls_refuses_reading_updating_deleting_and_inserting_other_tenants_rows(database, tenants):
    b_customer = tenants.b.customer_ids[0]
    assert await _raw(database, "SELECT * FROM customers WHERE id = :id", {"id": b_customer}, tenant=tenants.a.id) == []
    updated = await _raw(database, "UPDATE customers SET name = 'hacked' WHERE id = :id", {"id": b_customer},
                         tenant=tenants.a.id)
    deleted = await _raw(database, "DELETE FROM customers WHERE tenant_id = :b", {"b": tenants.b.id},
                         tenant=tenants.a.id)
    assert (updated, deleted) == (0, 0)
    with pytest.raises(DBAPIError, match="row-level security"):
        await _raw(database, "INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, lifecycle, external_ids,"
                             " created_at, updated_at) VALUES (:b, :id, 'x', 'cpf', '11144477735', 'active', '{}',"
                             " now(), now())", {"b": tenants.b.id, "id": uuid.uuid4()}, tenant=tenants.a.id)
    # WITH CHECK: moving one's own row to another tenant is refused too.
    with pytest.raises(DBAPIError, match="row-level security"):
        await _raw(database, "UPDATE customers SET tenant_id = :b WHERE id = :id",
                   {"b": tenants.b.id, "id": tenants.a.customer_ids[0]}, tenant=tenants.a.id)
    rows = await _raw(database, "SELECT name FROM customers WHERE id = :id", {"id": b_customer}, tenant=tenants.b.id)
    assert rows[0][0] != "hacked"


@pg
async def test_tenant_setting_ends_with_the_transaction_on_a_pooled_connection(database, tenants):
    """Two transactions in a row on the same pooled connection never see each other's tenant."""
    async with database.engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        await connection.commit()
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenants.a.id)})
        first = (await connection.execute(text("SELECT DISTINCT tenant_id FROM customers"))).scalars().all()
        await connection.commit()
        after = (await connection.execute(text("SELECT count(*) FROM customers"))).scalar()
        await connection.commit()
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenants.b.id)})
        second = (await connection.execute(text("SELECT DISTINCT tenant_id FROM customers"))).scalars().all()
        same_pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        await connection.commit()
    assert pid == same_pid
    assert (first, after, second) == ([tenants.a.id], 0, [tenants.b.id])


@pg
async def test_orm_sessions_on_the_same_pooled_connection_switch_tenants_cleanly(database, tenants):
    pids = set()
    for tenant in (tenants.a, tenants.b, tenants.a):
        async with database.tenant(tenant.id) as session:
            pids.add((await session.execute(text("SELECT pg_backend_pid()"))).scalar())
            seen = (await session.execute(text("SELECT DISTINCT tenant_id FROM customers"))).scalars().all()
        assert seen == [tenant.id]
    assert len(pids) == 1  # the pool handed back the same connection each time


@pg
async def test_app_role_owns_nothing_and_cannot_bypass_rls(database):
    role = await _raw(database, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    owned = await _raw(database, "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                                 "WHERE r.rolname = current_user")
    forced = await _raw(database, "SELECT relname FROM pg_class WHERE relname = ANY(:t) AND relrowsecurity "
                                  "AND relforcerowsecurity", {"t": TENANT_TABLES})
    assert role == [(False, False)]
    assert owned[0][0] == 0
    assert sorted(r[0] for r in forced) == sorted(TENANT_TABLES)
    with pytest.raises(DBAPIError):
        await _raw(database, "ALTER TABLE customers DISABLE ROW LEVEL SECURITY")


@pg
async def test_a_plain_set_is_not_how_the_platform_scopes(database, tenants):
    """The door uses set_config(..., true); verify that after a session ends nothing lingers."""
    async with database.tenant(tenants.a.id) as session:
        await session.execute(select(Customer))
    value = await _raw(database, "SELECT current_setting('app.tenant_id', true)")
    assert value[0][0] in (None, "")


@pg
async def test_audit_log_is_append_only_even_for_the_owner(database, tenants, backend):
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(backend.owner_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError, match="append-only"):
                await connection.execute(text("UPDATE audit_log SET reason = 'rewritten'"))
            await connection.rollback()
            with pytest.raises(DBAPIError, match="append-only"):
                await connection.execute(text("DELETE FROM audit_log"))
    finally:
        await engine.dispose()
    with pytest.raises((DBAPIError, ProgrammingError)):
        await _raw(database, "DELETE FROM audit_log", tenant=tenants.a.id)


async def test_tenant_reads_only_its_own_audit_entries(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        entries = (await session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == tenants.a.id))).scalars().all()
    assert entries and {e.tenant_id for e in entries} == {tenants.a.id}
