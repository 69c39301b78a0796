"""The relay hands a row out again only when its message is no longer waiting (issue 18, finding 4).

A row handed over whose message still waits in Redis keeps its hand-over (no second copy behind the first);
one whose message is lost is handed out again when the hand-over runs out; one whose message a dead worker
fetched, or whose job died holding it, goes on the queue of recovered work, ahead of the backlog. On
PostgreSQL with the real Redis broker (the embedded mode's in-process broker dies with the relay).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.platform.outbox import handover, lease
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.relay import claim, relay_once
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.worker.broker import RECOVERED_QUEUE, build_broker
from tests.conftest import RUN_ID
from tests.platform.outbox.test_relay import QUEUE

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def redis_broker(database, redis_available) -> RedisBroker:
    settings = database.settings.model_copy(update={"broker_url": redis_available})
    broker = build_broker(settings, namespace=f"bo-test-{RUN_ID}-handover-{uuid.uuid4().hex[:6]}")
    yield broker
    keys = list(broker.client.scan_iter(f"{broker.namespace}:*"))
    if keys:
        broker.client.delete(*keys)
    broker.close()


@pytest.fixture
def frozen() -> FrozenClock:
    frozen = FrozenClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    previous = clock.use(frozen)
    yield frozen
    clock.use(previous)


async def add_row(database, tenant_id: uuid.UUID, label: str) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        entry = add_to_outbox(session, tenant_id, "tests.relay.probe", label=label)
        await session.flush()
        return entry.id


async def row_of(database, row_id: uuid.UUID) -> OutboxEntry:
    async with database.system() as session:
        return (await session.execute(select(OutboxEntry).where(OutboxEntry.id == row_id))).scalar_one()


def waiting(broker: RedisBroker, queue: str) -> list[dramatiq.Message]:
    """The messages Redis holds for ``queue`` (queued, or fetched and not acknowledged)."""
    return [dramatiq.Message.decode(raw) for raw in broker.client.hvals(f"{broker.namespace}:{queue}.msgs")]


async def test_a_row_whose_message_still_waits_keeps_its_hand_over_until_the_message_is_lost(
        database, tenants, redis_broker, frozen):
    row = await add_row(database, tenants.a.id, "queued")
    assert await relay_once(database, redis_broker) == 1

    # The hand-over runs out while the message is still queued (a backlog ahead of it): no second copy.
    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 0
    kept = await row_of(database, row)
    assert kept.attempts == 1 and kept.lease_token is None
    assert kept.lease_until == clock.now() + timedelta(seconds=lease.HANDOVER_SECONDS)
    assert [m.kwargs["outbox_id"] for m in waiting(redis_broker, QUEUE)] == [str(row)]

    # Redis loses it (a restart empties it): at the next look the row is handed out again.
    redis_broker.flush(QUEUE)
    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 1
    assert (await row_of(database, row)).attempts == 2
    assert [m.kwargs["outbox_id"] for m in waiting(redis_broker, RECOVERED_QUEUE)] == [str(row)]  # it waited once


async def test_a_message_fetched_by_a_worker_that_died_is_handed_out_again_as_recovered_work(
        database, tenants, redis_broker, frozen):
    row = await add_row(database, tenants.a.id, "prefetched")
    assert await relay_once(database, redis_broker) == 1
    # A worker process fetches the message (dramatiq prefetches) and is killed before it starts the job.
    fetcher = RedisBroker(client=redis_broker.client, namespace=redis_broker.namespace)
    assert len(fetcher.do_fetch(QUEUE, 10)) == 1

    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 0  # that worker still beats: it will run it

    # The worker dies (its dramatiq heartbeat stops).
    heartbeats = f"{redis_broker.namespace}:__heartbeats__"
    silent_since = time.time() - lease.WORKER_SILENT_SECONDS - 5
    redis_broker.client.zadd(heartbeats, {fetcher.broker_id: int(silent_since * 1000)})
    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 1
    assert [m.kwargs["outbox_id"] for m in waiting(redis_broker, RECOVERED_QUEUE)] == [str(row)]
    assert (await row_of(database, row)).attempts == 2


async def test_a_row_whose_job_died_holding_it_goes_out_as_recovered_work_ahead_of_the_backlog(
        database, tenants, redis_broker, frozen):
    held = await add_row(database, tenants.a.id, "held")
    [claimed] = await claim(database)
    assert await lease.take(database, tenants.a.id, [claimed.id], uuid.uuid4()) == {held}
    # The job's worker dies; meanwhile the tenant's backlog is handed over and queued.
    backlog = [await add_row(database, tenants.a.id, f"backlog-{i}") for i in range(3)]
    assert await relay_once(database, redis_broker) == 3

    frozen.advance(seconds=lease.LEASE_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 1  # the backlog still waits: only the held row goes
    assert [m.kwargs["outbox_id"] for m in waiting(redis_broker, RECOVERED_QUEUE)] == [str(held)]
    assert sorted(m.kwargs["outbox_id"] for m in waiting(redis_broker, QUEUE)) == sorted(map(str, backlog))
    assert {(await row_of(database, row)).attempts for row in backlog} == {1}


async def test_a_message_a_live_worker_fetched_and_never_started_is_handed_out_again_after_a_grace(
        database, tenants, redis_broker, frozen, monkeypatch):
    """A dramatiq consumer that hits a connection error restarts and forgets what it had fetched; dramatiq
    puts back only a dead process's messages, so the relay does it once the grace has passed."""
    monkeypatch.setattr(handover, "FETCHED_GRACE_SECONDS", 0.5)
    row = await add_row(database, tenants.a.id, "forgotten")
    assert await relay_once(database, redis_broker) == 1
    fetcher = RedisBroker(client=redis_broker.client, namespace=redis_broker.namespace)
    assert len(fetcher.do_fetch(QUEUE, 10)) == 1  # fetched, then forgotten; the process lives on

    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 0  # first seen fetched: it may start any moment
    time.sleep(0.6)
    fetcher.do_qsize(QUEUE)  # the process still beats
    frozen.advance(seconds=lease.HANDOVER_SECONDS + 1)
    assert await relay_once(database, redis_broker) == 1
    assert [m.kwargs["outbox_id"] for m in waiting(redis_broker, RECOVERED_QUEUE)] == [str(row)]
