"""Portal notifications for front-office people: rendered text plus the structured detail of the case."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class Notification(TenantOwned, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("tenant_id", "effect_key"),
        ForeignKeyConstraint(["tenant_id", "recipient_id"], ["tenant_users.tenant_id", "tenant_users.id"]),
        Index("ix_notifications_inbox", "tenant_id", "recipient_id", "read_at", "created_at"),
    )

    effect_key: Mapped[str] = mapped_column(String(200))
    recipient_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    kind: Mapped[str] = mapped_column(String(64))  # customer.started, dunning.blocked, ...
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column()
