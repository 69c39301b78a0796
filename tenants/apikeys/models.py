"""API keys of a tenant's systems, and the idempotency records of their POST requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow

import uuid


class ApiKey(TenantOwned, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        # SHA-256 of 32 random bytes never collides; the tenant is still part of the constraint so the
        # table can be distributed by tenant. Lookup before the tenant is known uses the plain index.
        UniqueConstraint("tenant_id", "key_hash"),
        Index("ix_api_keys_key_hash", "key_hash"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    )

    name: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(4))  # live | test
    key_hash: Mapped[str] = mapped_column(String(64))
    display_prefix: Mapped[str] = mapped_column(String(24))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    last_used_ip: Mapped[str | None] = mapped_column(String(45))


class IdempotencyRecord(TenantOwned, Base):
    """The first response to a POST with an ``Idempotency-Key``, replayed for 24 hours to the key that sent it.

    The Idempotency-Key is unique per API key (``api_key_id`` is the principal): another key of the same
    company never finds this record. One-time secrets in the answer are not stored (web/api/idempotency.py).
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "api_key_id", "idempotency_key"),
        Index("ix_idempotency_records_expires", "tenant_id", "expires_at"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(255))
    api_key_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    request_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    response_status: Mapped[int | None] = mapped_column(Integer)  # None while in progress
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
