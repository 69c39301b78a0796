"""The customer's timeline: each event, each effect and the reason for it, plus what people record."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class TimelineEntry(TenantOwned, Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index("ix_timeline_customer", "tenant_id", "customer_id", "at"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # event | effect | transition | note | reply (staff's)
    title: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"effect_key": .., "notification_id": ..}
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # for notes
    # What title and reason say as message ids with parameters, rendered in each reader's language
    # (``tenants/timeline/messages.py``): {"title": {"id": .., "params": {..}}, "reason": {..}}; None for notes
    # and older rows, which show their text as stored.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class FeedbackState(enum.StrEnum):
    UNREAD = "unread"
    READ = "read"
    ACKNOWLEDGED = "acknowledged"  # a staff member took it in (and answered, or needs not)


class FeedbackItem(TenantOwned, Base):
    """A note or feedback the front office recorded on a customer, as an item of the staff's feedback inbox.

    Written with the note (``add_note``), in the same transaction, so the inbox and the unread counts read
    one narrow table instead of every timeline entry. The text stays on the timeline entry."""

    __tablename__ = "feedback_items"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "entry_id"], ["timeline_entries.tenant_id", "timeline_entries.id"]),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        UniqueConstraint("tenant_id", "entry_id"),
        Index("ix_feedback_items_tenant_time", "tenant_id", "recorded_at"),
        Index("ix_feedback_items_time", "recorded_at"),
        Index("ix_feedback_items_unread", "tenant_id", postgresql_where=text("state = 'unread'"),
              sqlite_where=text("state = 'unread'")),
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    kind: Mapped[str] = mapped_column(String(16))  # NOTE_KINDS: note | feedback
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[FeedbackState] = mapped_column(str_enum(FeedbackState, 16), default=FeedbackState.UNREAD)
    state_changed_at: Mapped[datetime | None] = mapped_column()
    state_changed_by: Mapped[str | None] = mapped_column(String(254))  # the staff member's e-mail
    replies: Mapped[int] = mapped_column(Integer, default=0)
    last_reply_at: Mapped[datetime | None] = mapped_column()
