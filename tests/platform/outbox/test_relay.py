"""The relay hands every outbox row to the broker once per lease, fairly across tenants.

Most tests read what the relay sent from the in-process StubBroker's queue (both backends); one runs the
production shape end to end: PostgreSQL, the real Redis broker and a dramatiq worker completing rows.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from queue import Empty

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.base import new_id
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.db.base import UTCDateTime
from backoffice.platform.outbox.relay import _CLAIM_POSTGRES, Relay, relay_once
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.worker.broker import RECOVERED_QUEUE, build_broker
from backoffice.platform.worker.jobs import register_jobs, tenant_job
from tests.conftest import RUN_ID

QUEUE = "tests-relay"
RAN: list[tuple[uuid.UUID, str]] = []  # (tenant, label) of every run of the probe job


# Declared at import, like every job module, so every broker the tests build knows it.
@tenant_job("tests.relay.probe", queue=QUEUE, max_retries=0)
async def probe(session, *, tenant_id: uuid.UUID, label: str) -> None:
    RAN.append((tenant_id, label))


@pytest.fixture
def broker(database) -> StubBroker:
    broker = build_broker(database.settings)
    assert isinstance(broker, StubBroker)
    yield broker
    broker.flush_all()


@pytest.fixture
def frozen() -> FrozenClock:
    frozen = FrozenClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


def drain(broker: StubBroker, queues: tuple[str, ...] = (QUEUE, RECOVERED_QUEUE)) -> list[dramatiq.Message]:
    """Every message sent so far (and taken off the queues, so the next call sees only new ones): on the
    probe's queue, and on the queue of recovered work (rows handed out again after their lease ran out)."""
    messages = []
    for name in queues:
        queue = broker.queues[name]
        while True:
            try:
                messages.append(dramatiq.Message.decode(queue.get_nowait()))
            except Empty:
                break
            queue.task_done()
    return messages


async def add_rows(database, tenant_id: uuid.UUID, count: int, *, prefix: str = "row") -> None:
    """``count`` probe rows, a millisecond apart so "oldest first" is well defined."""
    start = clock.now() - timedelta(seconds=count / 1000 + 1)
    rows = [
        {"tenant_id": tenant_id, "id": new_id(), "job": "tests.relay.probe", "payload": {"label": f"{prefix}-{i}"},
         "created_at": start, "available_at": start + timedelta(milliseconds=i), "attempts": 0}
        for i in range(count)
    ]
    async with database.tenant(tenant_id) as session:
        for chunk in range(0, count, 1000):
            await session.execute(insert(OutboxEntry).values(rows[chunk:chunk + 1000]))


async def outbox(database) -> list[OutboxEntry]:
    async with database.system() as session:
        return list((await session.execute(select(OutboxEntry).order_by(OutboxEntry.available_at))).scalars())


def by_tenant(messages: list[dramatiq.Message]) -> Counter:
    return Counter(uuid.UUID(message.kwargs["tenant_id"]) for message in messages)


async def test_each_row_is_sent_with_its_tenant_outbox_id_and_payload_then_leased(database, tenants, broker):
    async with database.tenant(tenants.a.id) as session:
        a_row = add_to_outbox(session, tenants.a.id, "tests.relay.probe", label="a-1")
    async with database.tenant(tenants.b.id) as session:
        b_row = add_to_outbox(session, tenants.b.id, "tests.relay.probe", label="b-1")

    assert await relay_once(database, broker) == 2

    sent = {message.kwargs["outbox_id"]: message for message in drain(broker)}
    assert set(sent) == {str(a_row.id), str(b_row.id)}
    assert sent[str(a_row.id)].kwargs == {"tenant_id": str(tenants.a.id), "outbox_id": str(a_row.id), "label": "a-1"}
    assert sent[str(b_row.id)].kwargs == {"tenant_id": str(tenants.b.id), "outbox_id": str(b_row.id), "label": "b-1"}
    for row in await outbox(database):
        assert row.attempts == 1 and row.dispatched_at is not None and row.lease_until > row.dispatched_at
        assert row.completed_at is None  # completed by the job, not by the relay
    assert await relay_once(database, broker) == 0  # leased: not sent again


