"""Renegotiation (acordo) and reconciliation repairs (issue 17, items 5 and 6).

- ``agreements``, ``agreement_charges`` (the overdue charges an agreement replaced, with the case that
  waits on it), ``agreement_instalments`` (the gateway's new charges); tenant data under the tenant policy.
- ``reconciliation_repairs``: a finding repaired (the missing payment event ingested from it), who and when;
  one per finding.
- ``dunning_cases.status`` gains ``agreement`` (a case waiting on an agreement): the column is a VARCHAR
  without a CHECK, so no DDL.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared
from backoffice.platform.db.base import UTCDateTime

revision: str = "0021"
down_revision: str = "0020"
branch_labels = None
depends_on = None

TABLES = ("agreements", "agreement_charges", "agreement_instalments", "reconciliation_repairs")


def _keys(table: str) -> list:
    return [sa.Column("tenant_id", sa.Uuid(), nullable=False), sa.Column("id", sa.Uuid(), nullable=False),
            sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{table}"))]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", column], [f"{target}.tenant_id", f"{target}.id"],
                                   name=op.f(f"fk_{table}_tenant_id_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "agreements", *_keys("agreements"),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Enum("proposed", "active", "completed", "broken", name="agreementstatus",
                                    native_enum=False, length=16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("installment_ref", sa.String(128), nullable=True),
        sa.Column("instalment_count", sa.SmallInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("first_due_date", sa.Date(), nullable=False),
        sa.Column("proposed_by", sa.String(254), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("first_paid_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("broken_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        _fk("agreements", "customer_id", "customers"),
    )
    op.create_index("ix_agreements_customer", "agreements", ["tenant_id", "customer_id"])
    op.create_table(
        "agreement_charges", *_keys("agreement_charges"),
        sa.Column("agreement_id", sa.Uuid(), nullable=False),
        sa.Column("charge_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        _fk("agreement_charges", "agreement_id", "agreements"),
        _fk("agreement_charges", "charge_id", "charges"),
        sa.UniqueConstraint("tenant_id", "charge_id", name=op.f("uq_agreement_charges_tenant_id_charge_id")),
    )
    op.create_index("ix_agreement_charges_agreement", "agreement_charges", ["tenant_id", "agreement_id"])
    op.create_table(
        "agreement_instalments", *_keys("agreement_instalments"),
        sa.Column("agreement_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.SmallInteger(), nullable=False),
        sa.Column("charge_id", sa.Uuid(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.Enum("pending", "paid", "overdue", name="instalmentstatus", native_enum=False,
                                    length=16), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        _fk("agreement_instalments", "agreement_id", "agreements"),
        _fk("agreement_instalments", "charge_id", "charges"),
        sa.UniqueConstraint("tenant_id", "agreement_id", "number",
                            name=op.f("uq_agreement_instalments_tenant_id_agreement_id_number")),
        sa.UniqueConstraint("tenant_id", "charge_id", name=op.f("uq_agreement_instalments_tenant_id_charge_id")),
    )
    op.create_table(
        "reconciliation_repairs", *_keys("reconciliation_repairs"),
        sa.Column("finding_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("repaired_by", sa.String(254), nullable=False),
        sa.Column("repaired_at", UTCDateTime(), nullable=False),
        _fk("reconciliation_repairs", "finding_id", "reconciliation_findings"),
        sa.UniqueConstraint("tenant_id", "finding_id", name=op.f("uq_reconciliation_repairs_tenant_id_finding_id")),
    )
    shared.protect_tenant_tables(op, context.config.attributes["settings"], TABLES)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
