"""Reading a customer's timeline and recording what the front office learns (notes, feedback)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.timeline.models import FeedbackItem, FeedbackState, TimelineEntry

NOTE_MAX = 4000
NOTE_KINDS = ("note", "feedback")
# The timeline kind of a staff member's answer to a note: front-office users cannot record it themselves.
REPLY_KIND = "reply"


# What a reader filters the timeline by: what happened, what the platform did about it, what people said.
TIMELINE_FILTERS = {"events": ("event",), "effects": ("effect", "transition"), "notes": ("note", "reply")}


async def timeline(session: AsyncSession, customer_id: uuid.UUID, *, limit: int = 300,
                   show: str | None = None) -> list[TimelineEntry]:
    query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
    if show in TIMELINE_FILTERS:
        query = query.where(TimelineEntry.kind.in_(TIMELINE_FILTERS[show]))
    query = query.order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def add_note(session: AsyncSession, customer_id: uuid.UUID, *, text: str, author_id: uuid.UUID,
                   label: str = "note", acting: Actor) -> TimelineEntry:
    """A note or feedback on the customer's timeline, where the back office reads it."""
    customer = await get_owned(session, Customer, customer_id)
    text = (text or "").strip()
    problems = _text_problems(text)
    if label not in NOTE_KINDS:
        problems.append(FieldError("label", f"expected one of {', '.join(NOTE_KINDS)}"))
    if problems:
        raise ValidationFailed(problems)
    first_line = text.splitlines()[0]
    entry = TimelineEntry(customer_id=customer.id, at=clock.now(), kind="note", title=first_line[:300], reason=text,
                          author_id=author_id, ref={"label": label, "author": acting.label})
    session.add(entry)
    await session.flush()
    # The staff's feedback inbox reads its own narrow row, written with the note.
    session.add(FeedbackItem(id=entry.id, entry_id=entry.id, customer_id=customer.id, kind=label, recorded_at=entry.at,
                             state=FeedbackState.UNREAD, replies=0))
    await session.flush()
    await record(session, actor=acting, action="timeline.note_added", target_type="customer", target_id=customer.id,
                 tenant_id=customer.tenant_id, detail={"entry_id": str(entry.id), "label": label})
    return entry


def _text_problems(text: str) -> list[FieldError]:
    if not text:
        return [FieldError("text", "expected the note's text")]
    if "\x00" in text:
        return [FieldError("text", "contains a NUL character")]
    if len(text) > NOTE_MAX:
        return [FieldError("text", f"expected at most {NOTE_MAX} characters")]
    return []


def _state(value: str) -> FeedbackState:
    try:
        return FeedbackState(value)
    except ValueError:
        raise ValidationFailed(FieldError("state", f"expected one of {', '.join(s.value for s in FeedbackState)}")) \
            from None


async def mark_feedback(session: AsyncSession, item_id: uuid.UUID, *, state: str, acting: Actor) -> FeedbackItem:
    """A staff member marks a feedback item unread, read or acknowledged (through ``Database.provider``)."""
    item = await get_owned(session, FeedbackItem, item_id)  # another tenant's item: NotFound, whatever the input
    new_state = _state(state)
    if item.state == new_state:
        return item
    before = item.state
    item.state, item.state_changed_at, item.state_changed_by = new_state, clock.now(), acting.label[:254]
    await session.flush()
    await record(session, actor=acting, action=f"feedback.{new_state.value}", target_type="feedback_item",
                 target_id=item.id, tenant_id=item.tenant_id,
                 detail={"from": before.value, "customer_id": str(item.customer_id)})
    return item


async def reply_to_feedback(session: AsyncSession, item_id: uuid.UUID, *, text: str, author_name: str,
                            acting: Actor) -> TimelineEntry:
    """A staff member's answer: a ``reply`` entry on the customer's timeline, where the front office reads
    it on the customer's page; the item counts as acknowledged."""
    item = await get_owned(session, FeedbackItem, item_id)
    text = (text or "").strip()
    problems = _text_problems(text)
    if problems:
        raise ValidationFailed(problems)
    now = clock.now()
    entry = TimelineEntry(customer_id=item.customer_id, at=now, kind=REPLY_KIND, title=text.splitlines()[0][:300],
                          reason=text, ref={"label": "staff_reply", "author": author_name[:200],
                                            "in_reply_to": str(item.entry_id)})
    session.add(entry)
    item.replies += 1
    item.last_reply_at = now
    if item.state != FeedbackState.ACKNOWLEDGED:
        item.state, item.state_changed_at, item.state_changed_by = FeedbackState.ACKNOWLEDGED, now, acting.label[:254]
    await session.flush()
    await record(session, actor=acting, action="feedback.replied", target_type="feedback_item", target_id=item.id,
                 tenant_id=item.tenant_id, detail={"reply_entry_id": str(entry.id),
                                                   "customer_id": str(item.customer_id)})
    return entry
