"""The customer's timeline: each event, each effect and the reason for it, plus what people record."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class TimelineEntry(TenantOwned, Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index("ix_timeline_customer", "tenant_id", "customer_id", "at"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # event | effect | transition | note
    title: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"effect_key": .., "notification_id": ..}
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # for notes
