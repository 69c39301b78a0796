"""Back-office routines as runs: runs, their items, each tenant's routine settings, reconciliation
findings; the billing period on charges (a contract is charged once per period), and an index for
"does this charge have a nota fiscal yet?".

Merges the branches that grew from 0003 (api, portal, webhooks, connectors).

Revision ID: 0008
Revises: 0004, 0005, 0006, 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared

revision: str = "0008"
down_revision: tuple[str, ...] = ("0004", "0005", "0006", "0007")
branch_labels = None
depends_on = None

TENANT_TABLES = ("routine_runs", "routine_run_items", "routine_settings", "reconciliation_findings")
ACTIVE = "status IN ('queued', 'running', 'paused')"
SCHEDULED = "\"trigger\" = 'schedule'"


def _enum(name: str, *values: str, length: int) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


def _owned(table: str) -> list:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "routine_runs",
        sa.Column("routine", sa.String(32), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("trigger", _enum("trigger", "schedule", "manual", "retry", length=16), nullable=False),
        sa.Column("status", _enum("runstatus", "queued", "running", "paused", "succeeded", "partial", "failed",
                                  length=16), nullable=False),
        sa.Column("parent_run_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("items_done", sa.Integer(), nullable=False),
        sa.Column("items_failed", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        *_owned("routine_runs"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_routine_runs_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["tenant_id", "parent_run_id"], ["routine_runs.tenant_id", "routine_runs.id"],
                                name=op.f("fk_routine_runs_tenant_id_parent_run_id_routine_runs")),
    )
    op.create_index("uq_routine_runs_active", "routine_runs", ["tenant_id", "routine", "period"], unique=True,
                    postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
    op.create_index("uq_routine_runs_scheduled", "routine_runs", ["tenant_id", "routine", "period"], unique=True,
                    postgresql_where=sa.text(SCHEDULED), sqlite_where=sa.text(SCHEDULED))
    op.create_index("ix_routine_runs_recent", "routine_runs", ["tenant_id", "routine", "created_at"])
    op.create_index("ix_routine_runs_status", "routine_runs", ["status", "created_at"])

    op.create_table(
        "routine_run_items",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", _enum("itemstatus", "pending", "waiting", "done", "failed", length=16), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        *_owned("routine_run_items"),
        sa.ForeignKeyConstraint(["tenant_id", "run_id"], ["routine_runs.tenant_id", "routine_runs.id"],
                                name=op.f("fk_routine_run_items_tenant_id_run_id_routine_runs")),
        sa.UniqueConstraint("tenant_id", "run_id", "key", name=op.f("uq_routine_run_items_tenant_id_run_id_key")),
    )
    op.create_index("ix_routine_run_items_status", "routine_run_items", ["tenant_id", "run_id", "status"])

    op.create_table(
        "routine_settings",
        sa.Column("routine", sa.String(32), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_by", sa.String(200), nullable=True),
        sa.Column("pause_reason", sa.String(500), nullable=True),
        sa.Column("hour", sa.SmallInteger(), nullable=True),
        sa.Column("day", sa.SmallInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        *_owned("routine_settings"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_routine_settings_tenant_id_tenants")),
        sa.UniqueConstraint("tenant_id", "routine", name=op.f("uq_routine_settings_tenant_id_routine")),
    )

    op.create_table(
        "reconciliation_findings",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("connector_id", sa.Uuid(), nullable=True),
        sa.Column("kind", _enum("findingkind", "matched", "unrecorded", "missing", "unknown", "amount_mismatch",
                                length=24), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False),
        sa.Column("charge_id", sa.Uuid(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("expected_cents", sa.BigInteger(), nullable=True),
        sa.Column("received_cents", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *_owned("reconciliation_findings"),
        sa.ForeignKeyConstraint(["tenant_id", "run_id"], ["routine_runs.tenant_id", "routine_runs.id"],
                                name=op.f("fk_reconciliation_findings_tenant_id_run_id_routine_runs")),
        sa.UniqueConstraint("tenant_id", "run_id", "source", "kind", "reference",
                            name=op.f("uq_reconciliation_findings_tenant_id_run_id_source_kind_reference")),
    )
    op.create_index("ix_reconciliation_findings_day", "reconciliation_findings", ["tenant_id", "day", "kind"])

    op.create_index("ix_fiscal_documents_charge", "fiscal_documents", ["tenant_id", "charge_id"])
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("billing_period", sa.String(7), nullable=True))
    op.create_index("uq_charges_contract_period", "charges", ["tenant_id", "contract_id", "billing_period"],
                    unique=True, postgresql_where=sa.text("billing_period IS NOT NULL"),
                    sqlite_where=sa.text("billing_period IS NOT NULL"))

    shared.protect_tenant_tables(op, context.config.attributes["settings"], TENANT_TABLES)


def downgrade() -> None:
    op.drop_index("uq_charges_contract_period", table_name="charges")
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("billing_period")
    op.drop_index("ix_fiscal_documents_charge", table_name="fiscal_documents")
    op.drop_index("ix_reconciliation_findings_day", table_name="reconciliation_findings")
    op.drop_table("reconciliation_findings")
    op.drop_table("routine_settings")
    op.drop_index("ix_routine_run_items_status", table_name="routine_run_items")
    op.drop_table("routine_run_items")
    for index in ("ix_routine_runs_status", "ix_routine_runs_recent", "uq_routine_runs_scheduled",
                  "uq_routine_runs_active"):
        op.drop_index(index, table_name="routine_runs")
    op.drop_table("routine_runs")
