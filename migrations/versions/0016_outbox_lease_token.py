"""Outbox leases held by the job that runs them: a token per running job, renewed by its worker's heartbeat.

The relay's lease now only covers the hand-over (claim -> a job starts, 30 s). A job starting takes its
rows (``lease_token`` = the job's token, lease 30 s) and its worker renews the leases of every row its
running jobs hold in one statement every 10 s; completion and deferral check the token, so a job whose
lease ran out (and whose rows another job took) cannot complete or move them. The partial index serves
that heartbeat: it touches only rows held right now.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_outbox_lease_token", "outbox", ["lease_token"],
        postgresql_where=sa.text("completed_at IS NULL AND lease_token IS NOT NULL"),
        sqlite_where=sa.text("completed_at IS NULL AND lease_token IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_lease_token", table_name="outbox")
    op.drop_column("outbox", "lease_token")
