"""Reading what the front office records, for the provider's staff: the feedback inbox across the tenants a
staff member serves, and the unread count per tenant (the console's overview).

Both read through ``Database.system()`` and filter explicitly to the tenants given (``None``: every tenant,
for provider admins): one set-based statement each, whatever the number of tenants.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.cursor import decode_cursor, encode_cursor
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.input_rules import text_problem
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.timeline.models import FeedbackItem, FeedbackState, TimelineEntry
from backoffice.tenants.timeline.service import NOTE_KINDS, REPLY_KIND
from backoffice.tenants.users.models import TenantUser

INBOX_PAGE = 50
SEARCH_MAX = 200
CURSOR_KIND = "feedback"


@dataclass(frozen=True)
class FeedbackFilter:
    tenant_id: uuid.UUID | None = None
    kind: str | None = None
    state: FeedbackState | None = None
    text: str | None = None


def feedback_filter(*, tenant: str = "", kind: str = "", state: str = "", text: str = "") -> FeedbackFilter:
    """The inbox's filters from what a person typed; every bad one is named at once (422)."""
    errors: list[FieldError] = []
    for field, value, limit in (("tenant", tenant, 64), ("kind", kind, 16), ("state", state, 16),
                                ("q", text, SEARCH_MAX)):
        problem = text_problem(value, limit)
        if problem:
            errors.append(FieldError(field, problem))
    if errors:
        raise ValidationFailed(errors)
    tenant_id = None
    if tenant.strip():
        try:
            tenant_id = uuid.UUID(tenant.strip())
        except ValueError:
            errors.append(FieldError("tenant", "expected a company's id"))
    if kind and kind not in NOTE_KINDS:
        errors.append(FieldError("kind", f"expected one of {', '.join(NOTE_KINDS)}"))
    if state and state not in FeedbackState._value2member_map_:
        errors.append(FieldError("state", f"expected one of {', '.join(s.value for s in FeedbackState)}"))
    if errors:
        raise ValidationFailed(errors)
    return FeedbackFilter(tenant_id=tenant_id, kind=kind or None, state=FeedbackState(state) if state else None,
                          text=text.strip() or None)


@dataclass(frozen=True)
class FeedbackRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    customer_id: uuid.UUID
    customer_name: str
    kind: str
    recorded_at: datetime
    state: FeedbackState
    state_changed_by: str | None
    replies: int
    text: str
    author: str


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def feedback_inbox(
    session: AsyncSession, *, tenant_ids: list[uuid.UUID] | None, filters: FeedbackFilter = FeedbackFilter(),
    cursor: str | None = None, limit: int = INBOX_PAGE,
) -> tuple[list[FeedbackRow], str | None]:
    """Newest first, across ``tenant_ids`` (None: every tenant); answers the page and the next page's cursor."""
    if tenant_ids is not None and not tenant_ids:
        return [], None
    author = func.coalesce(TenantUser.name, "")
    query = (
        select(FeedbackItem, Tenant.display_name, Customer.name, TimelineEntry.reason, TimelineEntry.title, author,
               TimelineEntry.ref)
        .join(Tenant, Tenant.id == FeedbackItem.tenant_id)
        .join(Customer, and_(Customer.tenant_id == FeedbackItem.tenant_id, Customer.id == FeedbackItem.customer_id))
        .join(TimelineEntry, and_(TimelineEntry.tenant_id == FeedbackItem.tenant_id,
                                  TimelineEntry.id == FeedbackItem.entry_id))
        .outerjoin(TenantUser, and_(TenantUser.tenant_id == TimelineEntry.tenant_id,
                                    TenantUser.id == TimelineEntry.author_id))
    )
    if tenant_ids is not None:
        query = query.where(FeedbackItem.tenant_id.in_(tenant_ids))
    if filters.tenant_id is not None:
        query = query.where(FeedbackItem.tenant_id == filters.tenant_id)
    if filters.kind:
        query = query.where(FeedbackItem.kind == filters.kind)
    if filters.state is not None:
        query = query.where(FeedbackItem.state == filters.state)
    if filters.text:
        query = query.where(TimelineEntry.reason.ilike(_like(filters.text), escape="\\"))
    if cursor:
        at, ident = decode_cursor(CURSOR_KIND, cursor)
        query = query.where(or_(FeedbackItem.recorded_at < at,
                                and_(FeedbackItem.recorded_at == at, FeedbackItem.id < ident)))
    query = query.order_by(FeedbackItem.recorded_at.desc(), FeedbackItem.id.desc()).limit(limit + 1)
    rows = []
    for item, tenant_name, customer_name, text, title, author_name, ref in (await session.execute(query)).all():
        rows.append(FeedbackRow(
            id=item.id, tenant_id=item.tenant_id, tenant_name=tenant_name, customer_id=item.customer_id,
            customer_name=customer_name, kind=item.kind, recorded_at=item.recorded_at, state=item.state,
            state_changed_by=item.state_changed_by, replies=item.replies, text=text or title,
            author=author_name or (ref or {}).get("author", "")))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(CURSOR_KIND, rows[-1].recorded_at, rows[-1].id) if more else None
    return rows, next_cursor


@dataclass(frozen=True)
class FeedbackThread:
    item: FeedbackItem
    entry: TimelineEntry
    customer: Customer
    author: str
    replies: list[TimelineEntry]


async def feedback_thread(session: AsyncSession, item_id: uuid.UUID) -> FeedbackThread:
    """One item with its note, customer and the staff's replies to it, within the session's tenant
    (``Database.provider``); NotFound for another tenant's item, like a missing one."""
    item = await get_owned(session, FeedbackItem, item_id)
    entry = await get_owned(session, TimelineEntry, item.entry_id)
    customer = await get_owned(session, Customer, item.customer_id)
    author = ""
    if entry.author_id is not None:
        user = await session.get(TenantUser, (item.tenant_id, entry.author_id))
        author = user.name if user else ""
    candidates = (await session.execute(
        select(TimelineEntry).where(TimelineEntry.customer_id == item.customer_id, TimelineEntry.kind == REPLY_KIND,
                                    TimelineEntry.at >= entry.at)
        .order_by(TimelineEntry.at, TimelineEntry.id).limit(500))).scalars()
    replies = [reply for reply in candidates if (reply.ref or {}).get("in_reply_to") == str(entry.id)]
    return FeedbackThread(item, entry, customer, author or (entry.ref or {}).get("author", ""), replies)


def customer_timeline_query(customer_id: uuid.UUID) -> Select:
    """A customer's timeline entries, for the tenant's API to page through (the tenant door scopes it)."""
    return select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
