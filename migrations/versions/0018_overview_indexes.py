"""Partial indexes for the staff console's overview (``tenants/overview/queries.py``).

Each panel counts the few rows in a state that needs someone (events waiting, unmatched or failed;
deliveries dead; customers in grace or blocked; charges overdue; routine runs that failed) for every tenant at once. Without these the
events panel read every event there is (a sequential scan of the whole table: 1.5M rows with 10,000
tenants); with them each panel reads only its rows, grouped by tenant from the index. The predicates are the
same text the queries write out, so the planner matches them. The chart reads one page of tenants' last 14
days by (tenant, received_at). Figures before and after: tests/perf/README.md.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision: str = "0018"
down_revision: str = "0017"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_events_open", "events", "tenant_id, status, received_at", "status IN ('pending', 'unmatched', 'failed')"),
    ("ix_events_received", "events", "tenant_id, received_at", None),
    ("ix_outbound_dead", "outbound_messages", "tenant_id", "status = 'dead'"),
    ("ix_webhook_deliveries_dead", "webhook_deliveries", "tenant_id", "status = 'dead'"),
    ("ix_customers_at_risk", "customers", "tenant_id, lifecycle", "lifecycle IN ('in_grace', 'blocked')"),
    ("ix_charges_overdue", "charges", "tenant_id, amount_cents", "status = 'overdue'"),
    ("ix_routine_runs_attention", "routine_runs", "tenant_id, routine, created_at", "status IN ('failed', 'partial')"),
]


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})" + (f" WHERE {where}" if where else ""))


def downgrade() -> None:
    for name, *_ in reversed(INDEXES):
        op.execute(f"DROP INDEX IF EXISTS {name}")
