"""Canonical events: what happened in the back office, from any source, stored before it is acknowledged."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class EventStatus(enum.StrEnum):
    PENDING = "pending"  # stored, waiting for its process step
    PROCESSED = "processed"
    UNMATCHED = "unmatched"  # kept for staff: the customer it names is unknown
    FAILED = "failed"  # the process step failed for good; the reason is kept


class Event(TenantOwned, Base):
    __tablename__ = "events"
    __table_args__ = (
        # Deduplication: one event per (tenant, source, external id), whoever sends it again.
        UniqueConstraint("tenant_id", "source", "external_id"),
        Index("ix_events_customer", "tenant_id", "customer_id", "occurred_at"),
        Index("ix_events_status", "tenant_id", "status"),
    )

    type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    # How the source named the customer ({"id"}, {"external_id", "source"} or {"tax_id"}).
    subject: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[EventStatus] = mapped_column(str_enum(EventStatus), default=EventStatus.PENDING)
    processed_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(2000))
