"""Running Alembic from code, as the schema owner, and the SQL that later migrations share.

Role model on PostgreSQL (see README, "Tenant isolation"):
- the owner runs migrations and owns every table;
- the app role (``BACKOFFICE_DATABASE_URL``) owns nothing, has no BYPASSRLS, and meets
  ``FORCE ROW LEVEL SECURITY`` policies keyed on ``app.tenant_id``;
- the system role (``BACKOFFICE_SYSTEM_DATABASE_URL``) has BYPASSRLS for the relay, the scheduler and
  the provider's cross-tenant views, and is a member of the app role: the provider's work in one tenant
  (``Database.provider``) takes the app role for its transaction, under RLS.

The app role gets what a tenant's request needs and nothing else (migration 0011): DML on tenant tables
(``protect_tenant_tables``, the one path every tenant table goes through), reading the tenant registry and
changing its own tenant's branding columns, reading and appending its own tenant's audit entries naming
its own principals, and EXECUTE on the functions its policies call. Provider tables (staff, assignments,
staff tokens) go through ``protect_provider_tables``: the system role only.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from backoffice.platform.db.session import ensure_sqlite_dir
from backoffice.platform.settings import Settings




def _migrations_dir() -> Path:
    import backoffice.migrations

    return Path(backoffice.migrations.__file__).parent


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    config.set_main_option("sqlalchemy.url", settings.migration_database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "heads") -> None:
    ensure_sqlite_dir(settings.migration_database_url)
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def role_names(settings: Settings) -> tuple[str, str]:
    """(app role, system role) as named in their URLs."""
    app = make_url(settings.database_url).username or ""
    system = make_url(settings.system_database_url).username or ""
    owner = make_url(settings.migration_database_url).username or ""
    if app and app in (owner,):
        raise RuntimeError(
            "BACKOFFICE_DATABASE_URL must connect as a role that owns nothing; it names the migration owner"
        )
    return app, system


# --- SQL shared by migrations (PostgreSQL only) -------------------------------------------------------

CURRENT_TENANT_FUNCTION = """
CREATE OR REPLACE FUNCTION bo_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$
"""


def ensure_role_sql(role: str, *, bypass_rls: bool) -> str:
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE " + ("BYPASSRLS" if bypass_rls else "NOBYPASSRLS")
    return f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE "{role}" {attributes};
  END IF;
END $$
"""


# True on a connection that logged in as a BYPASSRLS role (the system role), also after it took the app
# role with SET LOCAL ROLE; ``session_user`` cannot be changed by a non-superuser, so the app role's own
# connections are never the provider's.
PROVIDER_CONNECTION_FUNCTION = """
CREATE OR REPLACE FUNCTION bo_provider_connection() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT coalesce((SELECT rolbypassrls FROM pg_roles WHERE rolname = session_user), false) $$
"""

# Functions a policy calls run as the querying role, which needs EXECUTE on them.
POLICY_FUNCTIONS = ("bo_current_tenant()", "bo_provider_connection()")

# A single event's intake in one round trip (migration 0026): the event, its outbox row, the tenant set for the
# call's own transaction. SECURITY INVOKER: row-level security checks its rows as any statement's.
INGEST_EVENT_SIGNATURE = ("bo_ingest_event(uuid,uuid,character varying,character varying,character varying,"
                          "timestamp with time zone,timestamp with time zone,json,json,uuid,character varying,json)")
INGEST_EVENT_FUNCTION = """
CREATE OR REPLACE FUNCTION bo_ingest_event(
    p_tenant uuid, p_id uuid, p_type varchar, p_source varchar, p_external_id varchar, p_occurred_at timestamptz,
    p_received_at timestamptz, p_subject json, p_data json, p_outbox_id uuid, p_job varchar, p_payload json,
    OUT event_id uuid, OUT created boolean)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    INSERT INTO events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data, status)
    VALUES (p_tenant, p_id, p_type, p_source, p_external_id, p_occurred_at, p_received_at, p_subject, p_data,
            'pending')
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id INTO event_id;
    IF event_id IS NOT NULL THEN
        INSERT INTO outbox (tenant_id, id, job, payload, created_at, available_at, attempts)
        VALUES (p_tenant, p_outbox_id, p_job, p_payload, p_received_at, p_received_at, 0);
        created := true;
        RETURN;
    END IF;
    SELECT e.id INTO event_id FROM events e
    WHERE e.tenant_id = p_tenant AND e.source = p_source AND e.external_id = p_external_id;
    created := false;
END $$
"""

