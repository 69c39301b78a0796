"""Fiscal documents (nota fiscal: NFS-e, NF-e) issued for the customer's charges."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import customer_fk, str_enum


class FiscalStatus(enum.StrEnum):
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    REJECTED = "rejected"
    CANCELED = "canceled"


class FiscalDocument(TenantOwned, Base):
    __tablename__ = "fiscal_documents"
    __table_args__ = (
        *customer_fk(),
        UniqueConstraint("tenant_id", "source", "external_id"),
        Index("ix_fiscal_documents_charge", "tenant_id", "charge_id"),  # the invoicing routine's "has a nota?"
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    charge_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    kind: Mapped[str] = mapped_column(String(8), default="nfse")
    number: Mapped[str | None] = mapped_column(String(32))
    series: Mapped[str | None] = mapped_column(String(16))
    verification_code: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[FiscalStatus] = mapped_column(str_enum(FiscalStatus), default=FiscalStatus.PROCESSING)
    pdf_url: Mapped[str | None] = mapped_column(String(500))
    xml_url: Mapped[str | None] = mapped_column(String(500))
    message: Mapped[str | None] = mapped_column(String(1000))  # the issuer's words on rejection
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
