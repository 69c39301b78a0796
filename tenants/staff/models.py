"""The provider's own people and which tenants they currently serve."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, PlatformOwned, new_id, utcnow


class StaffRole(enum.StrEnum):
    ADMIN = "provider_admin"  # every tenant, and staff management
    OPERATOR = "provider_operator"  # only the tenants they are assigned to


class Staff(PlatformOwned, Base):
    __tablename__ = "staff"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[StaffRole] = mapped_column(
        Enum(StaffRole, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(PlatformOwned, Base):
    """A staff member mobilised on a tenant; demobilising ends it (the row stays as history)."""

    __tablename__ = "staff_assignments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "staff_id", "started_at"),
        # One active assignment per staff member and tenant (migration 0003).
        Index("uq_staff_assignments_active", "tenant_id", "staff_id", unique=True,
              postgresql_where=text("ended_at IS NULL"), sqlite_where=text("ended_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
