"""Declarative base and the two kinds of table: platform-wide and tenant-owned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """Time-ordered UUID (v7 layout): index inserts stay local, ids still unguessable."""
    import os
    import time

    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` ids of the same layout as :func:`new_id`, from one read of the system's randomness (a batch
    of a thousand rows would otherwise pay a thousand system calls)."""
    import os
    import time

    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    pool = os.urandom(10 * count)
    ids = []
    for n in range(count):
        rand = int.from_bytes(pool[10 * n:10 * n + 10], "big")
        ids.append(uuid.UUID(int=(millis << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62)
                             | (rand & ((1 << 62) - 1))))
    return ids


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both PostgreSQL (timestamptz) and SQLite (naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class PlatformOwned:
    """A table that belongs to the provider (tenants, staff, assignments): no tenant filter."""


class TenantOwned:
    """A table whose every row belongs to one tenant.

    The primary key is (tenant_id, id), so foreign keys carry the tenant and a row can never point at
    another tenant's row; the tenant-scoped session filters and stamps these rows, and PostgreSQL RLS
    guards them underneath.
    """

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
