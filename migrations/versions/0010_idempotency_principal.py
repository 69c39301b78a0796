"""An Idempotency-Key belongs to the API key that sent it.

A stored answer was found by (tenant, Idempotency-Key) alone, so any key of the company that repeated
another key's request got that key's answer back, new API key secrets included. The key is now unique
per (tenant, API key, Idempotency-Key): a key only ever finds its own records, and two keys that happen
to pick the same Idempotency-Key each get their own request run (rather than one being refused because
of the other, which would also tell it that the other key used that Idempotency-Key).

Existing records are deleted: some hold one-time secrets in clear (answers are now stored without
them), and every record expires within 24 hours anyway; a client retrying across the upgrade runs its
request again, as after any expiry.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision: str = "0010"
down_revision: str = "0009"
branch_labels = None
depends_on = None

TABLE = "idempotency_records"
OLD = "uq_idempotency_records_tenant_id_idempotency_key"
NEW = "uq_idempotency_records_tenant_id_api_key_id_idempotency_key"


def upgrade() -> None:
    op.execute(f"DELETE FROM {TABLE}")
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_constraint(OLD, type_="unique")
        batch_op.create_unique_constraint(NEW, ["tenant_id", "api_key_id", "idempotency_key"])


def downgrade() -> None:
    op.execute(f"DELETE FROM {TABLE}")
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_constraint(NEW, type_="unique")
        batch_op.create_unique_constraint(OLD, ["tenant_id", "idempotency_key"])
