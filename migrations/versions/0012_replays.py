"""Replays of dead letters: what each replay requeued or skipped (and why), so the console shows what it did.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0012"
down_revision: str = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_label", sa.String(254), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_replays")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_replays_tenant_id_tenants")),
    )
    op.create_index("ix_replays_time", "replays", ["tenant_id", "created_at"])
    shared.protect_tenant_tables(op, context.config.attributes["settings"], ("replays",))


def downgrade() -> None:
    op.drop_index("ix_replays_time", table_name="replays")
    op.drop_table("replays")