# What the app role may execute: nothing else is granted (tests/platform/test_database_privileges.py).
APP_FUNCTIONS = (*POLICY_FUNCTIONS, INGEST_EVENT_SIGNATURE)

# Columns of ``tenants`` a tenant admin changes from the portal (branding); the rest is the provider's.
TENANT_EDITABLE_COLUMNS = ("branding", "logo", "logo_content_type", "updated_at")


def tenant_rls_sql(table: str) -> list[str]:
    """FORCE RLS with one policy: rows of the transaction's tenant, nothing when none is set."""
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"',
        f'CREATE POLICY tenant_isolation ON "{table}" '
        f"USING (tenant_id = bo_current_tenant()) WITH CHECK (tenant_id = bo_current_tenant())",
    ]


def protect_tenant_tables(op, settings: Settings, tables) -> None:
    """For each new tenant-owned table: FORCE RLS with the tenant policy, and DML grants to the app and
    system roles. PostgreSQL only (SQLite has no RLS; the application's door is its wall)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    roles = [role for role in role_names(settings) if role]
    for table in tables:
        for statement in tenant_rls_sql(table):
            op.execute(statement)
        for role in roles:
            op.execute(grant_sql(table, role, "SELECT, INSERT, UPDATE, DELETE"))


def protect_provider_tables(op, settings: Settings, tables) -> None:
    """For each provider table: reachable by the system role only. A table that carries ``tenant_id`` gets
    the tenant policy too (FORCE RLS), so a grant added by mistake later would still be walled."""
    if op.get_bind().dialect.name != "postgresql":
        return
    app_role, system_role = role_names(settings)
    columns = {row[0] for row in op.get_bind().exec_driver_sql(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND column_name = 'tenant_id'")}
    for table in tables:
        if table in columns:
            for statement in tenant_rls_sql(table):
                op.execute(statement)
        op.execute(f'REVOKE ALL ON "{table}" FROM PUBLIC')
        if app_role:
            op.execute(f'REVOKE ALL ON "{table}" FROM "{app_role}"')
        if system_role:
            op.execute(grant_sql(table, system_role, "SELECT, INSERT, UPDATE, DELETE"))


def audit_policies_sql(tenant_actor_types) -> list[str]:
    """A tenant context reads its own entries; it appends entries for its own tenant only, and names one of
    its own principals unless the connection is the provider's (``bo_provider_connection``)."""
    types = ", ".join(f"'{kind}'" for kind in sorted(tenant_actor_types))
    return [
        "DROP POLICY IF EXISTS tenant_isolation ON audit_log",
        "DROP POLICY IF EXISTS audit_read ON audit_log",
        "DROP POLICY IF EXISTS audit_append ON audit_log",
        "CREATE POLICY audit_read ON audit_log FOR SELECT USING (tenant_id = bo_current_tenant())",
        "CREATE POLICY audit_append ON audit_log FOR INSERT WITH CHECK (tenant_id = bo_current_tenant() "
        f"AND (actor_type IN ({types}) OR bo_provider_connection()))",
    ]


def lock_down_functions_sql(roles) -> list[str]:
    """EXECUTE on this schema's functions only where a policy needs it, now and for functions to come.
    Trigger functions need no EXECUTE grant: PostgreSQL checks it when the trigger is created, not fired."""
    statements = [
        "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
    ]
    for role in roles:
        statements.append(f'REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM "{role}"')
        statements += [f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"' for function in POLICY_FUNCTIONS]
    return statements


def grant_sql(table: str, role: str, privileges: str) -> str:
    return f'GRANT {privileges} ON "{table}" TO "{role}"'
