"""Renegotiation (acordo): a customer's overdue charges replaced by instalments at the gateway.

An agreement names the charges it replaces (``agreement_charges``, each with the late-payment case that
waits on it) and the instalments the gateway created for it (``agreement_instalments``, each also a
charge of the platform, so the gateway's webhooks about it find it like any other charge).
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKeyConstraint, Index, SmallInteger, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import customer_fk, str_enum


class AgreementStatus(enum.StrEnum):
    PROPOSED = "proposed"  # instalments created, none paid yet: the cases wait, nothing blocks anew
    ACTIVE = "active"  # the first instalment was paid: unblocked, in good standing
    COMPLETED = "completed"  # every instalment paid: the cases are resolved
    BROKEN = "broken"  # an instalment went overdue: the cases were reopened under the policy


class InstalmentStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    OVERDUE = "overdue"


class Agreement(TenantOwned, Base):
    __tablename__ = "agreements"
    __table_args__ = (*customer_fk(), Index("ix_agreements_customer", "tenant_id", "customer_id"))

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    status: Mapped[AgreementStatus] = mapped_column(str_enum(AgreementStatus, 16), default=AgreementStatus.PROPOSED)
    source: Mapped[str] = mapped_column(String(32))  # the gateway (asaas)
    installment_ref: Mapped[str | None] = mapped_column(String(128))  # the gateway's instalment plan id
    instalment_count: Mapped[int] = mapped_column(SmallInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    first_due_date: Mapped[date] = mapped_column(Date)
    proposed_by: Mapped[str] = mapped_column(String(254))  # the actor's label
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_paid_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    broken_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(String(500))


class AgreementCharge(TenantOwned, Base):
    """An overdue charge the agreement replaced (cancelled at the gateway), and its waiting case."""

    __tablename__ = "agreement_charges"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "agreement_id"], ["agreements.tenant_id", "agreements.id"]),
        ForeignKeyConstraint(["tenant_id", "charge_id"], ["charges.tenant_id", "charges.id"]),
        UniqueConstraint("tenant_id", "charge_id"),
        Index("ix_agreement_charges_agreement", "tenant_id", "agreement_id"),
    )

    agreement_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    charge_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class AgreementInstalment(TenantOwned, Base):
    __tablename__ = "agreement_instalments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "agreement_id"], ["agreements.tenant_id", "agreements.id"]),
        ForeignKeyConstraint(["tenant_id", "charge_id"], ["charges.tenant_id", "charges.id"]),
        UniqueConstraint("tenant_id", "agreement_id", "number"),
        UniqueConstraint("tenant_id", "charge_id"),
    )

    agreement_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    number: Mapped[int] = mapped_column(SmallInteger)
    charge_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[InstalmentStatus] = mapped_column(str_enum(InstalmentStatus, 16), default=InstalmentStatus.PENDING)
    paid_at: Mapped[datetime | None] = mapped_column()
