"""Webhook fixtures: the local receiver, a frozen clock, the real webhook port with test transport
settings (loopback allowed, short timeouts), and a driver that runs due outbox rows the way the relay
and a worker would (each job in its tenant's transaction, its row completed with it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.webhooks.port import WebhookPort
from tests.providers.webhook_receiver import Receiver, run_due

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
ACTOR = Actor(type="tenant_user", label="admin@alfa.example")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    frozen = FrozenClock(START)
    previous = clock.use(frozen)
    try:
        yield frozen
    finally:
        clock.use(previous)


@pytest.fixture
def loopback(database: Database) -> Settings:
    """The test database's settings with private targets allowed (the receiver is on 127.0.0.1)."""
    return database.settings.model_copy(update={"allow_private_targets": True})


@pytest.fixture
def webhook_port(loopback: Settings) -> Iterator[WebhookPort]:
    port = WebhookPort(settings=loopback, connect_timeout=1.0, total_timeout=0.5)
    previous = set_port(Channel.WEBHOOK, port)
    try:
        yield port
    finally:
        set_port(Channel.WEBHOOK, previous)


@pytest.fixture
def drive(database: Database):
    async def _drive() -> int:
        return await run_due(database)
    return _drive


__all__ = ["ACTOR", "START"]
