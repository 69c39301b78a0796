"""Least privilege, read from the catalogue: what the app role (a tenant's request) may reach on PostgreSQL.

The app role gets what a tenant-scoped request needs: the tenant tables under forced RLS, the registry to
resolve its tenant, its own tenant's branding columns, its own audit entries naming its own principals.
Provider tables are the system role's. The rules are read from pg_catalog, so a table added tomorrow is
held to them the day it is added; the attempts are made as the app role with raw SQL, past the ORM door.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backoffice.platform.audit.service import TENANT_ACTOR_TYPES, Actor, ProviderActorInTenantRequest, record
from backoffice.platform.db.migrate import APP_FUNCTIONS, TENANT_EDITABLE_COLUMNS
from backoffice.platform.db.session import TenantMismatch
from tests.conftest import APP_ROLE, SYSTEM_ROLE

pg = pytest.mark.postgres_only

# Tables without tenant_id that a tenant's request still reads: the registry it resolves its tenant in.
SHARED_TABLES = {"tenants"}
PROVIDER_ACTORS = ("staff", "system", "cli")


async def _raw(database, sql: str, params: dict | None = None, *, tenant: uuid.UUID | None = None):
    """Raw SQL on the app role's own connection, in one transaction, past the ORM door."""
    async with database.engine.connect() as connection:
        if tenant is not None:
            await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        result = await connection.execute(text(sql), params or {})
        rows = result.all() if result.returns_rows else result.rowcount
        await connection.commit()
        return rows


async def _catalogue(database, sql: str, params: dict | None = None) -> list:
    return await _raw(database, sql, {"role": APP_ROLE, **(params or {})})


TABLES = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) AS has_tenant
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""


def _audit_insert(tenant_id: uuid.UUID, actor_type: str) -> tuple[str, dict]:
    return (
        "INSERT INTO audit_log (id, occurred_at, tenant_id, actor_type, actor_id, actor_label, action, target_type,"
        " detail) VALUES (:id, now(), :tenant, :type, 'x', 'forged', 'tenant.suspended', 'tenant', '{}')",
        {"id": uuid.uuid4(), "tenant": tenant_id, "type": actor_type},
    )


@pg
async def test_every_table_with_tenant_id_has_forced_row_level_security(database):
    tables = await _catalogue(database, TABLES)
    assert any(row.relname == "staff_assignments" and row.has_tenant for row in tables)
    unwalled = sorted(row.relname for row in tables
                      if row.has_tenant and not (row.relrowsecurity and row.relforcerowsecurity))
    assert unwalled == []


@pg
async def test_the_app_role_owns_nothing_and_can_create_nothing_to_own(database):
    owned = await _catalogue(database, """
        SELECT 'relation ' || relname FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = :role)
        UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles WHERE rolname = :role)
        UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = (SELECT oid FROM pg_roles WHERE rolname = :role)
        UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
                  WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = :role)
        UNION ALL SELECT 'database ' || datname FROM pg_database
                  WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = :role)""")
    assert owned == []
    [(temporary, create_in_schema, create_in_database)] = await _catalogue(database, """
        SELECT has_database_privilege(:role, current_database(), 'TEMPORARY'),
               has_schema_privilege(:role, 'public', 'CREATE'),
               has_database_privilege(:role, current_database(), 'CREATE')""")
    assert (temporary, create_in_schema, create_in_database) == (False, False, False)
    with pytest.raises(DBAPIError, match="permission denied"):
        await _raw(database, "CREATE TEMPORARY TABLE mine (x int)")


@pg
async def test_the_app_role_has_no_privilege_on_provider_tables(database, tenants):
    tables = await _catalogue(database, TABLES)
    provider = sorted(row.relname for row in tables if not row.has_tenant and row.relname not in SHARED_TABLES)
    assert {"staff", "staff_tokens"} <= set(provider)
    provider.append("staff_assignments")  # it carries tenant_id, but no tenant's request needs it
    granted = await _catalogue(database, """
        SELECT t, p FROM unnest(CAST(:tables AS text[])) AS t,
               unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
        WHERE has_table_privilege(:role, quote_ident(t), p)""", {"tables": provider})
    assert granted == []
    for table in ("staff", "staff_assignments", "staff_tokens"):
        with pytest.raises(DBAPIError, match="permission denied"):
            await _raw(database, f"SELECT * FROM {table}", tenant=tenants.a.id)


