"""Front-office users of a tenant's portal."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class TenantRole(enum.StrEnum):
    ADMIN = "tenant_admin"
    MEMBER = "tenant_member"


class TenantUser(TenantOwned, Base):
    __tablename__ = "tenant_users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    )

    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[TenantRole] = mapped_column(
        Enum(TenantRole, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    # None for users admitted only through the company's SSO.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
