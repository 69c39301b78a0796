"""The transactional outbox: work to hand to the workers, written in the same transaction as its cause.

The relay claims pending rows (``FOR UPDATE SKIP LOCKED``), sends each to dramatiq and leases it for the
hand-over; the job that starts on it takes the row under its own token and its worker renews the lease
while it runs (``lease.py``); the job marks its row completed in its own transaction, if it still holds
it. A lease that runs out without completion (a dead relay, a lost message, a crashed worker) makes the
row claimable again within the lease (15 s), and jobs are idempotent, so nothing is lost and a repeat
changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class OutboxEntry(TenantOwned, Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending", "available_at",
            postgresql_where=text("completed_at IS NULL"), sqlite_where=text("completed_at IS NULL"),
        ),
        Index(
            "ix_outbox_tenant_pending", "tenant_id", "available_at",
            postgresql_where=text("completed_at IS NULL"), sqlite_where=text("completed_at IS NULL"),
        ),
        Index(
            "ix_outbox_inflight", "tenant_id", "lease_until",
            postgresql_where=text("completed_at IS NULL AND lease_until IS NOT NULL"),
            sqlite_where=text("completed_at IS NULL AND lease_until IS NOT NULL"),
        ),
        Index(
            "ix_outbox_lease_token", "lease_token",
            postgresql_where=text("completed_at IS NULL AND lease_token IS NOT NULL"),
            sqlite_where=text("completed_at IS NULL AND lease_token IS NOT NULL"),
        ),
    )

    job: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column()
    # The running job's token (``platform/outbox/lease.py``): NULL while handed over, set when a job starts.
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    dispatched_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(2000))
