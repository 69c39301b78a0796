"""Leases are short and renewed while a job runs (issue 18, finding 4).

A job that outlives the lease keeps its rows; a row whose worker died comes back within the lease (15 s,
so every effect of a crashed job is done well inside a minute while another worker runs); a job that lost
its rows (its lease ran out: a stalled worker) cannot complete or move them under the job that has them
now. The jobs run in real workers: the Redis broker on PostgreSQL, the in-process one on SQLite.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.outbox import lease
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.relay import claim, relay_once
from backoffice.platform.outbox.service import add_to_outbox, settle_outbox_entries
from backoffice.platform.worker.broker import build_broker
from backoffice.platform.worker.jobs import register_jobs, BatchOutcome, Deferral, tenant_job
from tests.conftest import RUN_ID, redis_url, require

QUEUE = "tests-lease"
RUNS: list[tuple[str, float]] = []  # (label, start) of every run of the probes
_namespaces = itertools.count()


@tenant_job("tests.lease.slow", queue=QUEUE, max_retries=0)
async def slow(session, *, tenant_id: uuid.UUID, label: str, seconds: float) -> None:
    RUNS.append((label, time.monotonic()))
    await asyncio.sleep(seconds)


@tenant_job("tests.lease.batch", queue=QUEUE, batch=10, max_retries=0)
async def batch_probe(session, *, tenant_id: uuid.UUID, items) -> BatchOutcome:
    """The first run is slow and then completes its rows; any later run defers them for an hour."""
    first = not RUNS
    RUNS.append(("batch", time.monotonic()))
    if first:
        await asyncio.sleep(2.5)
        return BatchOutcome()
    retry_at = clock.now() + timedelta(hours=1)
    return BatchOutcome(deferred={item.outbox_id: Deferral(retry_at, "the provider asked to wait") for item in items})


GATHERED: list[list[uuid.UUID]] = []  # the outbox rows of every run of the gathering probe


@tenant_job("tests.lease.gather", queue=QUEUE, batch=10, max_retries=0)
async def gather(session, *, tenant_id: uuid.UUID, items) -> BatchOutcome:
    GATHERED.append([item.outbox_id for item in items])
    return BatchOutcome()


@pytest.fixture
def running(backend, database):
    """A broker and a worker with two threads (Redis on PostgreSQL, in process on SQLite)."""
    if backend.name == "postgres":
        require("redis")
        settings = database.settings.model_copy(update={"broker_url": redis_url(14)})
    else:
        settings = database.settings
    broker = build_broker(settings, namespace=f"bo-test-{RUN_ID}-lease-{next(_namespaces)}")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    RUNS.clear()
    try:
        yield broker
    finally:
        worker.stop()
        broker.flush_all()
        broker.close()


async def row_of(database, tenant_id: uuid.UUID, row_id: uuid.UUID) -> OutboxEntry:
    async with database.system() as session:
        return (await session.execute(select(OutboxEntry).where(OutboxEntry.tenant_id == tenant_id,
                                                                OutboxEntry.id == row_id))).scalar_one()


async def add(database, tenant_id: uuid.UUID, job: str, **payload) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        entry = add_to_outbox(session, tenant_id, job, **payload)
        await session.flush()
        return entry.id


async def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_job_that_outlives_the_lease_keeps_its_rows_while_it_runs(database, tenants, running, monkeypatch):
    # One-second leases renewed every 0.2 s: the job runs three leases long.
    monkeypatch.setattr(lease, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(lease.HEARTBEAT, "every", 0.2)
    row = await add(database, tenants.a.id, "tests.lease.slow", label="long", seconds=3.0)
    quiet = await add(database, tenants.b.id, "tests.lease.slow", label="quiet", seconds=0.0)

    assert await relay_once(database, running, lease_seconds=1.0) == 2
    await wait_for(lambda: asyncio.sleep(0, result=len(RUNS) == 2))
    resent = 0
    while (await row_of(database, tenants.a.id, row)).completed_at is None:
        resent += await relay_once(database, running, lease_seconds=1.0)
        assert time.monotonic() - RUNS[0][1] < 10, "the job never completed"
        await asyncio.sleep(0.1)

    assert resent == 0  # never handed out again while its job was alive
    assert sorted(label for label, _ in RUNS) == ["long", "quiet"]
    done = await row_of(database, tenants.a.id, row)
    assert done.attempts == 1 and done.lease_token is None and done.lease_until is None
    assert (await row_of(database, tenants.b.id, quiet)).completed_at is not None


async def test_a_row_whose_worker_died_is_handed_out_again_within_the_lease_and_done(database, tenants, running):
    frozen = FrozenClock(clock.now())
    previous = clock.use(frozen)
    try:
        row = await add(database, tenants.a.id, "tests.lease.slow", label="after-crash", seconds=0.0)
        # The relay handed the row over and the worker holding the message was killed (kill -9) with it.
        crashed_at = clock.now()
        assert [claimed.id for claimed in await claim(database)] == [row]
        other = await add(database, tenants.b.id, "tests.lease.slow", label="other", seconds=0.0)
        assert await relay_once(database, running) == 1  # tenant B's row only
        await wait_for(lambda: asyncio.sleep(0, result=len(RUNS) == 1))

        frozen.advance(seconds=lease.HANDOVER_SECONDS - 1)
        assert await relay_once(database, running) == 0  # its hand-over still runs
        frozen.advance(seconds=2)
        # Its message is nowhere (never sent, as if lost with Redis): handed out again at once.
        assert await relay_once(database, running) == 1

        async def done() -> bool:
            return (await row_of(database, tenants.a.id, row)).completed_at is not None
        await wait_for(done)
        finished = await row_of(database, tenants.a.id, row)
        assert finished.completed_at - crashed_at <= timedelta(seconds=60)
        assert [label for label, _ in RUNS] == ["other", "after-crash"]
        assert (await row_of(database, tenants.b.id, other)).completed_at is not None
    finally:
        clock.use(previous)


async def test_a_row_taken_by_a_job_whose_worker_died_comes_back_within_the_lease(database, tenants, running):
    """The job had started (its token on the row) when its process died: no heartbeat renews the row."""
    frozen = FrozenClock(clock.now())
    previous = clock.use(frozen)
    try:
        row = await add(database, tenants.a.id, "tests.lease.slow", label="after-crash", seconds=0.0)
        [claimed] = await claim(database)
        assert await lease.take(database, tenants.a.id, [claimed.id], uuid.uuid4()) == {row}
        crashed_at = clock.now()
        # A copy of the message still in the queue finds the row held and leaves it alone.
        assert await lease.take(database, tenants.a.id, [row], uuid.uuid4()) == set()

        frozen.advance(seconds=lease.LEASE_SECONDS - 1)
        assert await relay_once(database, running) == 0
        frozen.advance(seconds=2)
        assert await relay_once(database, running) == 1

        async def done() -> bool:
            return (await row_of(database, tenants.a.id, row)).completed_at is not None
        await wait_for(done)
        assert (await row_of(database, tenants.a.id, row)).completed_at - crashed_at <= timedelta(seconds=60)
        assert [label for label, _ in RUNS] == ["after-crash"]
    finally:
        clock.use(previous)


async def test_a_job_that_lost_its_lease_cannot_complete_the_row_another_job_deferred(
        database, tenants, running, monkeypatch):
    """A worker stalls (no heartbeat gets through) past its lease: the row goes to another job, which
    defers it (the provider asked to wait). When the stalled job wakes up, its completion must not land:
    the deferral, and so the retry, would be lost."""
    monkeypatch.setattr(lease, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(lease.HEARTBEAT, "every", 3600.0)  # the stalled worker's beats never get through
    row = await add(database, tenants.a.id, "tests.lease.batch", charge="c-1")

    assert await relay_once(database, running, lease_seconds=1.0) == 1
    await wait_for(lambda: asyncio.sleep(0, result=len(RUNS) == 1))  # the slow first run is under way
    await asyncio.sleep(1.2)
    assert await relay_once(database, running, lease_seconds=1.0) == 1  # its lease ran out: handed out again

    async def deferred_and_first_finished() -> bool:
        current = await row_of(database, tenants.a.id, row)
        return current.last_error is not None and time.monotonic() - RUNS[0][1] > 3.0
    await wait_for(deferred_and_first_finished)
    await asyncio.sleep(0.3)

    current = await row_of(database, tenants.a.id, row)
    assert current.completed_at is None  # the stale job's completion did not land
    assert current.last_error == "the provider asked to wait"
    assert current.available_at > clock.now() + timedelta(minutes=59)
    assert len(RUNS) == 2


async def test_a_stale_copy_neither_runs_a_deferred_row_early_nor_one_another_job_holds(database, tenants):
    row = await add(database, tenants.a.id, "tests.lease.slow", label="deferred", seconds=0.0)
    [claimed] = await claim(database)
    first, copy = uuid.uuid4(), uuid.uuid4()
    assert await lease.take(database, tenants.a.id, [claimed.id], first) == {row}
    assert await lease.take(database, tenants.a.id, [row], copy) == set()  # held by a live job
    assert await lease.take(database, tenants.a.id, [row], first) == {row}  # a retried take of its own
    retry_at = clock.now() + timedelta(minutes=5)
    async with database.provider(tenants.a.id) as session:
        await settle_outbox_entries(session, tenants.a.id, [], {row: Deferral(retry_at, "later")}, token=first)
    assert await lease.take(database, tenants.a.id, [row], copy) == set()  # waits for its retry time
    # The first job, now stale, can neither complete nor defer it again.
    with pytest.raises(lease.LeaseLost):
        async with database.provider(tenants.a.id) as session:
            await settle_outbox_entries(session, tenants.a.id, [row], {}, token=first)
    current = await row_of(database, tenants.a.id, row)
    assert (current.completed_at, current.lease_token, current.last_error) == (None, None, "later")


# Waiting rows are taken on PostgreSQL (SKIP LOCKED); the embedded mode's jobs take their message's rows only.
@pytest.mark.postgres_only
async def test_a_batch_job_takes_its_tenants_rows_waiting_in_the_queue_and_nothing_else(database, tenants):
    first, second, third, held = [await add(database, tenants.a.id, "tests.lease.gather", n=n) for n in range(4)]
    other_tenant = await add(database, tenants.b.id, "tests.lease.gather", n=4)
    other_job = await add(database, tenants.a.id, "tests.lease.slow", label="x", seconds=0.0)
    assert len(await claim(database)) == 6  # all handed over: their messages wait in the queue
    not_handed_over = await add(database, tenants.a.id, "tests.lease.gather", n=5)
    assert await lease.take(database, tenants.a.id, [held], uuid.uuid4()) == {held}  # a live job has it

    token = uuid.uuid4()
    named, waiting = await lease.take_waiting(database, tenants.a.id, [first], token, job="tests.lease.gather",
                                              limit=10)
    assert named == {first}
    assert [row.id for row in waiting] == [second, third]  # oldest first; not the held row, another
    assert [row.payload for row in waiting] == [{"n": 1}, {"n": 2}]  # tenant's, another job's or a new row
    assert all(row.attempts == 1 for row in waiting)
    for row_id in (first, second, third):
        assert (await row_of(database, tenants.a.id, row_id)).lease_token == token
    # A retry of the statement (the connection dropped after it committed) gets the same rows back.
    again = await lease.take_waiting(database, tenants.a.id, [first], token, job="tests.lease.gather", limit=10)
    assert again[0] == {first} and [row.id for row in again[1]] == [second, third]
    # Their own messages come later: stale copies, skipped.
    assert await lease.take(database, tenants.a.id, [second, third], uuid.uuid4()) == set()
    for untouched, tenant in ((other_tenant, tenants.b.id), (other_job, tenants.a.id),
                              (not_handed_over, tenants.a.id)):
        assert (await row_of(database, tenant, untouched)).lease_token is None


@pytest.mark.postgres_only
async def test_a_batch_job_takes_no_more_waiting_rows_than_its_room(database, tenants):
    rows = [await add(database, tenants.a.id, "tests.lease.gather", n=n) for n in range(5)]
    await claim(database)
    named, waiting = await lease.take_waiting(database, tenants.a.id, rows[:1], uuid.uuid4(),
                                              job="tests.lease.gather", limit=2)
    assert named == {rows[0]} and [row.id for row in waiting] == rows[1:3]


@pytest.mark.postgres_only
async def test_taking_waiting_rows_never_waits_for_a_row_another_job_is_taking(database, tenants):
    """Two jobs each taking the other's waiting rows must not wait on each other: that deadlocked (PostgreSQL
    broke it after its 1 s deadlock_timeout, failing one job). A locked row is skipped; it is the other job's."""
    mine, theirs = [await add(database, tenants.a.id, "tests.lease.gather", n=n) for n in range(2)]
    await claim(database)
    async with database.system_engine.connect() as other:
        await other.execute(select(OutboxEntry.id).where(OutboxEntry.id.in_([mine, theirs])).with_for_update())
        started = time.monotonic()
        named, waiting = await asyncio.wait_for(lease.take_waiting(
            database, tenants.a.id, [mine], uuid.uuid4(), job="tests.lease.gather", limit=10), timeout=5)
        assert time.monotonic() - started < 0.9
        assert (named, waiting) == (set(), [])
        await other.rollback()
    named, waiting = await lease.take_waiting(database, tenants.a.id, [mine], uuid.uuid4(), job="tests.lease.gather",
                                              limit=10)
    assert named == {mine} and [row.id for row in waiting] == [theirs]


