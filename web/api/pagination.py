"""Cursor pagination: an opaque cursor over (sort value, id), stable while rows are added.

The cursor carries the sort it was made for; mixing a cursor with another sort is refused rather than
silently skipping or repeating rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

from backoffice.platform.errors import FieldError, ValidationFailed

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(sort: str, value: Any, ident: uuid.UUID) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, str(ident)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str, python_type: type) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, ident = json.loads(raw)
        ident = uuid.UUID(ident)
        if python_type is datetime:
            value = datetime.fromisoformat(value)
        elif not isinstance(value, python_type):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed(FieldError("cursor", "not a cursor this API returned")) from None
    if cursor_sort != sort:
        raise ValidationFailed(FieldError("cursor", f"this cursor was made for sort={cursor_sort}; keep the sort"))
    return value, ident


def _python_type(column: Any) -> type:
    # A TypeDecorator (UTCDateTime) answers ``object``; what its cursor value parses to is its impl's type.
    sql_type = column.type
    return (sql_type.impl_instance if isinstance(sql_type, TypeDecorator) else sql_type).python_type


async def paginate(
    session: AsyncSession, query: Select, model: type, *, sorts: dict[str, Any], sort: str, limit: int,
    cursor: str | None,
) -> Page:
    """``sorts`` maps each allowed public name to its column; ``-name`` sorts descending."""
    name = sort.removeprefix("-")
    if name not in sorts:
        allowed = ", ".join(sorted(sorts) + sorted(f"-{s}" for s in sorts))
        raise ValidationFailed(FieldError("sort", f"expected one of {allowed}"))
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(FieldError("limit", f"expected 1-{MAX_LIMIT}"))
    column, descending = sorts[name], sort.startswith("-")
    if cursor:
        value, ident = _decode(cursor, sort, _python_type(column))
        if descending:
            query = query.where(or_(column < value, and_(column == value, model.id < ident)))
        else:
            query = query.where(or_(column > value, and_(column == value, model.id > ident)))
    order = (column.desc(), model.id.desc()) if descending else (column.asc(), model.id.asc())
    rows = list((await session.execute(query.order_by(*order).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode(sort, getattr(rows[-1], column.key), rows[-1].id) if more else None
    return Page(rows, next_cursor)
