"""Intake: one event and its outbox row stored together, deduplicated per tenant, batches with one result per
event (duplicates inside a batch, across batches and against concurrent twins), bad input named by field; the
API's single event in one call of its own (``ingest_alone``), with the same guarantees."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import func, select, text

from backoffice.platform.db.session import TenantMismatch
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.events.intake import PROCESS_JOB, ingest, ingest_alone, ingest_batch, validate
from backoffice.tenants.events.models import Event


def created(external_id: str, source: str = "api") -> dict:
    return {"type": "payment.created", "source": source, "external_id": external_id,
            "customer": {"external_id": "cus_1", "source": source},
            "data": {"charge": {"external_id": f"ch-{external_id}", "amount_cents": 990, "due_date": "2026-12-05"}}}


async def stored(database, tenant_id) -> tuple[list[Event], list[OutboxEntry]]:
    async with database.tenant(tenant_id) as session:
        events = list((await session.execute(select(Event).order_by(Event.id))).scalars())
        outbox = list((await session.execute(select(OutboxEntry).order_by(OutboxEntry.id))).scalars())
    return events, outbox


async def test_one_event_is_stored_with_its_outbox_row_and_a_repeat_is_a_duplicate(database, tenants):
    a, b = tenants.a.id, tenants.b.id
    async with database.tenant(a) as session:
        first = await ingest(session, a, created("evt-1"))
    async with database.tenant(a) as session:
        again = await ingest(session, a, created("evt-1"))
    async with database.tenant(b) as session:  # the same key at another tenant is another event
        theirs = await ingest(session, b, created("evt-1"))
    assert first.status == "accepted" and again.status == "duplicate" and again.event_id == first.event_id
    assert theirs.status == "accepted" and theirs.event_id != first.event_id

    events, outbox = await stored(database, a)
    assert [e.id for e in events] == [first.event_id]
    assert events[0].subject == {"external_id": "cus_1", "source": "api"}
    assert events[0].data["charge"]["amount_cents"] == 990 and events[0].status == "pending"
    assert [(o.job, o.payload, o.tenant_id) for o in outbox] == [(PROCESS_JOB, {"event_id": str(first.event_id)}, a)]
    assert outbox[0].available_at == outbox[0].created_at == events[0].received_at
    _, their_outbox = await stored(database, b)
    assert [o.payload for o in their_outbox] == [{"event_id": str(theirs.event_id)}]


async def test_nothing_is_stored_when_the_callers_transaction_rolls_back(database, tenants):
    a = tenants.a.id
    with pytest.raises(RuntimeError):
        async with database.tenant(a) as session:
            await ingest(session, a, created("evt-rb"))
            raise RuntimeError("the request failed after intake")
    assert await stored(database, a) == ([], [])


async def test_a_batch_reports_each_event_with_duplicates_inside_and_across_batches(database, tenants):
    a = tenants.a.id
    async with database.tenant(a) as session:
        [early] = await ingest_batch(session, a, [validate(created("x-0"))])
    batch = [validate(created(n)) for n in ("x-1", "x-2", "x-1", "x-0", "x-3")]
    batch.append(validate(created("x-1", source="asaas")))  # same external id, another source: another event
    async with database.tenant(a) as session:
        results = await ingest_batch(session, a, batch)
    assert [r.status for r in results] == ["accepted", "accepted", "duplicate", "duplicate", "accepted", "accepted"]
    assert results[2].event_id == results[0].event_id and results[3].event_id == early.event_id
    assert len({r.event_id for r in results}) == 5
    async with database.tenant(a) as session:
        again = await ingest_batch(session, a, batch)
    assert [r.status for r in again] == ["duplicate"] * 6
    assert [r.event_id for r in again] == [r.event_id for r in results]

    events, outbox = await stored(database, a)
    assert len(events) == 5
    assert sorted(o.payload["event_id"] for o in outbox) == sorted(str(e.id) for e in events)
    assert {o.job for o in outbox} == {PROCESS_JOB}
    by_id = {e.id: e for e in events}
    assert by_id[results[5].event_id].source == "asaas" and by_id[results[1].event_id].external_id == "x-2"
    assert await stored(database, tenants.b.id) == ([], [])


async def test_a_session_of_one_tenant_refuses_intake_for_another(database, tenants):
    async with database.tenant(tenants.b.id) as session:
        with pytest.raises(TenantMismatch):
            await ingest(session, tenants.a.id, created("evt-x"))
        with pytest.raises(TenantMismatch):
            await ingest_batch(session, tenants.a.id, [validate(created("evt-y"))])
    assert await stored(database, tenants.a.id) == ([], [])


@pytest.mark.parametrize(("change", "field"), [
    ({"occurred_at": "2026-11-02T14:00:00"}, "occurred_at"),
    ({"external_id": ""}, "external_id"),
    ({"data": {"charge": {"external_id": "c", "amount_cents": "lots", "due_date": "2026-12-05"}}},
     "data.charge.amount_cents"),
])
async def test_bad_input_is_refused_naming_the_field(database, tenants, change, field):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await ingest(session, tenants.a.id, {**created("evt-bad"), **change})
    assert [e.field for e in refused.value.errors] == [field]


@pytest.mark.postgres_only
async def test_a_concurrent_twin_is_reported_as_the_duplicate_of_the_committed_event(database, tenants):
    """The second insert waits on the first's uncommitted row; once that commits, it gets the stored id."""
    a = tenants.a.id
    first_session = database.tenant_session(a)
    async with first_session, first_session.begin():
        first = await ingest(first_session, a, created("evt-race"))

        async def twin():
            async with database.tenant(a) as session:
                return await ingest(session, a, created("evt-race"))

        waiting = asyncio.create_task(twin())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the uncommitted row
    second = await asyncio.wait_for(waiting, 10)
    assert (second.status, second.event_id) == ("duplicate", first.event_id)

    async def twin_batch():
        async with database.tenant(a) as session:
            return await ingest_batch(session, a, [validate(created("evt-race")), validate(created("evt-race-2"))])

    other = database.tenant_session(a)
    async with other, other.begin():
        [mine] = await ingest_batch(other, a, [validate(created("evt-race-2"))])
        waiting = asyncio.create_task(twin_batch())
        await asyncio.sleep(0.3)
    results = await asyncio.wait_for(waiting, 10)
    assert [(r.status, r.event_id) for r in results] == [("duplicate", first.event_id), ("duplicate", mine.event_id)]
    async with database.system() as session:
        count = (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one()
    assert count == 2


@pytest.mark.postgres_only
async def test_the_outbox_payload_is_the_same_json_text_as_before(database, tenants):
    a = tenants.a.id
    async with database.tenant(a) as session:
        result = await ingest(session, a, created("evt-text"))
        [batch] = await ingest_batch(session, a, [validate(created("evt-text-2"))])
    async with database.system() as session:
        payloads = set((await session.execute(text("SELECT payload::text FROM outbox"))).scalars())
    assert payloads == {json.dumps({"event_id": str(result.event_id)}), json.dumps({"event_id": str(batch.event_id)})}


async def test_an_event_alone_is_stored_with_its_outbox_row_once_per_tenant(database, tenants):
    """The API's single-event path: no session of the caller's, one call that sets the tenant for itself."""
    a, b = tenants.a.id, tenants.b.id
    first = await ingest_alone(database, a, created("evt-alone"))
    again = await ingest_alone(database, a, created("evt-alone"))
    theirs = await ingest_alone(database, b, created("evt-alone"))
    assert (first.status, again.status, again.event_id) == ("accepted", "duplicate", first.event_id)
    assert theirs.status == "accepted" and theirs.event_id != first.event_id
    assert type(first.event_id) is type(again.event_id) is uuid.UUID  # not the driver's own type

    events, outbox = await stored(database, a)
    assert [e.id for e in events] == [first.event_id]
    assert events[0].subject == {"external_id": "cus_1", "source": "api"} and events[0].status == "pending"
    assert events[0].data["charge"]["amount_cents"] == 990
    assert [(o.job, o.payload, o.tenant_id) for o in outbox] == [(PROCESS_JOB, {"event_id": str(first.event_id)}, a)]
    assert outbox[0].available_at == outbox[0].created_at == events[0].received_at
    their_events, their_outbox = await stored(database, b)
    assert [e.id for e in their_events] == [theirs.event_id]
    assert [o.payload for o in their_outbox] == [{"event_id": str(theirs.event_id)}]
    with pytest.raises(ValidationFailed):
        await ingest_alone(database, a, {**created("evt-alone-bad"), "type": "no.such"})
    assert len((await stored(database, a))[0]) == 1


@pytest.mark.postgres_only
async def test_an_event_alone_waits_for_its_concurrent_twin_and_reports_its_id(database, tenants):
    a = tenants.a.id
    first_session = database.tenant_session(a)
    async with first_session, first_session.begin():
        first = await ingest(first_session, a, created("evt-alone-race"))
        waiting = asyncio.create_task(ingest_alone(database, a, created("evt-alone-race")))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the uncommitted row
    second = await asyncio.wait_for(waiting, 10)
    assert (second.status, second.event_id) == ("duplicate", first.event_id)

    many = await asyncio.gather(*(ingest_alone(database, a, created("evt-alone-many")) for _ in range(8)))
    assert sorted(r.status for r in many) == ["accepted"] + ["duplicate"] * 7
    assert len({r.event_id for r in many}) == 1
    async with database.system() as session:
        count = (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one()
    assert count == 2


@pytest.mark.postgres_only
async def test_the_tenant_an_event_alone_sets_ends_with_its_call(database, tenants):
    """The pooled connection goes back with no tenant: the next statement on it sees no tenant's rows."""
    a = tenants.a.id
    await ingest_alone(database, a, created("evt-alone-scope"))
    async with database.calls_engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        found = await driver.fetchrow(
            "SELECT event_id, created FROM bo_ingest_event($1, $2, 'payment.created', 'api', 'evt-alone-scope', "
            "now(), now(), '{}', '{}', $3, 'spine.process_event', '{}')", a, uuid.uuid4(), uuid.uuid4())
        assert found["created"] is False
        assert await driver.fetchval("SELECT coalesce(current_setting('app.tenant_id', true), '')") == ""
        assert await driver.fetchval("SELECT count(*) FROM events") == 0  # RLS: no tenant, no rows
