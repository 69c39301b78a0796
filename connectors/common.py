"""Small helpers the provider kinds share: JSON bodies, money, time, constant-time comparison, ids in paths."""

from __future__ import annotations

import hmac
import json
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from backoffice.connectors.kinds import InboundRequest, MalformedPayload

BRAZIL = ZoneInfo("America/Sao_Paulo")


def json_body(request: InboundRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedPayload(f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise MalformedPayload("the body is not a JSON object")
    return body


def required_field(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...``, or MalformedPayload naming the missing field."""
    value = mapping
    for depth, key in enumerate(path):
        if not isinstance(value, dict) or value.get(key) in (None, ""):
            raise MalformedPayload(f"missing field {'.'.join(path[:depth + 1])}")
        value = value[key]
    return value


def cents(value: Any, field: str) -> int:
    """A decimal amount in reais (``199.9``) as exact integer cents (``19990``); never through float."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MalformedPayload(f"{field}: expected a decimal amount") from None
    scaled = amount * 100
    if not amount.is_finite() or scaled != scaled.to_integral_value() or amount < 0:
        raise MalformedPayload(f"{field}: expected a non-negative amount with at most two decimals")
    return int(scaled)


def brazil_day(value: str | None) -> datetime | None:
    """A provider's calendar date (São Paulo) as the instant the day began there."""
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value[:10]), time(0), tzinfo=BRAZIL).astimezone(UTC)
    except ValueError:
        raise MalformedPayload(f"expected an ISO date, got {value[:20]!r}") from None


def from_unix(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError):
        raise MalformedPayload("expected a Unix timestamp") from None


def credential_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented credential with the configured one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def segment(value: Any, shape: re.Pattern[str], field: str, expected: str) -> str:
    """A provider id checked against its documented shape and escaped as one path segment: an id is never
    allowed to walk to another path (``../../v3/customers?x=``) with the tenant's credentials."""
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise MalformedPayload(f"{field}: expected {expected}")
    return quote(value, safe="")
