"""Scheduling, canceling and firing durable timers.

A timer is keyed per tenant (``dunning:<case>:deadline``): scheduling a key that exists changes nothing,
so a process step that runs twice schedules once. Firing claims due rows and turns each into a canonical
event (source ``timer``, external id = key) in the same transaction that marks it fired; the event's
deduplication on (tenant, source, external id) guards a repeat even if a claim were ever doubled.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import Database, dialect_insert, ensure_scope
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.timers.clock import offsets
from backoffice.platform.timers.models import Timer
log = logging.getLogger(__name__)

SOURCE = "timer"


@dataclass(frozen=True)
class EventSink:
    """Where a timer's event goes: the domain's event intake, installed by the composition root
    (``web/entry/wiring.py``), so the kernel names no domain. ``validate`` turns the canonical dict into the
    intake's event (raising ``ValidationFailed``); ``ingest`` stores up to ``max_batch`` of them in the
    caller's transaction."""

    validate: Callable[[dict[str, Any]], Any]
    ingest: Callable[[AsyncSession, uuid.UUID, list[Any]], Awaitable[Any]]
    max_batch: int


_sink: EventSink | None = None


def install_sink(sink: EventSink) -> None:
    global _sink
    _sink = sink


def event_sink() -> EventSink:
    if _sink is None:
        raise RuntimeError("timers have no event sink: the composition root (web/entry/wiring.py) installs it")
    return _sink


def timer_event(
    *, key: str, event_type: str, due_at: datetime, customer_id: uuid.UUID | None, payload: dict[str, Any] | None
) -> dict[str, Any]:
    """The canonical event a timer emits when it comes due."""
    return {
        "type": event_type, "source": SOURCE, "external_id": key, "occurred_at": due_at,
        "customer": {"id": str(customer_id)} if customer_id else None, "data": payload or {},
    }


async def schedule_timer(
    session: AsyncSession, tenant_id: uuid.UUID, *, key: str, event_type: str, due_at: datetime,
    customer_id: uuid.UUID | None = None, payload: dict[str, Any] | None = None,
) -> Timer:
    """Schedule once per (tenant, key); an existing timer (pending, fired or canceled) is returned as is.

    The event is validated now, so a timer that could never become an event is refused to its caller
    instead of failing in the scheduler weeks later.
    """
    ensure_scope(session, tenant_id)
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    event_sink().validate(timer_event(key=key, event_type=event_type, due_at=due_at, customer_id=customer_id, payload=payload))
    statement = (
        dialect_insert(session)(Timer)
        .values(tenant_id=tenant_id, key=key, event_type=event_type,
                due_at=due_at, customer_id=customer_id, payload=payload or {}, created_at=clock.now())
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
    )
    await session.execute(statement)
    query = select(Timer).where(Timer.tenant_id == tenant_id, Timer.key == key)
    return (await session.execute(query)).scalar_one()


# Timers a process step scheduled, not written yet: {(tenant, key): row} in the session's info (first wins,
# as the unique key does). ``flush_timers`` writes them in one statement.
PENDING = "timers.pending"


def defer_timer(
    session: AsyncSession, tenant_id: uuid.UUID, *, key: str, event_type: str, due_at: datetime,
    customer_id: uuid.UUID | None = None, payload: dict[str, Any] | None = None,
) -> None:
    """:func:`schedule_timer` for a batch of process steps: validated now, written with the batch's other
    timers by :func:`flush_timers` (the engine calls it after each wave of steps, inside their savepoint).
    ``cancel_timers`` flushes first, so a step that schedules and a later one that cancels see one order."""
    ensure_scope(session, tenant_id)
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    event_sink().validate(timer_event(key=key, event_type=event_type, due_at=due_at, customer_id=customer_id,
                                      payload=payload))
    session.info.setdefault(PENDING, {}).setdefault((tenant_id, key), {
        "tenant_id": tenant_id, "key": key, "event_type": event_type, "due_at": due_at, "customer_id": customer_id,
        "payload": payload or {}, "created_at": clock.now()})


async def flush_timers(session: AsyncSession) -> int:
    """Write the deferred timers (an existing key is left as it is); returns how many were pending."""
    pending = session.info.pop(PENDING, None)
    if not pending:
        return 0
    # Core, not the ORM's bulk path: nothing needs the rows back (the table's Python defaults still apply).
    statement = dialect_insert(session)(Timer.__table__).on_conflict_do_nothing(index_elements=["tenant_id", "key"])
    await session.execute(statement, list(pending.values()))
    return len(pending)


def forget_timers(session: AsyncSession) -> None:
    """Drop the deferred timers (their steps' savepoint rolled back)."""
    session.info.pop(PENDING, None)


async def cancel_timers(
    session: AsyncSession, tenant_id: uuid.UUID, *, keys: Iterable[str] | None = None, key_prefix: str | None = None,
) -> int:
    """Cancel the tenant's pending timers named by ``keys`` or starting with ``key_prefix``; returns how many.

    Fired timers stay fired. Asking for neither is refused rather than read as "cancel everything".
    """
    ensure_scope(session, tenant_id)
    await flush_timers(session)
    if keys is None and not key_prefix:
        raise ValueError("cancel_timers needs keys or key_prefix")
    conditions = [Timer.tenant_id == tenant_id, Timer.fired_at.is_(None), Timer.canceled_at.is_(None)]
    if keys is not None:
        keys = list(keys)
        if not keys:
            return 0
        conditions.append(Timer.key.in_(keys))
    if key_prefix:
        conditions.append(Timer.key.startswith(key_prefix, autoescape=True))
    result = await session.execute(
        update(Timer).where(*conditions).values(canceled_at=clock.now()).execution_options(synchronize_session=False)
    )
    return result.rowcount


async def fire_due_timers(database: Database, *, limit: int = 500) -> int:
    """Fire up to ``limit`` due timers across tenants; returns how many fired.

    The claim is one UPDATE ... RETURNING over a ``FOR UPDATE SKIP LOCKED`` subquery (PostgreSQL; SQLite
    serialises writers): two schedulers firing at once take disjoint timers, and each marks and emits in
    one transaction, so a timer fires once.

    A tenant whose clock was run forward (demo, staging: ``timers/clock.py``) has its timers due by its own
    time: one small read of the shifted tenants, then one condition per shifted tenant in the same claim.
    """
    now = clock.now()
    async with database.system() as session:
        shifted = await offsets(session)
        due_now = Timer.due_at <= now
        if shifted:
            due_now = or_(and_(Timer.tenant_id.not_in(list(shifted)), Timer.due_at <= now),
                          *(and_(Timer.tenant_id == tenant_id, Timer.due_at <= now + offset)
                            for tenant_id, offset in shifted.items()))
        due = (
            select(Timer.tenant_id, Timer.id)
            .where(Timer.fired_at.is_(None), Timer.canceled_at.is_(None), due_now)
            .order_by(Timer.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(Timer)
            .where(tuple_(Timer.tenant_id, Timer.id).in_(due))
            .values(fired_at=now)
            .returning(Timer)
            .execution_options(synchronize_session=False)
        )
        # Emitted in due order, so the relay hands a tenant's events to the workers in that order too.
        timers = sorted((await session.execute(claim)).scalars(), key=lambda timer: (timer.due_at, timer.key))
        sink = event_sink()
        by_tenant: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for timer in timers:
            event = _event_or_none(sink, timer)
            if event is not None:
                by_tenant[timer.tenant_id].append(event)
            else:
                timer.fired_at, timer.canceled_at = None, now
        for tenant_id, events in by_tenant.items():
            for start in range(0, len(events), sink.max_batch):
                await sink.ingest(session, tenant_id, events[start:start + sink.max_batch])
    return sum(len(events) for events in by_tenant.values())


def _event_or_none(sink: EventSink, timer: Timer) -> Any | None:
    try:
        return sink.validate(timer_event(key=timer.key, event_type=timer.event_type, due_at=timer.due_at,
                                    customer_id=timer.customer_id, payload=timer.payload))
    except ValidationFailed as error:
        # Validated when scheduled, so only a catalogue change gets here; one bad timer must not block
        # every other tenant's timers behind it, so it is canceled (not fired) and logged loudly.
        log.error("timer %s of tenant %s cannot become an event and is canceled: %s",
                  timer.key, timer.tenant_id, error)
        return None
