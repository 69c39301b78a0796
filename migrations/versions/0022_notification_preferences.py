"""Per-user notification preferences (issue 15, item 7): which kinds reach a front-office person on which
channel (portal, e-mail) on top of the tenant's policy, and the daily digest. Tenant data under the tenant
policy (FORCE RLS). The digest needs no table of its own: its e-mail is an outbound message whose effect key
names the user and the day, unique per tenant, so a second run of the day sends nothing.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared
from backoffice.platform.db.base import UTCDateTime

revision: str = "0022"
down_revision: str = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("locale", sa.String(8), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_notification_preferences")),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["tenant_users.tenant_id", "tenant_users.id"],
                                name=op.f("fk_notification_preferences_tenant_id_user_id_tenant_users")),
        sa.UniqueConstraint("tenant_id", "user_id", name=op.f("uq_notification_preferences_tenant_id_user_id")),
    )
    op.create_index("ix_notification_preferences_digest", "notification_preferences", ["tenant_id", "digest"])
    shared.protect_tenant_tables(op, context.config.attributes["settings"], ("notification_preferences",))


def downgrade() -> None:
    op.drop_table("notification_preferences")
