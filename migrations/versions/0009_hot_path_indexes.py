"""What the event spine's hot path looks up, indexed.

An event names its customer by the id a provider gave it (``customers.external_ids[source]``). A lookup
into the JSON column read every customer of the tenant (9–10 ms with 60,000 customers); a GIN index on it
was no cure: for a batch of names the planner prefers the tenant's index and filters every row (0.2–0.4 s
per batch of 50, measured). ``customer_external_ids`` holds the same pairs as rows, with a b-tree on
(tenant, source, external id), and is kept by triggers on ``customers`` (insert, and update of
``external_ids``), on PostgreSQL and SQLite alike, so no writer can forget it. Existing customers are
copied in.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0009"
down_revision: str = "0008"
branch_labels = None
depends_on = None

TABLE = "customer_external_ids"

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION bo_customer_external_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.external_ids::jsonb IS NOT DISTINCT FROM OLD.external_ids::jsonb THEN
            RETURN NEW;
        END IF;
        DELETE FROM customer_external_ids WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.id;
    END IF;
    INSERT INTO customer_external_ids (tenant_id, id, customer_id, source, external_id)
    SELECT NEW.tenant_id, gen_random_uuid(), NEW.id, e.key, left(e.value, 200)
    FROM json_each_text(coalesce(NEW.external_ids, '{}'::json)) AS e
    WHERE e.value IS NOT NULL AND length(e.key) <= 64;
    RETURN NEW;
END
$$
"""

# SQLite stores a Uuid as 32 hex digits: a random one is lower(hex(randomblob(16))).
SQLITE_COPY = """
    INSERT INTO customer_external_ids (tenant_id, id, customer_id, source, external_id)
    SELECT NEW.tenant_id, lower(hex(randomblob(16))), NEW.id, e.key, substr(e.value, 1, 200)
    FROM json_each(coalesce(NEW.external_ids, '{}')) AS e
    WHERE e.value IS NOT NULL AND length(e.key) <= 64;
"""


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{TABLE}")),
        sa.ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"],
                                ondelete="CASCADE", name=op.f(f"fk_{TABLE}_tenant_id_customer_id_customers")),
    )
    op.create_index("ix_customer_external_ids_lookup", TABLE, ["tenant_id", "source", "external_id"])
    op.create_index("ix_customer_external_ids_customer", TABLE, ["tenant_id", "customer_id"])
    shared.protect_tenant_tables(op, context.config.attributes["settings"], [TABLE])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER customer_external_ids AFTER INSERT OR UPDATE OF external_ids ON customers "
                   "FOR EACH ROW EXECUTE FUNCTION bo_customer_external_ids()")
        op.execute("INSERT INTO customer_external_ids (tenant_id, id, customer_id, source, external_id) "
                   "SELECT c.tenant_id, gen_random_uuid(), c.id, e.key, left(e.value, 200) FROM customers c, "
                   "json_each_text(c.external_ids) e WHERE e.value IS NOT NULL AND length(e.key) <= 64")
    else:
        op.execute(f"CREATE TRIGGER customer_external_ids_insert AFTER INSERT ON customers BEGIN {SQLITE_COPY} END")
        op.execute("CREATE TRIGGER customer_external_ids_update AFTER UPDATE OF external_ids ON customers BEGIN "
                   "DELETE FROM customer_external_ids WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.id; "
                   f"{SQLITE_COPY} END")
        op.execute("INSERT INTO customer_external_ids (tenant_id, id, customer_id, source, external_id) "
                   "SELECT c.tenant_id, lower(hex(randomblob(16))), c.id, e.key, substr(e.value, 1, 200) "
                   "FROM customers c, json_each(c.external_ids) e WHERE e.value IS NOT NULL AND length(e.key) <= 64")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS customer_external_ids ON customers")
        op.execute("DROP FUNCTION IF EXISTS bo_customer_external_ids()")
    else:
        op.execute("DROP TRIGGER IF EXISTS customer_external_ids_insert")
        op.execute("DROP TRIGGER IF EXISTS customer_external_ids_update")
    op.drop_table(TABLE)
