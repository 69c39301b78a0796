"""Declarative base and the two kinds of table: platform-wide and tenant-owned."""

from __future__ import annotations

import os
import threading
import time
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


_entropy = threading.local()
_ENTROPY_CHUNK = 4096
_generation = 0  # bumped in a forked child: every pool read before the fork is then stale


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def _random(count: int) -> bytes:
    """``count`` bytes of the system's randomness, read 4 KiB at a time per thread: a syscall per id cost
    a tenth of a process step's CPU. The pool is per thread and per process: a forked worker reads its own,
    never its parent's copy (a fork hook marks the parent's pools stale; asking ``os.getpid()`` on every
    call was a syscall per id again)."""
    if getattr(_entropy, "generation", None) != _generation or _entropy.pos + count > len(_entropy.pool):
        _entropy.pool = os.urandom(max(_ENTROPY_CHUNK, count))
        _entropy.pos = 0
        _entropy.generation = _generation
    start = _entropy.pos
    _entropy.pos = start + count
    return _entropy.pool[start:start + count]


def _uuid7(millis: int, rand: int) -> uuid.UUID:
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62)
                     | (rand & ((1 << 62) - 1)))


def new_id() -> uuid.UUID:
    """Time-ordered UUID (v7 layout): index inserts stay local, ids still unguessable."""
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    return _uuid7(millis, int.from_bytes(_random(10), "big"))


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` ids of the same layout as :func:`new_id`, from one read of the system's randomness."""
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    pool = _random(10 * count)
    return [_uuid7(millis, int.from_bytes(pool[10 * n:10 * n + 10], "big")) for n in range(count)]


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
