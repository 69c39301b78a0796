"""The portal: one-time password-reset tokens (stored hashed) and each tenant's OIDC single sign-on settings
(client secret encrypted), both tenant-owned under RLS.

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

TENANT_TABLES = ("password_resets", "oidc_settings")


def upgrade() -> None:
    op.create_table(
        "password_resets",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["tenant_users.tenant_id", "tenant_users.id"],
                                name=op.f("fk_password_resets_tenant_id_user_id_tenant_users")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("tenant_id", "token_hash", name=op.f("uq_password_resets_tenant_id_token_hash")),
    )
    op.create_table(
        "oidc_settings",
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("client_secret_encrypted", sa.String(length=1000), nullable=False),
        sa.Column("allowed_domains", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_oidc_settings_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_oidc_settings")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_oidc_settings_tenant_id")),
    )
    shared.protect_tenant_tables(op, context.config.attributes["settings"], TENANT_TABLES)


def downgrade() -> None:
    op.drop_table("oidc_settings")
    op.drop_table("password_resets")
