"""One language per reader (issue 15, item 1), for tasks: what the platform writes on a task (its title, and a
description that is the platform's own sentence, such as an offboarding's reason) is kept as message ids with
parameters, ``message = {"title": {"id": ..., "params": {...}}, "description": {...}}``, like the timeline's
(0024), so the tasks list, the task page, the dashboard and the customer page say it in the reader's language.
The English ``title`` and ``description`` stay filled for the API, search and old rows; the company's own texts
(a description rendered from its templates, its checklist items) are not messages and show as written. A new
nullable column, no backfill.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("message")
