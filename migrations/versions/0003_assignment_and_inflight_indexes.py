"""At most one active assignment per staff member and tenant, enforced by the database; an index for the
relay's per-tenant in-flight count.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Close duplicates a race may have left (keep the earliest), then forbid them.
    op.execute(
        """
        UPDATE staff_assignments SET ended_at = started_at
        WHERE ended_at IS NULL AND id NOT IN (
            SELECT min_id FROM (
                SELECT (SELECT a2.id FROM staff_assignments a2
                        WHERE a2.tenant_id = a.tenant_id AND a2.staff_id = a.staff_id AND a2.ended_at IS NULL
                        ORDER BY a2.started_at, a2.id LIMIT 1) AS min_id
                FROM staff_assignments a WHERE a.ended_at IS NULL
            ) AS keep
        )
        """
    )
    op.create_index(
        "uq_staff_assignments_active", "staff_assignments", ["tenant_id", "staff_id"], unique=True,
        postgresql_where=sa.text("ended_at IS NULL"), sqlite_where=sa.text("ended_at IS NULL"),
    )


    # The relay counts each tenant's leased, not completed rows on every round.
    op.create_index(
        "ix_outbox_inflight", "outbox", ["tenant_id", "lease_until"],
        postgresql_where=sa.text("completed_at IS NULL AND lease_until IS NOT NULL"),
        sqlite_where=sa.text("completed_at IS NULL AND lease_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_inflight", table_name="outbox")
    op.drop_index("uq_staff_assignments_active", table_name="staff_assignments")
