"""Tenant clocks: how far one tenant's clock runs ahead of the real one, so a demo or staging tenant's due
timers (grace deadlines, reminders, blocks) fire now. Production refuses to create one (timers/clock.py).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared
from backoffice.platform.db.base import UTCDateTime

revision: str = "0017"
down_revision: str = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_clocks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("offset_seconds", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(254), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tenant_clocks")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_clocks_tenant_id_tenants")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenant_clocks_tenant_id")),
    )
    shared.protect_tenant_tables(op, context.config.attributes["settings"], ("tenant_clocks",))


def downgrade() -> None:
    op.drop_table("tenant_clocks")
