"""The Citus path cannot rot: deploy/citus/distribute.sql is what the migrated catalogue says it must be, and
every key of a tenant table meets the condition Citus puts on a table distributed by tenant_id."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backoffice.platform.db.citus import (
    CROSS_TENANT_INDEXES, LOCAL_TABLES, PROVIDER_TABLES_WITH_TENANT, distribute_sql, read_layout,
)

pytestmark = pytest.mark.postgres_only
SQL_FILE = Path(__file__).parents[2] / "deploy" / "citus" / "distribute.sql"


async def _layout(backend, *statements: str):
    """The layout of the migrated database; statements run first in the same transaction, rolled back."""
    engine = create_async_engine(backend.owner_url)
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
            layout = await read_layout(connection)
            await connection.rollback()
            columns = (await connection.execute(text(
                "SELECT table_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name = 'tenant_id'"))).all()
            indexes = set((await connection.execute(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))).scalars())
        return layout, dict(columns), indexes
    finally:
        await engine.dispose()


async def test_every_key_of_a_distributed_table_includes_tenant_id(database, backend):
    layout, _, _ = await _layout(backend)
    assert "customers" in layout.distributed and "outbox" in layout.distributed
    assert layout.violations() == []


async def test_the_sql_file_is_the_one_the_catalogue_generates(database, backend):
    layout, _, _ = await _layout(backend)
    assert SQL_FILE.read_text() == distribute_sql(layout), (
        "deploy/citus/distribute.sql is stale: regenerate it with "
        "`python -m backoffice.platform.db.citus > deploy/citus/distribute.sql` against a migrated database")


async def test_the_file_names_exactly_the_tenant_and_provider_tables_of_the_catalogue(database, backend):
    layout, tenant_columns, indexes = await _layout(backend)
    sql = SQL_FILE.read_text()
    distributed = {line.split("'")[1] for line in sql.splitlines() if "create_distributed_table(" in line}
    reference = {line.split("'")[1] for line in sql.splitlines() if "create_reference_table(" in line}
    local = {line.split("'")[1] for line in sql.splitlines() if "citus_add_local_table_to_metadata(" in line}
    assert distributed == set(tenant_columns) - PROVIDER_TABLES_WITH_TENANT - set(LOCAL_TABLES)
    assert local == set(LOCAL_TABLES) and all(tenant_columns[table] == "YES" for table in local), (
        "a local table's tenant_id became NOT NULL: distribute it instead")
    assert {"tenants", "staff", "staff_assignments"} <= reference
    assert reference & set(tenant_columns) == PROVIDER_TABLES_WITH_TENANT
    assert CROSS_TENANT_INDEXES <= indexes, "a listed cross-tenant index no longer exists: drop it from the list"


async def test_a_key_without_tenant_id_is_caught(database, backend):
    layout, _, _ = await _layout(
        backend,
        "ALTER TABLE customers ADD CONSTRAINT uq_customers_id_only UNIQUE (id)",
        "ALTER TABLE charges ADD CONSTRAINT fk_charges_customer_only FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "CREATE INDEX ix_charges_amount_only ON charges (amount_cents)",
        # a foreign key to a reference table may name any column: not a violation
        "ALTER TABLE charges ADD COLUMN approver_id uuid CONSTRAINT fk_charges_approver REFERENCES staff (id)",
    )
    assert sorted(layout.violations()) == [  # sorted here: the database orders by its collation
        "charges.fk_charges_customer_only (f) does not include tenant_id",
        "charges.ix_charges_amount_only (i) does not include tenant_id",
        "customers.uq_customers_id_only (U) does not include tenant_id",
        "customers.uq_customers_id_only (u) does not include tenant_id",
    ]
