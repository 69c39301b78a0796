"""A tenant's configured connector instances."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class Health(enum.StrEnum):
    UNKNOWN = "unknown"  # nothing sent or received yet
    OK = "ok"  # the last exchange succeeded
    FAILING = "failing"  # the last exchange failed; last_error says why


class ConnectorInstance(TenantOwned, Base):
    """One configured connection of a tenant to an outside system (its Asaas account, its SMTP server).

    ``config`` holds the kind's settings as JSON with every secret field (``SecretStr`` in the kind's
    config model) encrypted with ``platform/security/secrets``; read it through
    ``connectors.service.load_config`` and show it through ``describe``, never directly.
    """

    __tablename__ = "connector_instances"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        Index("ix_connector_instances_kind", "tenant_id", "kind", "enabled"),
    )

    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    health: Mapped[Health] = mapped_column(str_enum(Health, 16), default=Health.UNKNOWN)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    last_success_at: Mapped[datetime | None] = mapped_column()
    last_error_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
