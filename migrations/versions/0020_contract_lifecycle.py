"""Subscription-level lifecycle: late-payment cases and lifecycle rows follow the contract of the late charge.

- ``contracts.lifecycle``: the subscription's own service stage (active, in_grace, blocked);
- ``dunning_cases.contract_id``: the contract a case blocks (NULL: the whole customer);
- ``lifecycle_transitions.contract_id``: a contract's stage change (NULL: the customer's own).

Existing data: a case gets the contract of its charge where the charge names one (and that contract
exists); the rest stay customer-wide. An active contract's stage is derived from the open cases that reach
it (its own, or a customer-wide one of its customer): blocked if one of them is blocked, in grace if one is
in grace. Existing lifecycle transitions were the customers' own stage changes and stay so (NULL).

The backfill runs with RLS not forced for its statements (the owner runs migrations; a FORCE RLS policy
with no tenant set would otherwise hide every row and the backfill would silently do nothing).

Revision ID: 0020
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str = "0018"
branch_labels = None
depends_on = None

TABLES = ("dunning_cases", "contracts", "charges", "lifecycle_transitions")

CASES = """
UPDATE dunning_cases SET contract_id = (
    SELECT ch.contract_id FROM charges ch WHERE ch.tenant_id = dunning_cases.tenant_id AND ch.id = dunning_cases.charge_id)
WHERE contract_id IS NULL AND EXISTS (
    SELECT 1 FROM charges ch JOIN contracts k ON k.tenant_id = ch.tenant_id AND k.id = ch.contract_id
    WHERE ch.tenant_id = dunning_cases.tenant_id AND ch.id = dunning_cases.charge_id)
"""

_REACHES = """EXISTS (SELECT 1 FROM dunning_cases d WHERE d.tenant_id = contracts.tenant_id
    AND d.customer_id = contracts.customer_id AND d.status = '{status}'
    AND (d.contract_id = contracts.id OR d.contract_id IS NULL))"""
CONTRACTS = f"""
UPDATE contracts SET lifecycle = CASE WHEN {_REACHES.format(status='blocked')} THEN 'blocked'
                                      WHEN {_REACHES.format(status='grace')} THEN 'in_grace' ELSE 'active' END
WHERE status = 'active'
"""


def upgrade() -> None:
    with op.batch_alter_table("contracts") as batch_op:
        batch_op.add_column(sa.Column("lifecycle", sa.String(16), nullable=False, server_default="active"))
    with op.batch_alter_table("dunning_cases") as batch_op:
        batch_op.add_column(sa.Column("contract_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_dunning_cases_tenant_id_contract_id_contracts"), "contracts",
                                    ["tenant_id", "contract_id"], ["tenant_id", "id"])
    with op.batch_alter_table("lifecycle_transitions") as batch_op:
        batch_op.add_column(sa.Column("contract_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_lifecycle_transitions_tenant_id_contract_id_contracts"), "contracts",
                                    ["tenant_id", "contract_id"], ["tenant_id", "id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in TABLES:
            op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
    op.execute(CASES)
    op.execute(CONTRACTS)
    if postgres:
        for table in TABLES:
            op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')


def downgrade() -> None:
    with op.batch_alter_table("lifecycle_transitions") as batch_op:
        batch_op.drop_constraint(op.f("fk_lifecycle_transitions_tenant_id_contract_id_contracts"), type_="foreignkey")
        batch_op.drop_column("contract_id")
    with op.batch_alter_table("dunning_cases") as batch_op:
        batch_op.drop_constraint(op.f("fk_dunning_cases_tenant_id_contract_id_contracts"), type_="foreignkey")
        batch_op.drop_column("contract_id")
    with op.batch_alter_table("contracts") as batch_op:
        batch_op.drop_column("lifecycle")
