"""Tasks for front-office people (onboarding, offboarding, follow-ups), with a checklist."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELED = "canceled"


class Task(TenantOwned, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "effect_key"),
        ForeignKeyConstraint(["tenant_id", "assignee_id"], ["tenant_users.tenant_id", "tenant_users.id"]),
        Index("ix_tasks_assignee", "tenant_id", "assignee_id", "status", "due_at"),
    )

    effect_key: Mapped[str] = mapped_column(String(200))
    assignee_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    kind: Mapped[str] = mapped_column(String(64))  # onboarding | offboarding | ...
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"item": str, "done": bool}]
    # What the platform wrote in title and description, as message ids with parameters rendered in each reader's
    # language (``tenants/timeline/messages.py``): {"title": {"id": .., "params": {..}}, "description": {..}};
    # None for older rows. The company's own texts (templates, checklist items) stay as written.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus, 16), default=TaskStatus.OPEN)
    due_at: Mapped[datetime | None] = mapped_column()
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
