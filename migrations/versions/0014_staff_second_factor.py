"""The staff console's second factor: each staff member's TOTP secret (encrypted) and recovery codes.

Provider tables: the system role's only (``protect_provider_tables``); no tenant's request reaches them.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared
from backoffice.platform.db.base import UTCDateTime

revision: str = "0014"
down_revision: str = "0013"
branch_labels = None
depends_on = None

TABLES = ("staff_second_factors", "staff_recovery_codes")


def upgrade() -> None:
    op.create_table(
        "staff_second_factors",
        sa.Column("staff_id", sa.Uuid(), sa.ForeignKey("staff.id", name="fk_staff_second_factors_staff_id_staff"),
                  primary_key=True),
        sa.Column("secret_encrypted", sa.String(500), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "staff_recovery_codes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("staff_id", sa.Uuid(), sa.ForeignKey("staff.id", name="fk_staff_recovery_codes_staff_id_staff"),
                  nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("code_hash", name="uq_staff_recovery_codes_code_hash"),
    )
    op.create_index("ix_staff_recovery_codes_staff_id", "staff_recovery_codes", ["staff_id"])
    shared.protect_provider_tables(op, context.config.attributes["settings"], TABLES)


def downgrade() -> None:
    op.drop_index("ix_staff_recovery_codes_staff_id", table_name="staff_recovery_codes")
    op.drop_table("staff_recovery_codes")
    op.drop_table("staff_second_factors")
