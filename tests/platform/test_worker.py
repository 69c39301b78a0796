"""Jobs run by a real dramatiq worker in this process, on the broker each mode uses: the Redis broker
with PostgreSQL (production) and the in-process StubBroker with SQLite (embedded).

A tenant job sees only its tenant; a message without a tenant is never run and ends dead-lettered; a
job that raises leaves nothing of what it wrote.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimit
from sqlalchemy import select

from backoffice.platform.settings import Settings
from backoffice.platform.worker.broker import build_broker, enqueue
from backoffice.platform.worker.context import current_tenant
from backoffice.platform.worker.middleware import MissingTenant
from backoffice.platform.worker.share import jobs_running
from backoffice.platform.worker.jobs import register_jobs, tenant_job
from backoffice.tenants.customers.models import Customer
from tests.conftest import RUN_ID

QUEUE = "tests-worker"
SEEN: list[dict] = []  # what the jobs saw, in the order they ran


# Declared at import, like every job module: registered before any broker is built.
@tenant_job("tests.worker.look_around", queue=QUEUE)  # default retries: a refusal must not retry
async def look_around(session, *, tenant_id: uuid.UUID, label: str) -> int:
    rows = (await session.execute(select(Customer.tenant_id, Customer.id))).all()
    SEEN.append({"label": label, "tenant_id": tenant_id, "context": current_tenant.get(),
                 "customer_tenants": {row.tenant_id for row in rows}, "customers": {row.id for row in rows},
                 "share": jobs_running()})
    return len(rows)  # a job may return something; the worker must not complain about it


@tenant_job("tests.worker.write_then_fail", queue=QUEUE, max_retries=0)
async def write_then_fail(session, *, tenant_id: uuid.UUID, name: str) -> None:
    session.add(Customer(name=name, tax_id_kind="cpf", tax_id="39053344705"))
    await session.flush()
    SEEN.append({"label": name, "tenant_id": tenant_id})
    raise RuntimeError("the provider answered 500 after the customer was written")


@dataclass
class Running:
    broker: dramatiq.Broker

    def dead_letter_ids(self) -> set[str]:
        if isinstance(self.broker, StubBroker):
            return {message.message_id for message in self.broker.dead_letters}
        namespace = self.broker.namespace
        raw = self.broker.client.hvals(f"{namespace}:{QUEUE}.XQ.msgs")
        return {dramatiq.Message.decode(item).message_id for item in raw}


@pytest.fixture
async def worker(database, request) -> AsyncIterator[Callable[[], Awaitable[Running]]]:
    """A broker of the backend's mode and a started worker; ``await drain()`` waits for its queue."""
    if database.dialect == "postgresql":
        redis_url = request.getfixturevalue("redis_available")
        namespace = f"bo-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"  # concurrent runs never share a queue
        settings = database.settings.model_copy(update={"broker_url": redis_url})
        broker = build_broker(settings, namespace=namespace)
        assert isinstance(broker, RedisBroker)
    else:
        broker = build_broker(database.settings)
        assert isinstance(broker, StubBroker)
    SEEN.clear()
    # No database handed over: the worker opens its own at boot, as a worker process does.
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    running = Running(broker)

    async def drain() -> Running:
        def wait() -> None:
            if isinstance(broker, StubBroker):
                broker.join(QUEUE, timeout=20_000, fail_fast=False)
            else:
                broker.join(QUEUE, timeout=20_000)
            worker.join()

        await asyncio.to_thread(wait)
        return running

    try:
        yield drain
    finally:
        await asyncio.to_thread(worker.stop)
        if isinstance(broker, RedisBroker):
            keys = list(broker.client.scan_iter(f"{broker.namespace}:*"))
            if keys:
                broker.client.delete(*keys)
            broker.close()


async def test_a_tenant_job_sees_only_its_own_tenant(database, tenants, worker, caplog):
    for tenant in (tenants.a, tenants.b):
        enqueue(dramatiq.get_broker(), "tests.worker.look_around", tenant_id=tenant.id, label=tenant.slug)
    with caplog.at_level(logging.WARNING):
        await worker()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

    seen = {entry["label"]: entry for entry in SEEN}
    assert set(seen) == {"alfa", "beta"}
    for tenant in (tenants.a, tenants.b):
        assert seen[tenant.slug]["tenant_id"] == tenant.id
        assert seen[tenant.slug]["context"] == tenant.id  # the logs' tenant comes from the same message
        assert seen[tenant.slug]["customers"] == set(tenant.customer_ids)
        assert seen[tenant.slug]["customer_tenants"] == {tenant.id}
        # The job counts as its tenant's on the worker's loop (fair turns, share.py), and only as its own.
        assert seen[tenant.slug]["share"].get(tenant.id) == 1


async def test_a_message_without_a_tenant_is_never_run_and_is_dead_lettered(database, tenants, worker):
    broker = dramatiq.get_broker()
    with pytest.raises(MissingTenant):
        enqueue(broker, "tests.worker.look_around", tenant_id=None, label="refused at the sender")
    # Messages that skipped the helper, as a buggy or hostile sender would send them.
    actor = broker.get_actor("tests.worker.look_around")
    missing = actor.send_with_options(kwargs={"label": "no tenant"})
    garbage = actor.send_with_options(kwargs={"label": "bad tenant", "tenant_id": "alfa"})
    running = await worker()

    assert SEEN == []
    assert {missing.message_id, garbage.message_id} <= running.dead_letter_ids()


async def test_a_job_that_raises_leaves_nothing_it_wrote(database, tenants, worker):
    message = enqueue(dramatiq.get_broker(), "tests.worker.write_then_fail", tenant_id=tenants.a.id,
                      name="Escrita Perdida")
    running = await worker()

    assert [entry["label"] for entry in SEEN] == ["Escrita Perdida"]  # it did run, and wrote, then raised
    async with database.tenant(tenants.a.id) as session:
        names = (await session.execute(select(Customer.name))).scalars().all()
    assert "Escrita Perdida" not in names and len(names) == len(tenants.a.customer_ids)
    assert message.message_id in running.dead_letter_ids()


register_jobs(look_around, write_then_fail)  # declared here, registered as the composition root does


def test_in_process_brokers_share_one_time_limit_watchdog(tmp_path):
    """Booting a broker starts TimeLimit's watchdog, a thread dramatiq never stops; every web app built without
    a broker builds an in-process one. The process keeps one watchdog, whatever the number of brokers."""
    brokers = [build_broker(Settings(data_dir=tmp_path)) for _ in range(5)]
    limits = {id(m) for broker in brokers for m in broker.middleware if isinstance(m, TimeLimit)}
    assert len(limits) == 1
    watchdogs = [t for t in threading.enumerate() if type(t).__name__ == "_CtypesTimeoutManager"]
    assert len(watchdogs) == 1 and watchdogs[0].is_alive()
