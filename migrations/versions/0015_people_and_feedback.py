"""The staff console's people board, feedback inbox and audit log.

- ``routine_runs.handled_by``: the staff member who follows a run up (who started it, until a hand-over
  moves it); filled from ``requested_by`` where that names a staff member's e-mail.
- ``feedback_items``: each note or feedback the front office records on a customer, with its read /
  acknowledged state and its replies; tenant data under the tenant policy (FORCE RLS). Filled from the notes
  already on timelines, unread.
- ``ix_audit_log_time``: the audit log newest first across tenants (a provider admin's view, the CSV export).

The backfills run as the migration owner before the new table is protected; on a deployment whose owner is
not a superuser, FORCE RLS on ``routine_runs`` leaves earlier runs without a handler (nothing else changes).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared
from backoffice.platform.db.base import UTCDateTime

revision: str = "0015"
down_revision: str = "0014"
branch_labels = None
depends_on = None

HANDLED = "handled_by IS NOT NULL"
UNREAD = "state = 'unread'"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("routine_runs") as batch:
        batch.add_column(sa.Column("handled_by", sa.Uuid(), nullable=True))
    op.create_index("ix_routine_runs_handler", "routine_runs", ["handled_by", "tenant_id"],
                    postgresql_where=sa.text(HANDLED), sqlite_where=sa.text(HANDLED))
    op.execute("UPDATE routine_runs SET handled_by = (SELECT staff.id FROM staff WHERE staff.email = "
               "routine_runs.requested_by) WHERE requested_by IN (SELECT email FROM staff)")

    op.create_table(
        "feedback_items",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.Enum("unread", "read", "acknowledged", name="feedbackstate", native_enum=False,
                                   length=16), nullable=False),
        sa.Column("state_changed_at", UTCDateTime(), nullable=True),
        sa.Column("state_changed_by", sa.String(254), nullable=True),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("last_reply_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_feedback_items")),
        sa.ForeignKeyConstraint(["tenant_id", "entry_id"], ["timeline_entries.tenant_id", "timeline_entries.id"],
                                name=op.f("fk_feedback_items_tenant_id_entry_id_timeline_entries")),
        sa.ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"],
                                name=op.f("fk_feedback_items_tenant_id_customer_id_customers")),
        sa.UniqueConstraint("tenant_id", "entry_id", name=op.f("uq_feedback_items_tenant_id_entry_id")),
    )
    op.create_index("ix_feedback_items_tenant_time", "feedback_items", ["tenant_id", "recorded_at"])
    op.create_index("ix_feedback_items_time", "feedback_items", ["recorded_at"])
    op.create_index("ix_feedback_items_unread", "feedback_items", ["tenant_id"],
                    postgresql_where=sa.text(UNREAD), sqlite_where=sa.text(UNREAD))
    label = "ref->>'label'" if postgres else "json_extract(ref, '$.label')"
    # The item takes its entry's id: one item per note, and no id function SQLite lacks.
    op.execute(f"""
        INSERT INTO feedback_items (tenant_id, id, entry_id, customer_id, kind, recorded_at, state, replies)
        SELECT tenant_id, id, id, customer_id, CASE WHEN {label} = 'feedback' THEN 'feedback' ELSE 'note' END,
               at, 'unread', 0
        FROM timeline_entries WHERE kind = 'note'
    """)
    shared.protect_tenant_tables(op, context.config.attributes["settings"], ("feedback_items",))

    op.create_index("ix_audit_log_time", "audit_log", ["occurred_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_time", table_name="audit_log")
    op.drop_table("feedback_items")
    op.drop_index("ix_routine_runs_handler", table_name="routine_runs")
    with op.batch_alter_table("routine_runs") as batch:
        batch.drop_column("handled_by")
