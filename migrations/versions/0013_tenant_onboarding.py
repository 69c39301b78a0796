"""Onboarding a client company from the staff console: a custom host waits for its DNS proof, the
onboarding steps done are kept, and a tenant may cap its API keys' rate.

- ``pending_host`` / ``host_token``: a host name asked for and the token the client publishes in DNS
  (``_backoffice-verify.<host>`` TXT ``bo-verify=<token>``); ``custom_host`` (what routing uses) is set
  only once the record is seen, and ``host_verified_at`` says when. Hosts set before this revision keep
  routing unchanged.
- ``onboarding_steps``: the steps of the console's guided flow already saved, so the flow resumes
  (companies that exist already count as onboarded).
- ``api_rate_limit_per_minute``: the most requests a minute a key of this tenant may be given (and the
  rate of a new key when none is asked for); NULL: the platform's default (600) and no cap.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("pending_host", sa.String(253), nullable=True))
        batch_op.add_column(sa.Column("host_token", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("host_verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("onboarding_steps", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("api_rate_limit_per_minute", sa.Integer(), nullable=True))
    # Companies that exist already were set up before the guided flow: none of them is "in onboarding".
    op.execute("UPDATE tenants SET onboarding_steps = "
               "'[\"tenant\", \"branding\", \"host\", \"connectors\", \"policy\", \"admin\"]'")


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        for column in ("api_rate_limit_per_minute", "onboarding_steps", "host_verified_at", "host_token",
                       "pending_host"):
            batch_op.drop_column(column)
