"""The app role gets what a tenant's request needs, and nothing of the provider's.

Before: the app role could read ``staff`` (e-mails, password hashes) and ``staff_assignments`` (a table with
``tenant_id`` and no RLS), update any column of its own tenant's row (``status``, ``slug``, ``custom_host``,
``api_key_max_days``) and append audit entries naming any actor, staff and the platform included.

After (PostgreSQL; SQLite has no roles and keeps the application's door as its wall):
- provider tables (``staff``, ``staff_assignments``, ``staff_tokens``) are the system role's only;
  ``staff_assignments`` gets the tenant policy under FORCE RLS as well;
- ``tenants``: the app role reads the registry (a request resolves its tenant by slug or host) and may
  update only the branding columns of its own row, the portal's branding page being the one tenant-side
  change to it; status, slug, host and limits are changed through the system role;
- ``audit_log``: the app role appends entries for its own tenant naming one of the tenant's principals
  (user, SSO, API key, portal visitor); staff, CLI and platform entries need a connection that logged in
  as the system role (``bo_provider_connection()``), which the provider's tenant work now uses
  (``Database.provider``: the system role's connection taking the app role for the transaction, so the
  system role becomes a member of the app role);
- EXECUTE on functions only where a policy needs it; no TEMPORARY on the database, no CREATE on the schema:
  the app role can own nothing, not even a temporary table.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0011"
down_revision: str = "0010"
branch_labels = None
depends_on = None

PROVIDER_TABLES = ("staff", "staff_assignments", "staff_tokens")
# Frozen here as the policy holds it; platform/audit/service.py TENANT_ACTOR_TYPES is the application's copy.
TENANT_ACTOR_TYPES = ("anonymous", "api_key", "sso", "tenant_user")
PRIVATE_DATABASE = """
DO $$ BEGIN
  EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$
"""


def _roles() -> tuple[str, str]:
    return shared.role_names(context.config.attributes["settings"])


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    settings = context.config.attributes["settings"]
    app_role, system_role = _roles()
    op.execute(shared.PROVIDER_CONNECTION_FUNCTION)
    if app_role and system_role and app_role != system_role:
        op.execute(f'GRANT "{app_role}" TO "{system_role}"')

    shared.protect_provider_tables(op, settings, PROVIDER_TABLES)

    if app_role:
        op.execute(f'REVOKE UPDATE ON tenants FROM "{app_role}"')
        columns = ", ".join(shared.TENANT_EDITABLE_COLUMNS)
        op.execute(f'GRANT UPDATE ({columns}) ON tenants TO "{app_role}"')

    for statement in shared.audit_policies_sql(TENANT_ACTOR_TYPES):
        op.execute(statement)

    for statement in shared.lock_down_functions_sql([role for role in (app_role, system_role) if role]):
        op.execute(statement)
    op.execute(PRIVATE_DATABASE)
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def downgrade() -> None:
    # Role membership is cluster-wide, like the roles themselves: it stays. CREATE on the schema is not
    # given back to PUBLIC: PostgreSQL 15 no longer gives it by default either.
    if op.get_bind().dialect.name != "postgresql":
        return
    app_role, _ = _roles()
    op.execute(PRIVATE_DATABASE.replace("REVOKE TEMPORARY", "GRANT TEMPORARY").replace("FROM PUBLIC", "TO PUBLIC"))
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO PUBLIC")
    op.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC")
    op.execute("DROP POLICY IF EXISTS audit_read ON audit_log")
    op.execute("DROP POLICY IF EXISTS audit_append ON audit_log")
    op.execute("CREATE POLICY tenant_isolation ON audit_log "
               "USING (tenant_id = bo_current_tenant()) WITH CHECK (tenant_id = bo_current_tenant())")
    op.execute("DROP FUNCTION IF EXISTS bo_provider_connection()")
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON staff_assignments")
    op.execute("ALTER TABLE staff_assignments NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE staff_assignments DISABLE ROW LEVEL SECURITY")
    if app_role:
        op.execute(f'REVOKE UPDATE ({", ".join(shared.TENANT_EDITABLE_COLUMNS)}) ON tenants FROM "{app_role}"')
        op.execute(shared.grant_sql("tenants", app_role, "UPDATE"))
        op.execute(shared.grant_sql("staff", app_role, "SELECT"))
        op.execute(shared.grant_sql("staff_assignments", app_role, "SELECT"))
