"""Portal notifications for front-office people: rendered text plus the structured detail of the case."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKeyConstraint, Index, String, Text, UniqueConstraint, Uuid
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


class NotificationPreference(TenantOwned, Base):
    """One front-office person's choices on top of the tenant's policy: per kind, the channels they want
    (a kind absent from ``channels`` follows the policy), the daily digest, and the digest's language.
    No row means: the policy's channels, no digest."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["tenant_users.tenant_id", "tenant_users.id"]),
        Index("ix_notification_preferences_digest", "tenant_id", "digest"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    channels: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)  # kind -> ["portal", "email"]
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
