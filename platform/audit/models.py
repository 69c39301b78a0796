"""The append-only audit log: who did what, to what, for which tenant, when and why.

Append-only is enforced by the database itself: the application roles are granted INSERT and SELECT only,
and a trigger refuses UPDATE and DELETE for everyone, owner included.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, PlatformOwned, new_id, utcnow


class AuditEntry(PlatformOwned, Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_time", "tenant_id", "occurred_at"),
        Index("ix_audit_log_time", "occurred_at", "id"),  # newest first across tenants (migration 0015)
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # None for provider-wide actions (creating staff, creating a tenant before it exists).
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    actor_type: Mapped[str] = mapped_column(String(16))  # staff | user | api_key | system | cli
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(1000))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
