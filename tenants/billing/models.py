"""What the customer bought (contracts/subscriptions), what they owe (charges) and what they paid."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Date, ForeignKeyConstraint, Index, SmallInteger, String, Text, UniqueConstraint, Uuid, text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import customer_fk, str_enum
from backoffice.tenants.customers.models import Lifecycle


class ContractStatus(enum.StrEnum):
    PENDING = "pending"  # created, not yet started (awaiting payment, invoice or signature)
    ACTIVE = "active"
    CANCELED = "canceled"


class ChargeStatus(enum.StrEnum):
    PENDING = "pending"
    OVERDUE = "overdue"
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELED = "canceled"


class Contract(TenantOwned, Base):
    """A subscription to a plan. Money is integer cents of ``currency`` (BRL)."""

    __tablename__ = "contracts"
    __table_args__ = (
        *customer_fk(),
        UniqueConstraint("tenant_id", "source", "external_id"),
        Index("ix_contracts_customer", "tenant_id", "customer_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    plan_code: Mapped[str] = mapped_column(String(64))
    plan_name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="BRL")
    billing_day: Mapped[int] = mapped_column(SmallInteger, default=1)
    status: Mapped[ContractStatus] = mapped_column(str_enum(ContractStatus), default=ContractStatus.PENDING)
    source: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column()
    canceled_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The subscription's own service stage (active, in grace, blocked): a late charge of this contract
    # blocks this contract; the customer's lifecycle summarises its contracts (tenants/customers/lifecycle.py).
    lifecycle: Mapped[Lifecycle] = mapped_column(str_enum(Lifecycle, 16), default=Lifecycle.ACTIVE,
                                                 server_default=Lifecycle.ACTIVE.value)


class Charge(TenantOwned, Base):
    __tablename__ = "charges"
    __table_args__ = (
        *customer_fk(),
        UniqueConstraint("tenant_id", "source", "external_id"),
        Index("ix_charges_customer", "tenant_id", "customer_id"),
        Index("ix_charges_due", "status", "due_date"),
        # The billing routine charges a contract once per period, whatever re-runs it.
        Index("uq_charges_contract_period", "tenant_id", "contract_id", "billing_period", unique=True,
              postgresql_where=text("billing_period IS NOT NULL"), sqlite_where=text("billing_period IS NOT NULL")),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    contract_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    billing_period: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM when the billing routine made it
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="BRL")
    due_date: Mapped[date] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[ChargeStatus] = mapped_column(str_enum(ChargeStatus), default=ChargeStatus.PENDING)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    payment_url: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # How the customer pays it (migration 0019): the gateway's billing type (BOLETO, PIX, CREDIT_CARD,
    # UNDEFINED: the customer chooses), and what paying takes, fetched once when the charge is created at the
    # gateway: the Pix copia-e-cola and its QR code (a base64 PNG), the boleto's linha digitável and PDF.
    billing_type: Mapped[str | None] = mapped_column(String(16))
    pix_payload: Mapped[str | None] = mapped_column(Text)
    pix_qr_png: Mapped[str | None] = mapped_column(Text)
    boleto_line: Mapped[str | None] = mapped_column(String(64))
    boleto_url: Mapped[str | None] = mapped_column(String(500))


class Payment(TenantOwned, Base):
    __tablename__ = "payments"
    __table_args__ = (
        *customer_fk(),
        UniqueConstraint("tenant_id", "source", "external_id"),
        ForeignKeyConstraint(["tenant_id", "charge_id"], ["charges.tenant_id", "charges.id"]),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    charge_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="BRL")
    method: Mapped[str | None] = mapped_column(String(32))  # pix | boleto | credit_card | ...
    paid_at: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
