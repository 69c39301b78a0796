"""Running Alembic from code, as the schema owner, and the SQL that later migrations share.

Role model on PostgreSQL (see README, "Tenant isolation"):
- the owner runs migrations and owns every table;
- the app role (``BACKOFFICE_DATABASE_URL``) owns nothing, has no BYPASSRLS, and meets
  ``FORCE ROW LEVEL SECURITY`` policies keyed on ``app.tenant_id``;
- the system role (``BACKOFFICE_SYSTEM_DATABASE_URL``) has BYPASSRLS for the relay, the scheduler and
  the provider's cross-tenant views.
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


def grant_sql(table: str, role: str, privileges: str) -> str:
    return f'GRANT {privileges} ON "{table}" TO "{role}"'
