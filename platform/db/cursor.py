"""An opaque keyset cursor over (time, id), for lists read newest first (the audit log, the feedback inbox).

Platform code cannot reach the API's paginator (``web/api/pagination.py``), and these lists need only one
sort; the cursor names the list it was made for, so one list's cursor is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from backoffice.platform.errors import FieldError, InputRefused

CURSOR_MAX = 200


def encode_cursor(kind: str, at: datetime, ident: uuid.UUID) -> str:
    raw = json.dumps([kind, at.isoformat(), str(ident)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, field: str = "cursor") -> tuple[datetime, uuid.UUID]:
    """The (time, id) a cursor of ``kind`` carries; anything else is refused naming ``field``."""
    try:
        if len(cursor) > CURSOR_MAX:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_kind, at, ident = json.loads(raw)
        at, ident = datetime.fromisoformat(at), uuid.UUID(ident)
        if cursor_kind != kind or at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, UnicodeDecodeError):
        raise InputRefused(FieldError(field, "not a cursor this list gave")) from None
    return at, ident