@pytest.mark.postgres_only
async def test_messages_waiting_in_the_queue_run_as_one_batch_and_each_row_once(database, tenants):
    """Rows handed out one message at a time (a trickle) that pile up while the workers are busy run together:
    the first job takes the others' rows, their messages find them taken. Each row runs exactly once."""
    require("redis")
    settings = database.settings.model_copy(update={"broker_url": redis_url(14)})
    broker = build_broker(settings, namespace=f"bo-test-{RUN_ID}-lease-{next(_namespaces)}")
    GATHERED.clear()
    rows = []
    try:
        for n in range(6):  # six rounds, six messages, no worker yet
            rows.append(await add(database, tenants.a.id, "tests.lease.gather", n=n))
            assert await relay_once(database, broker) == 1
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
        worker.start()
        try:
            async def all_done() -> bool:
                return all([(await row_of(database, tenants.a.id, row)).completed_at is not None for row in rows])
            await wait_for(all_done)
            broker.join(QUEUE, timeout=15_000)  # the stale copies are consumed too
        finally:
            worker.stop()
    finally:
        broker.flush_all()
        broker.close()
    ran = [row for run in GATHERED for row in run]
    assert sorted(ran) == sorted(rows)  # each row once
    assert GATHERED[0] == rows  # the first message's row, then the five waiting ones, oldest first
    assert len(GATHERED) == 1


register_jobs(slow, batch_probe, gather)  # declared here, registered as the composition root does
