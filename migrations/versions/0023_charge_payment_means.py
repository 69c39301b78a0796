"""How the customer pays a charge (issue 17, item 4): the charge's billing type at the gateway (BOLETO, PIX,
CREDIT_CARD, UNDEFINED) and what paying it takes, fetched once when the charge is created at Asaas and kept
so e-mails and the portal show it without asking the gateway again: the Pix copia-e-cola and its QR code (a
base64 PNG, as Asaas answers ``GET /v3/payments/{id}/pixQrCode``), the boleto's linha digitável
(``GET /v3/payments/{id}/identificationField``) and the boleto's PDF address (``bankSlipUrl``).

Existing charges keep NULL (not known); new columns only, no backfill. Numbered 0019 by the lead, revising
the head that existed when it was written (0022), so one head stays.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("billing_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("pix_payload", sa.Text(), nullable=True))
        batch.add_column(sa.Column("pix_qr_png", sa.Text(), nullable=True))
        batch.add_column(sa.Column("boleto_line", sa.String(64), nullable=True))
        batch.add_column(sa.Column("boleto_url", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        for column in ("boleto_url", "boleto_line", "pix_qr_png", "pix_payload", "billing_type"):
            batch.drop_column(column)
