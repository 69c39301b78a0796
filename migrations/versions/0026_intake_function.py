"""A single event's intake in one round trip (issue 11): ``bo_ingest_event`` sets the tenant for its own
transaction, stores the event and its outbox row (or finds the stored twin) and answers ``(event_id, created)``.

Called as the only statement of an autocommit call, it replaces BEGIN, the tenant's ``set_config``, the insert
and COMMIT: four round trips and an ORM session per request. It runs as the caller (SECURITY INVOKER), so the
tables' row-level security checks every row against the tenant it set, as for any other statement; the
tenant is transaction-local (``set_config(..., true)``) and ends with the call. EXECUTE goes to the app role
only (``platform/db/migrate.py`` ``APP_FUNCTIONS``), like the functions its policies call.

A concurrent twin (same tenant, source and external id) that is still being written makes the insert wait
for it; its row is then read by the next statement, which takes a new snapshot: exactly one row comes back.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0026"
down_revision: str = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(shared.INGEST_EVENT_FUNCTION)
    op.execute(f"REVOKE EXECUTE ON FUNCTION {shared.INGEST_EVENT_SIGNATURE} FROM PUBLIC")
    app_role, _system_role = shared.role_names(context.config.attributes["settings"])
    if app_role:
        op.execute(f'GRANT EXECUTE ON FUNCTION {shared.INGEST_EVENT_SIGNATURE} TO "{app_role}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {shared.INGEST_EVENT_SIGNATURE}")
