"""Effects of process steps, each under a unique key derived from (event, step).

``Effect`` is the idempotency record: a step whose key exists has already happened, so a duplicate event
or a redelivered message changes nothing. ``OutboundMessage`` is an effect that leaves the platform
(e-mail, command to the tenant's platform, outbound webhook, chat): written with the step, delivered
after commit by a job, retried with backoff, dead-lettered with its reason.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class Effect(TenantOwned, Base):
    __tablename__ = "effects"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), Index("ix_effects_event", "tenant_id", "event_id"))

    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # notification | task | email | platform | webhook | chat | ...
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    step: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    ref_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # the notification, task or message it made
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(enum.StrEnum):
    EMAIL = "email"
    PLATFORM = "platform"  # block / unblock / provision / deprovision on the tenant's platform
    WEBHOOK = "webhook"
    CHAT = "chat"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # will be retried at next_attempt_at
    DEAD = "dead"  # gave up; last_error says why; can be replayed


class OutboundMessage(TenantOwned, Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "effect_key"),
        Index("ix_outbound_status", "tenant_id", "status"),
    )

    effect_key: Mapped[str] = mapped_column(String(200))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    target: Mapped[str | None] = mapped_column(String(500))  # address, endpoint id, command name
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus, 16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(2000))
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the receiver's acknowledgement
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