async def test_a_leased_row_waits_for_its_lease_to_run_out_then_is_sent_again(database, tenants, broker, frozen):
    await add_rows(database, tenants.a.id, 1)
    await add_rows(database, tenants.b.id, 1)
    assert await relay_once(database, broker, lease_seconds=60) == 2
    drain(broker)

    frozen.advance(seconds=59)
    assert await relay_once(database, broker, lease_seconds=60) == 0
    # B's job completed in time; A's relay or worker died with it: only A's row comes back.
    async with database.system() as session:
        await session.execute(update(OutboxEntry).where(OutboxEntry.tenant_id == tenants.b.id)
                              .values(completed_at=clock.now()))
    frozen.advance(seconds=2)
    assert await relay_once(database, broker, lease_seconds=60) == 1
    # It waited once: on PostgreSQL it goes on the queue of recovered work, ahead of the backlog.
    again = RECOVERED_QUEUE if database.dialect == "postgresql" else QUEUE
    assert by_tenant(drain(broker, (again,))) == {tenants.a.id: 1}
    attempts = {row.tenant_id: row.attempts for row in await outbox(database)}
    assert attempts == {tenants.a.id: 2, tenants.b.id: 1}


async def test_completed_rows_are_never_sent_again(database, tenants, broker, frozen):
    await add_rows(database, tenants.a.id, 3)
    await add_rows(database, tenants.b.id, 1)
    async with database.system() as session:
        await session.execute(update(OutboxEntry).values(completed_at=clock.now()))
    frozen.advance(days=30)  # far past any lease
    assert await relay_once(database, broker) == 0
    assert drain(broker) == []


async def test_rows_not_yet_available_wait(database, tenants, broker, frozen):
    await add_rows(database, tenants.a.id, 1)
    async with database.system() as session:
        await session.execute(update(OutboxEntry).values(available_at=clock.now() + timedelta(minutes=5)))
    await add_rows(database, tenants.b.id, 1)
    # B's row is not completed here (no worker): a lease longer than the wait keeps it out of the second round.
    assert await relay_once(database, broker, lease_seconds=3600) == 1
    assert by_tenant(drain(broker)) == {tenants.b.id: 1}
    frozen.advance(minutes=5)
    assert await relay_once(database, broker, lease_seconds=3600) == 1
    assert by_tenant(drain(broker)) == {tenants.a.id: 1}


async def test_a_quiet_tenant_is_not_delayed_by_a_noisy_one(database, tenants, broker):
    await add_rows(database, tenants.a.id, 5000, prefix="noisy")
    await add_rows(database, tenants.b.id, 3, prefix="quiet")

    # Even a round of 6 takes turns: A's 1st, B's 1st, A's 2nd, B's 2nd, ...
    assert await relay_once(database, broker, batch=6) == 6
    sent = drain(broker)
    assert by_tenant(sent) == {tenants.a.id: 3, tenants.b.id: 3}
    # Oldest first within a tenant.
    assert [m.kwargs["label"] for m in sent if m.kwargs["tenant_id"] == str(tenants.a.id)] == \
        ["noisy-0", "noisy-1", "noisy-2"]
    leased = Counter(row.tenant_id for row in await outbox(database) if row.lease_until is not None)
    assert leased == {tenants.a.id: 3, tenants.b.id: 3}


async def test_a_tenant_never_has_more_than_its_cap_in_flight(database, tenants, broker):
    await add_rows(database, tenants.a.id, 50)
    await add_rows(database, tenants.b.id, 4)
    options = {"per_tenant_round": 5, "per_tenant_cap": 12}

    sent = Counter()
    for _ in range(10):
        sent += by_tenant(drain(broker)) if await relay_once(database, broker, **options) else Counter()
    assert sent == {tenants.a.id: 12, tenants.b.id: 4}

    # Five of A's jobs complete: five more of A's rows may go, and no more.
    async with database.system() as session:
        done = (await session.execute(select(OutboxEntry.id).where(
            OutboxEntry.tenant_id == tenants.a.id, OutboxEntry.lease_until.is_not(None)).limit(5))).scalars().all()
        await session.execute(update(OutboxEntry).where(OutboxEntry.id.in_(done)).values(completed_at=clock.now()))
    for _ in range(5):
        await relay_once(database, broker, **options)
    assert by_tenant(drain(broker)) == {tenants.a.id: 5}


