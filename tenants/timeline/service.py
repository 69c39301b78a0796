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
from backoffice.tenants.timeline.models import TimelineEntry

NOTE_MAX = 4000
NOTE_KINDS = ("note", "feedback")


async def timeline(session: AsyncSession, customer_id: uuid.UUID, *, limit: int = 300) -> list[TimelineEntry]:
    query = (select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
             .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(limit))
    return list((await session.execute(query)).scalars())


async def add_note(session: AsyncSession, customer_id: uuid.UUID, *, text: str, author_id: uuid.UUID,
                   label: str = "note", acting: Actor) -> TimelineEntry:
    """A note or feedback on the customer's timeline, where the back office reads it."""
    customer = await get_owned(session, Customer, customer_id)
    text = (text or "").strip()
    problems = []
    if not text:
        problems.append(FieldError("text", "expected the note's text"))
    elif "\x00" in text:
        problems.append(FieldError("text", "contains a NUL character"))
    elif len(text) > NOTE_MAX:
        problems.append(FieldError("text", f"expected at most {NOTE_MAX} characters"))
    if label not in NOTE_KINDS:
        problems.append(FieldError("label", f"expected one of {', '.join(NOTE_KINDS)}"))
    if problems:
        raise ValidationFailed(problems)
    first_line = text.splitlines()[0]
    entry = TimelineEntry(customer_id=customer.id, at=clock.now(), kind="note", title=first_line[:300], reason=text,
                          author_id=author_id, ref={"label": label, "author": acting.label})
    session.add(entry)
    await session.flush()
    await record(session, actor=acting, action="timeline.note_added", target_type="customer", target_id=customer.id,
                 tenant_id=customer.tenant_id, detail={"entry_id": str(entry.id), "label": label})
    return entry
