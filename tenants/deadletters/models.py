"""What a replay of dead letters did: kept so the console (and the API) can show, per item, whether it was
requeued or skipped (and why), and then what became of it (processed, delivered, failed again).

A replay names up to ``MAX_ITEMS`` items; a time window with more is replayed in several replays (the
``remaining`` count says how many matched after this one's share), so no replay row grows without bound.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class Replay(TenantOwned, Base):
    __tablename__ = "replays"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        Index("ix_replays_time", "tenant_id", "created_at"),
    )

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_label: Mapped[str] = mapped_column(String(254))
    mode: Mapped[str] = mapped_column(String(16))  # one | selection | window
    since: Mapped[datetime | None] = mapped_column()
    until: Mapped[datetime | None] = mapped_column()
    # [{"kind": "event" | "message" | "webhook", "id": str, "action": "requeued" | "skipped", "reason": str | None}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    remaining: Mapped[int] = mapped_column(Integer, default=0)  # window: matching items left for the next replay
    reason: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[str | None] = mapped_column(String(64))  # the staff member's id, when staff replayed

    @property
    def ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(item["id"]) for item in self.items]
