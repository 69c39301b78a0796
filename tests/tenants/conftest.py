"""A running spine for scenario tests (processes, routines): intake -> relay -> broker -> worker
threads -> effects, with a frozen clock that the test moves forward. PostgreSQL runs with the real Redis broker; SQLite with the
embedded in-process broker, as the embedded mode does."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.relay import relay_once
from backoffice.platform.timers.service import fire_due_timers
from backoffice.platform.worker.broker import build_broker
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import RecordingPort, get_port, set_port
from backoffice.tenants.events.intake import IntakeResult, ingest
from backoffice.tenants.policies.service import update_policy
from tests.conftest import RUN_ID, TwoTenants, redis_url, require

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # a Monday, 12:00 in São Paulo
_counter = itertools.count()


@dataclass
class Spine:
    database: Database
    broker: dramatiq.Broker
    clock: FrozenClock
    tenants: TwoTenants
    ports: dict[Channel, RecordingPort]

    async def ingest(self, tenant_id: uuid.UUID, event: dict[str, Any]) -> IntakeResult:
        async with self.database.tenant(tenant_id) as session:
            return await ingest(session, tenant_id, event)

    async def settle(self, rounds: int = 40) -> None:
        """Run relay, timers and workers until nothing available is left to do."""
        for _ in range(rounds):
            moved = await relay_once(self.database, self.broker) + await fire_due_timers(self.database)
            for queue in self.broker.get_declared_queues():
                await asyncio.to_thread(self.broker.join, queue, timeout=30_000)
            if moved == 0 and await self._outstanding() == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the spine did not settle: {await self._outstanding()} outbox rows outstanding")

    async def _outstanding(self) -> int:
        now = self.clock.now()
        async with self.database.system() as session:
            query = select(func.count()).select_from(OutboxEntry).where(
                OutboxEntry.completed_at.is_(None), OutboxEntry.available_at <= now)
            return (await session.execute(query)).scalar_one()

    async def advance(self, **delta: float) -> None:
        self.clock.advance(**delta)
        await self.settle()

    async def customer(self, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> Customer:
        async with self.database.tenant(tenant_id) as session:
            return await session.get(Customer, (tenant_id, customer_id))

    async def set_policy(self, tenant_id: uuid.UUID, **changes: Any) -> int:
        async with self.database.provider(tenant_id) as session:
            version, _ = await update_policy(session, changes=changes, acting=Actor.system("tests"), reason="test")
        return version

    def sent(self, channel: Channel, tenant_id: uuid.UUID) -> list:
        return self.ports[channel].for_tenant(tenant_id)


@pytest.fixture
async def spine(backend, database, tenants) -> Spine:
    frozen = FrozenClock(START)
    previous_clock = clock.use(frozen)
    if backend.name == "postgres":
        require("redis")
        settings = database.settings.model_copy(update={"broker_url": redis_url(14)})
    else:
        settings = database.settings
    broker = build_broker(settings, namespace=f"bo-test-{RUN_ID}-{next(_counter)}")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    fresh = {channel: RecordingPort(channel) for channel in Channel}
    previous_ports = {channel: set_port(channel, port) for channel, port in fresh.items()}
    worker.start()
    try:
        yield Spine(database, broker, frozen, tenants, fresh)
    finally:
        worker.stop()
        for queue in broker.get_declared_queues():
            broker.flush(queue)
        broker.close()
        for channel, port in previous_ports.items():
            set_port(channel, port)
        clock.use(previous_clock)


async def new_customer(database: Database, tenant_id: uuid.UUID, manager_id: uuid.UUID, *, name: str,
                       tax_id: str, email: str | None = "cliente@example.com",
                       lifecycle: Lifecycle = Lifecycle.ONBOARDING, external: dict | None = None) -> uuid.UUID:
    from backoffice.platform.documents import normalize_tax_id

    kind, number = normalize_tax_id(tax_id)
    async with database.tenant(tenant_id) as session:
        customer = Customer(name=name, tax_id_kind=kind, tax_id=number, email=email, account_manager_id=manager_id,
                            lifecycle=lifecycle, external_ids=external or {})
        session.add(customer)
        await session.flush()
        return customer.id


__all__ = ["START", "Spine", "get_port", "new_customer"]
