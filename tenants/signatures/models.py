"""Contract signatures collected through an e-signature service."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import customer_fk, str_enum


class SignatureStatus(enum.StrEnum):
    PENDING = "pending"
    SIGNED = "signed"
    CANCELED = "canceled"


class Signature(TenantOwned, Base):
    __tablename__ = "signatures"
    __table_args__ = (*customer_fk(), UniqueConstraint("tenant_id", "source", "external_id"))

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    contract_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    status: Mapped[SignatureStatus] = mapped_column(str_enum(SignatureStatus), default=SignatureStatus.PENDING)
    document_url: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))  # the envelope id
    signed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
