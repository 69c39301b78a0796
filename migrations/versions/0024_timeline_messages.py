"""One language per reader (issue 15, item 1): a timeline entry keeps what it says as message ids with
parameters, ``message = {"title": {"id": ..., "params": {...}}, "reason": {...}}``, so each page renders it in
its reader's language (the Babel catalogue, ``web/locale``). The English ``title`` and ``reason`` stay filled
for the API, search and old rows; a row without ``message`` (older rows, people's notes) shows its text as
before. A new nullable column, no backfill.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timeline_entries") as batch:
        batch.add_column(sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline_entries") as batch:
        batch.drop_column("message")