@pg
async def test_the_app_role_executes_only_the_functions_its_policies_and_intake_call(database):
    executable = await _catalogue(database, """
        SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND has_function_privilege(:role, p.oid, 'EXECUTE')""")
    assert sorted(row[0] for row in executable) == sorted(APP_FUNCTIONS)
    sequences = await _catalogue(database, """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S'
          AND (has_sequence_privilege(:role, c.oid, 'USAGE') OR has_sequence_privilege(:role, c.oid, 'UPDATE'))""")
    assert sequences == []


@pg
async def test_the_app_role_changes_only_its_own_tenants_branding(database, tenants):
    columns = await _catalogue(database, """
        SELECT column_name, has_column_privilege(:role, 'tenants', column_name, 'UPDATE')
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'tenants'""")
    assert sorted(name for name, allowed in columns if allowed) == sorted(TENANT_EDITABLE_COLUMNS)
    for column, value in (("status", "'suspended'"), ("slug", "'taken'"), ("custom_host", "'evil.example'"),
                          ("api_key_max_days", "NULL")):
        with pytest.raises(DBAPIError, match="permission denied"):
            await _raw(database, f"UPDATE tenants SET {column} = {value} WHERE id = :id", {"id": tenants.a.id},
                       tenant=tenants.a.id)
    # What the portal's branding page does still works, for its own row only.
    changed = await _raw(database, "UPDATE tenants SET branding = '{\"primary\": \"#112233\"}', updated_at = now() "
                                   "WHERE id IN (:a, :b)", {"a": tenants.a.id, "b": tenants.b.id}, tenant=tenants.a.id)
    assert changed == 1


@pg
async def test_the_app_role_appends_audit_entries_for_its_own_tenant_and_principals_only(database, tenants):
    for actor_type in sorted(TENANT_ACTOR_TYPES):
        sql, params = _audit_insert(tenants.a.id, actor_type)
        assert await _raw(database, sql, params, tenant=tenants.a.id) == 1
    sql, params = _audit_insert(tenants.b.id, "tenant_user")
    with pytest.raises(DBAPIError, match="row-level security"):
        await _raw(database, sql, params, tenant=tenants.a.id)
    for actor_type in PROVIDER_ACTORS:
        sql, params = _audit_insert(tenants.a.id, actor_type)
        with pytest.raises(DBAPIError, match="row-level security"):
            await _raw(database, sql, params, tenant=tenants.a.id)
    # Taking another role to look like the provider's connection is not open to it either.
    with pytest.raises(DBAPIError, match="permission denied"):
        await _raw(database, "SELECT set_config('role', 'backoffice_system', true)")


@pg
async def test_the_providers_tenant_door_is_walled_by_rls_and_may_name_provider_actors(database, tenants):
    async with database.provider(tenants.a.id) as session:
        [(role, login)] = (await session.execute(text("SELECT current_user, session_user"))).all()
        seen = (await session.execute(text("SELECT DISTINCT tenant_id FROM customers"))).scalars().all()
        sql, params = _audit_insert(tenants.a.id, "staff")
        await session.execute(text(sql), params)
    assert (role, login, seen) == (APP_ROLE, SYSTEM_ROLE, [tenants.a.id])
    with pytest.raises(DBAPIError, match="row-level security"):
        async with database.provider(tenants.a.id) as session:
            sql, params = _audit_insert(tenants.b.id, "staff")
            await session.execute(text(sql), params)
    with pytest.raises(DBAPIError, match="permission denied"):
        async with database.provider(tenants.a.id) as session:
            await session.execute(text("SELECT email FROM staff"))
    # The role ends with the transaction: the pooled connection is the system role's again.
    async with database.system_engine.connect() as connection:
        assert (await connection.execute(text("SELECT current_user = session_user"))).scalar() is True


# --- the same rule at the application's door (PostgreSQL and SQLite) --------------------------------

async def test_a_tenants_request_session_cannot_record_a_provider_actor(database, tenants):
    for actor in (Actor(type="staff", label="ana@provider.example", id="ana"), Actor.system(), Actor.cli()):
        with pytest.raises(ProviderActorInTenantRequest):
            async with database.tenant(tenants.a.id) as session:
                await record(session, actor=actor, action="tenant.suspended", target_type="tenant",
                             target_id=tenants.a.id, tenant_id=tenants.a.id)
    with pytest.raises(TenantMismatch):
        async with database.tenant(tenants.a.id) as session:
            await record(session, actor=Actor(type="tenant_user", label="admin@alfa.example"), action="x",
                         target_type="tenant", target_id=None, tenant_id=tenants.b.id)
    async with database.provider(tenants.a.id) as session:
        entry = await record(session, actor=Actor.system(), action="x", target_type="tenant", target_id=None,
                             tenant_id=tenants.a.id)
    assert entry.actor_type == "system"
