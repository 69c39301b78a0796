"""Connector instances: each tenant's configured connections to outside systems, secrets encrypted.

Revision ID: 0007
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

TENANT_TABLES = ("connector_instances",)


def upgrade() -> None:
    op.create_table(
        "connector_instances",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("health", sa.Enum("unknown", "ok", "failing", name="health", native_enum=False, length=16),
                  nullable=False),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_connector_instances_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_connector_instances")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_connector_instances_tenant_id_name")),
    )
    op.create_index("ix_connector_instances_kind", "connector_instances", ["tenant_id", "kind", "enabled"])

    shared.protect_tenant_tables(op, context.config.attributes["settings"], TENANT_TABLES)


def downgrade() -> None:
    op.drop_index("ix_connector_instances_kind", table_name="connector_instances")
    op.drop_table("connector_instances")
