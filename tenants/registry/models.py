"""The tenant registry: the client companies the provider serves."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, PlatformOwned, new_id, utcnow


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Tenant(PlatformOwned, Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(200))
    cnpj: Mapped[str] = mapped_column(String(14), unique=True)
    status: Mapped[TenantStatus] = mapped_column(
        Enum(TenantStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=TenantStatus.ACTIVE,
    )
    suspended_reason: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64), default="America/Sao_Paulo")
    locale: Mapped[str] = mapped_column(String(16), default="pt-BR")
    # Branding is validated data only: hex colours and an image, never CSS or HTML.
    branding: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_content_type: Mapped[str | None] = mapped_column(String(32))
    # The host routing serves the portal on; set only once the client proved they hold it (a DNS TXT
    # record, ``tenants/registry/settings.py``), or by an earlier revision's direct setting.
    custom_host: Mapped[str | None] = mapped_column(String(253), unique=True)
    pending_host: Mapped[str | None] = mapped_column(String(253))
    host_token: Mapped[str | None] = mapped_column(String(64))
    host_verified_at: Mapped[datetime | None] = mapped_column()
    # The console's onboarding steps already saved (``tenants/registry/onboarding.py``).
    onboarding_steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The most requests a minute a key may be given, and a new key's rate; None: 600 and no cap.
    api_rate_limit_per_minute: Mapped[int | None] = mapped_column()
    # The longest lifetime an API key of this tenant may have; None: no maximum (keys may never expire).
    api_key_max_days: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE
