"""A row whose job never completes is given up on with its reason, and its event shows as failed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.outbox.exhausted import GIVE_UP_AFTER, MAX_DISPATCHES, give_up_exhausted
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.events.models import Event, EventStatus


def _event(external_id: str) -> dict:
    return {"type": "payment.overdue", "source": "tests", "external_id": external_id, "customer": {"tax_id": "39053344705"},
            "data": {"charge": {"external_id": external_id, "amount_cents": 100, "due_date": "2026-11-01"}}}


async def test_exhausted_rows_are_closed_with_the_reason_and_their_event_failed(database, tenants):
    a, b = tenants.a, tenants.b
    async with database.tenant(a.id) as session:
        stuck = await ingest(session, a.id, _event("stuck"))
        young = await ingest(session, a.id, _event("young"))
    async with database.tenant(b.id) as session:
        other = await ingest(session, b.id, _event("other"))
    past = clock.now() - timedelta(minutes=1)
    async with database.system() as session:
        for row in (await session.execute(select(OutboxEntry))).scalars():
            row.lease_until = past
            row.attempts = MAX_DISPATCHES if row.payload["event_id"] == str(stuck.event_id) else 3
    # Dispatched often but written minutes ago (a job failing for a while, messages lost in Redis restarts):
    # not given up on before an hour.
    assert await give_up_exhausted(database) == 0
    async with database.system() as session:
        for row in (await session.execute(select(OutboxEntry))).scalars():
            row.created_at = clock.now() - GIVE_UP_AFTER

    assert await give_up_exhausted(database) == 1
    async with database.tenant(a.id) as session:
        events = {e.id: e for e in (await session.execute(select(Event))).scalars()}
        rows = {r.payload["event_id"]: r for r in (await session.execute(select(OutboxEntry))).scalars()}
    assert events[stuck.event_id].status == EventStatus.FAILED
    assert "gave up after" in events[stuck.event_id].error
    assert rows[str(stuck.event_id)].completed_at is not None and "never completed" in rows[str(stuck.event_id)].last_error
    assert events[young.event_id].status == EventStatus.PENDING and rows[str(young.event_id)].completed_at is None
    async with database.tenant(b.id) as session:
        [b_event] = (await session.execute(select(Event))).scalars().all()
    assert b_event.id == other.event_id and b_event.status == EventStatus.PENDING
    assert await give_up_exhausted(database) == 0  # done once
