"""Durable timers: grace deadlines, reminders and routines live in the database, not in a broker delay.

The scheduler claims due timers across tenants and turns each into a canonical event (source ``timer``,
external id = the timer's key), in the same transaction as marking it fired: a timer fires once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class Timer(TenantOwned, Base):
    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index(
            "ix_timers_due", "due_at",
            postgresql_where=text("fired_at IS NULL AND canceled_at IS NULL"),
            sqlite_where=text("fired_at IS NULL AND canceled_at IS NULL"),
        ),
    )

    key: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))  # the canonical event it emits when due
    due_at: Mapped[datetime] = mapped_column()
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column()
    canceled_at: Mapped[datetime | None] = mapped_column()


class TenantClock(TenantOwned, Base):
    """How far one tenant's clock runs ahead of the real one (demo and staging only; see ``timers/clock.py``).
    At most one row per tenant; no row is no shift."""

    __tablename__ = "tenant_clocks"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    offset_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254))