async def test_two_relays_at_once_never_send_the_same_row(database, tenants, broker):
    """Two relays as two processes would have them: each with its own engines and connections."""
    await add_rows(database, tenants.a.id, 400)
    await add_rows(database, tenants.b.id, 200)
    other = type(database)(database.settings)
    options = {"batch": 50, "per_tenant_round": 25, "per_tenant_cap": 1000}
    try:
        for _ in range(30):
            counts = await asyncio.gather(relay_once(database, broker, **options), relay_once(other, broker, **options))
            if sum(counts) == 0:
                break
    finally:
        await other.dispose()

    sent = Counter(message.kwargs["outbox_id"] for message in drain(broker))
    assert max(sent.values()) == 1  # no row sent twice
    rows = await outbox(database)
    assert set(sent) == {str(row.id) for row in rows} and len(rows) == 600
    assert {row.attempts for row in rows} == {1}


@pytest.mark.postgres_only
async def test_rows_locked_by_another_relay_are_skipped_not_waited_for(database, tenants, broker):
    """Deterministic SKIP LOCKED: while one transaction holds A's oldest rows (a relay mid-claim), another
    relay goes on at once with the rest of its choice instead of waiting or taking the same."""
    await add_rows(database, tenants.a.id, 8)
    async with database.system() as holder:
        held = (await holder.execute(
            select(OutboxEntry.id).where(OutboxEntry.tenant_id == tenants.a.id)
            .order_by(OutboxEntry.available_at).limit(3).with_for_update()
        )).scalars().all()
        sent = await asyncio.wait_for(relay_once(database, broker, per_tenant_round=4), 5)
        taken = {uuid.UUID(message.kwargs["outbox_id"]) for message in drain(broker)}
        assert sent == len(taken) >= 1 and not taken & set(held)
    # Released: the held rows are the oldest claimable ones again.
    assert await relay_once(database, broker, per_tenant_round=3) == 3
    assert {uuid.UUID(message.kwargs["outbox_id"]) for message in drain(broker)} == set(held)


