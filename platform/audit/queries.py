"""Searching the audit log: the one query the staff API (``GET /api/v1/staff/audit``) and the staff console's
audit page and CSV export call.

Reads through ``Database.system()`` with an explicit scope: the tenants the staff member serves, and the
provider-wide entries (no tenant) for provider admins only. Newest first, paged by an opaque cursor over
(occurred_at, id), served by ``ix_audit_log_time`` / ``ix_audit_log_tenant_time``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.cursor import decode_cursor, encode_cursor
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.input_rules import text_problem

PAGE = 50
PAGE_MAX = 500
CURSOR_KIND = "audit"
PROVIDER = "provider"  # the tenant filter's value for provider-wide entries (no tenant)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # part of the actor's label (an e-mail, cli:<user>, system:...), any case
    action: str | None = None  # an action or its prefix: "staff." finds staff.assigned, staff.unassigned, ...
    tenant_id: uuid.UUID | None = None
    provider_only: bool = False  # only provider-wide entries (no tenant)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _when(field: str, value: str | datetime | None, *, end: bool) -> datetime | None:
    """A date (the whole day, UTC) or a time with its UTC offset."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        value = value.strip()
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
            parsed = datetime.fromisoformat(value)
        except (ValueError, OverflowError):
            raise ValidationFailed(FieldError(field, "expected a date (YYYY-MM-DD) or a time with its UTC offset")) \
                from None
    if parsed.tzinfo is None:
        raise ValidationFailed(FieldError(field, "expected a time with its UTC offset"))
    return parsed


def audit_filter(*, actor: str | None = None, action: str | None = None, tenant: str | uuid.UUID | None = None,
                 since: str | datetime | None = None, until: str | datetime | None = None) -> AuditFilter:
    """The filters from what a person typed or an API call sent; every bad one is named (422)."""
    errors: list[FieldError] = []
    for field, value, limit in (("actor", actor, 254), ("action", action, 64)):
        problem = text_problem(value, limit) if isinstance(value, str) else None
        if problem:
            errors.append(FieldError(field, problem))
    tenant_id, provider_only = None, False
    if isinstance(tenant, uuid.UUID):
        tenant_id = tenant
    elif tenant and tenant.strip():
        if tenant.strip() == PROVIDER:
            provider_only = True
        else:
            try:
                tenant_id = uuid.UUID(tenant.strip()[:64])
            except ValueError:
                errors.append(FieldError("tenant", f"expected a company's id or {PROVIDER}"))
    bounds = {}
    for field, value, end in (("since", since, False), ("until", until, True)):
        if isinstance(value, str) and text_problem(value, 40):
            errors.append(FieldError(field, "expected a date (YYYY-MM-DD) or a time with its UTC offset"))
            continue
        try:
            bounds[field] = _when(field, value, end=end)
        except ValidationFailed as error:
            errors.extend(error.errors)
    if bounds.get("since") and bounds.get("until") and bounds["since"] >= bounds["until"]:
        errors.append(FieldError("until", "expected a time after since"))
    if errors:
        raise ValidationFailed(errors)
    return AuditFilter(actor=(actor or "").strip() or None, action=(action or "").strip() or None,
                       tenant_id=tenant_id, provider_only=provider_only, since=bounds.get("since"),
                       until=bounds.get("until"))


def _like(term: str, *, prefix: bool = False) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%" if prefix else "%" + escaped + "%"


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None


async def search_audit(
    session: AsyncSession, *, tenant_ids: list[uuid.UUID] | None, filters: AuditFilter = AuditFilter(),
    cursor: str | None = None, limit: int = PAGE,
) -> AuditPage:
    """Entries newest first. ``tenant_ids``: the tenants the reader serves, or None for a provider admin
    (every tenant and the provider-wide entries). A tenant filter outside ``tenant_ids`` finds nothing; the
    edge answers 404 for it before asking (the door)."""
    if not 1 <= limit <= PAGE_MAX:
        raise ValidationFailed(FieldError("limit", f"expected 1-{PAGE_MAX}"))
    query = select(AuditEntry)
    if tenant_ids is not None:
        if not tenant_ids or filters.provider_only:
            return AuditPage([], None)
        query = query.where(AuditEntry.tenant_id.in_(tenant_ids))
    if filters.provider_only:
        query = query.where(AuditEntry.tenant_id.is_(None))
    if filters.tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == filters.tenant_id)
    if filters.actor:
        query = query.where(AuditEntry.actor_label.ilike(_like(filters.actor), escape="\\"))
    if filters.action:
        query = query.where(AuditEntry.action.like(_like(filters.action, prefix=True), escape="\\"))
    if filters.since is not None:
        query = query.where(AuditEntry.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.occurred_at < filters.until)
    if cursor:
        at, ident = decode_cursor(CURSOR_KIND, cursor)
        query = query.where(or_(AuditEntry.occurred_at < at, and_(AuditEntry.occurred_at == at, AuditEntry.id < ident)))
    query = query.order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc()).limit(limit + 1)
    entries = list((await session.execute(query)).scalars())
    more = len(entries) > limit
    entries = entries[:limit]
    return AuditPage(entries, encode_cursor(CURSOR_KIND, entries[-1].occurred_at, entries[-1].id) if more else None)
