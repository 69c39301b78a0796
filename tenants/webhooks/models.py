"""Webhook endpoints of a tenant's systems and one delivery row per (message, endpoint).

Signing secrets are stored encrypted (``platform/security/secrets.py``); an endpoint keeps a list of them
so a rotation can sign with the old and the new secret for an overlap window. (The tenant's own
platform, which takes block/unblock/provision/deprovision commands, is a connector instance:
``connectors/platform_http.py``.)
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class WebhookEndpoint(TenantOwned, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every event type
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None] = mapped_column()
    # [{"secret": <encrypted whsec_...>, "created_at": iso, "expires_at": iso | None}]
    secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_dead: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def subscribed(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookDeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # will be retried at next_attempt_at
    DEAD = "dead"  # the schedule ran out, or the endpoint refused for good; last_error says why


class WebhookDelivery(TenantOwned, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "endpoint_id"], ["webhook_endpoints.tenant_id", "webhook_endpoints.id"]),
        UniqueConstraint("tenant_id", "endpoint_id", "message_id"),
        Index("ix_webhook_deliveries_log", "tenant_id", "endpoint_id", "created_at"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    message_id: Mapped[str] = mapped_column(String(200))  # webhook-id: receivers deduplicate on it
    outbound_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        str_enum(WebhookDeliveryStatus, 16), default=WebhookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    response_snippet: Mapped[str | None] = mapped_column(String(1000))
    last_error: Mapped[str | None] = mapped_column(String(2000))
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()