def _scans(plan: dict, inside: str | None = None) -> list[tuple[str | None, str, str | None]]:
    """(the CTE it runs in, node type, index) of every scan of the outbox in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    where = plan.get("Subplan Name", inside)
    if plan.get("Relation Name") == "outbox" and plan["Node Type"] != "ModifyTable":
        found.append((where, plan["Node Type"], plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found.extend(_scans(child, where))
    return found


@pytest.mark.postgres_only
async def test_the_claim_locks_chosen_rows_by_key_whatever_the_statistics_say(database, tenants):
    """The plan of the claim must not depend on the table's statistics: a queue's table grows from nothing to
    tens of thousands of pending rows between two ANALYZEs, and with a nearly empty table's statistics the
    planner joined the chosen rows the other way round, scanning every pending row once per chosen row
    (measured: 0.2 s growing to 2 s a round during a 50,000-event flood). The lock probes each chosen row by
    the primary key, and the UPDATE finds the locked row by its address."""
    # Statistics taken while the queue was nearly empty, then a backlog arrives before the next ANALYZE.
    owner = create_async_engine(database.settings.migration_database_url)
    try:
        async with owner.begin() as connection:
            await connection.execute(text("ANALYZE outbox"))
    finally:
        await owner.dispose()
    await add_rows(database, tenants.a.id, 20_000)
    now = clock.now()
    statement = text("EXPLAIN (FORMAT JSON) " + _CLAIM_POSTGRES).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("lease_until", type_=UTCDateTime()))
    params = {"now": now, "lease_until": now + timedelta(seconds=15), "batch": 500, "per_round": 100, "cap": 300}
    async with database.system() as session:
        plan = (await session.execute(statement, params)).scalar_one()
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    scans = _scans(plan)
    locked = {(node, index) for where, node, index in scans if where == "CTE locked"}
    # Choosing reads the pending and in-flight indexes per tenant; locking probes the key, nothing else.
    assert locked - {("Index Scan", "ix_outbox_tenant_pending"), ("Index Only Scan", "ix_outbox_inflight")} \
        == {("Index Scan", "pk_outbox")}, scans
    assert [node for where, node, _ in scans if where == "CTE claimed"] == ["Tid Scan"], scans


@pytest.mark.postgres_only
async def test_a_new_row_wakes_the_relay_long_before_its_poll(database, tenants, broker):
    poll = 5.0
    relay = Relay(database, broker, poll_interval=poll)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.listening.wait(), 10)
        await asyncio.sleep(0.3)  # the first (empty) round is over: the relay is asleep until woken
        started = time.monotonic()
        async with database.tenant(tenants.b.id) as session:
            add_to_outbox(session, tenants.b.id, "tests.relay.probe", label="wake")
        while not broker.queues[QUEUE].qsize() and time.monotonic() - started < poll * 2:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
    print(f"LISTEN wake-up: commit to sent in {elapsed * 1000:.0f} ms (poll interval {poll * 1000:.0f} ms)")
    assert elapsed < poll
    assert by_tenant(drain(broker)) == {tenants.b.id: 1}  # and nothing of tenant A appeared


@pytest.mark.postgres_only
async def test_relay_to_redis_and_worker_completes_each_row_once(database, tenants, redis_available):
    """Production shape: the relay sends to the real Redis broker, a worker runs the jobs and each job
    completes its outbox row in its own transaction; completed rows are never sent again."""
    settings = database.settings.model_copy(update={"broker_url": redis_available})
    broker = build_broker(settings, namespace=f"bo-test-{RUN_ID}-relay-{uuid.uuid4().hex[:6]}")
    assert isinstance(broker, RedisBroker)
    await add_rows(database, tenants.a.id, 5, prefix="a")
    await add_rows(database, tenants.b.id, 2, prefix="b")
    RAN.clear()
    try:
        assert await relay_once(database, broker) == 7
        stored = broker.client.hvals(f"{broker.namespace}:{QUEUE}.msgs")  # what Redis holds, read back
        assert sorted(dramatiq.Message.decode(raw).kwargs["label"] for raw in stored) == \
            ["a-0", "a-1", "a-2", "a-3", "a-4", "b-0", "b-1"]

        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
        worker.start()
        try:
            await asyncio.to_thread(broker.join, QUEUE, timeout=20_000)
            await asyncio.to_thread(worker.join)
        finally:
            await asyncio.to_thread(worker.stop)

        assert Counter(tenant for tenant, _ in RAN) == {tenants.a.id: 5, tenants.b.id: 2}
        assert all(row.completed_at is not None and row.lease_until is None for row in await outbox(database))
        assert await relay_once(database, broker) == 0
    finally:
        keys = list(broker.client.scan_iter(f"{broker.namespace}:*"))
        if keys:
            broker.client.delete(*keys)
        broker.close()


async def test_rows_are_counted_per_tenant_in_the_database(database, tenants, broker):
    """The relay's rows stay the tenant's own: each tenant's session sees only its rows."""
    await add_rows(database, tenants.a.id, 3)
    await add_rows(database, tenants.b.id, 2)
    await relay_once(database, broker)
    for tenant, expected in ((tenants.a, 3), (tenants.b, 2)):
        async with database.tenant(tenant.id) as session:
            count = (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one()
        assert count == expected


async def test_a_row_for_an_unknown_job_does_not_hold_back_the_others(database, tenants, broker, frozen):
    async with database.tenant(tenants.a.id) as session:
        stray = add_to_outbox(session, tenants.a.id, "tests.relay.removed_in_this_release", label="x")
    await add_rows(database, tenants.a.id, 2)
    await add_rows(database, tenants.b.id, 1)

    assert await relay_once(database, broker) == 3
    assert by_tenant(drain(broker)) == {tenants.a.id: 2, tenants.b.id: 1}
    row = next(r for r in await outbox(database) if r.id == stray.id)
    assert row.last_error.startswith("unknown job") and row.lease_until == clock.now() + timedelta(seconds=10)


async def test_when_the_broker_is_unreachable_rows_are_retried_soon(database, tenants, frozen):
    """Nothing listens on port 1: every send fails; the rows keep a short lease and the reason."""
    unreachable = build_broker(database.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    await add_rows(database, tenants.a.id, 2)
    await add_rows(database, tenants.b.id, 1)
    try:
        assert await relay_once(database, unreachable, lease_seconds=300) == 0
    finally:
        unreachable.close()
    rows = await outbox(database)
    assert {row.lease_until for row in rows} == {clock.now() + timedelta(seconds=10)}
    assert all(row.last_error.startswith("send failed") for row in rows)
    frozen.advance(seconds=11)
    working = build_broker(database.settings)
    try:
        assert await relay_once(database, working) == 3  # the broker is back: all three go
    finally:
        working.flush_all()


register_jobs(probe)  # declared here, registered as the composition root does
