"""Live updates: small messages about a tenant's rows, published after the transaction that wrote them
commits, fanned out to the web process's open event streams (server-sent events).

One channel per tenant. With Redis, every process publishes there and each web process holds ONE
subscription (a pattern over every tenant's channel) and hands each message to its own connections of
that tenant: the cost is per message, never per connected client per second, and nothing reads the
database to find out that nothing happened. Without Redis (the embedded mode: web, workers and scheduler
in one process) the same fan-out runs in memory.

A message is a dict: ``type`` (``notification``, ``run``), optional ``user_id`` (only that person's
streams receive it; absent, every user of the tenant does), and ``data``. It carries no row content a
reader could not already see: the page fetches what it shows through its own door.

Bookkeeping never decides an outcome: a publish that fails (Redis away) is logged and dropped, the
committed rows stand, and the pages' polling fallback catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.availability import REDIS_ERRORS, redis_client
from backoffice.platform.settings import Settings, get_settings

log = logging.getLogger(__name__)
PREFIX = "backoffice:live:"
QUEUE_SIZE = 100  # a connection that does not read is dropped rather than buffered without end
_PENDING = "backoffice.live.pending"
_HOOKED = "backoffice.live.hooked"


def channel(tenant_id: uuid.UUID) -> str:
    return f"{PREFIX}{tenant_id}"


def event_id() -> str:
    """Milliseconds since the epoch: what a reconnecting client sends back as Last-Event-ID."""
    return str(int(time.time() * 1000))


class Subscription:
    """One connection's queue of its tenant's messages."""

    def __init__(self, hub: Hub, tenant_id: uuid.UUID) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.hub._remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class Hub:
    """The connections of this process by tenant; ``deliver`` hands a tenant's message to each of them."""

    def __init__(self) -> None:
        self._by_tenant: dict[uuid.UUID, set[Subscription]] = {}
        self._lock = threading.Lock()  # the embedded mode's workers publish from their own thread
        self.closed = False

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        subscription = Subscription(self, tenant_id)
        if self.closed:
            subscription.queue.put_nowait(None)
        with self._lock:
            self._by_tenant.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._by_tenant.get(subscription.tenant_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._by_tenant[subscription.tenant_id]

    def connections(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_tenant.values())

    def deliver(self, tenant_id: uuid.UUID, message: dict[str, Any] | None) -> None:
        with self._lock:
            subscribers = list(self._by_tenant.get(tenant_id, ()))
        for subscription in subscribers:
            self._put(subscription, message)

    def _put(self, subscription: Subscription, message: dict[str, Any] | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not subscription.loop:  # asyncio queues belong to their loop's thread
            if not subscription.loop.is_closed():
                subscription.loop.call_soon_threadsafe(self._put, subscription, message)
            return
        try:
            subscription.queue.put_nowait(message)
        except asyncio.QueueFull:  # a stalled reader: end its stream; the browser reconnects and resyncs
            log.warning("live stream of tenant %s is not reading; closing it", subscription.tenant_id)
            self._remove(subscription)
            while not subscription.queue.empty():
                subscription.queue.get_nowait()
            subscription.queue.put_nowait(None)

    def close_all(self) -> None:
        """Shutdown: every stream ends now (None is the end), so the server need not wait for them."""
        self.closed = True
        with self._lock:
            everyone = [s for subscribers in self._by_tenant.values() for s in subscribers]
        for subscription in everyone:
            self._put(subscription, None)


class Bus(Protocol):
    hub: Hub

    async def publish(self, items: list[tuple[uuid.UUID, dict[str, Any]]]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalBus:
    """One process: publishing is delivering."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def publish(self, items: list[tuple[uuid.UUID, dict[str, Any]]]) -> None:
        for tenant_id, message in items:
            self.hub.deliver(tenant_id, message)

    async def start(self) -> None:
        self.hub.closed = False

    async def stop(self) -> None:
        self.hub.close_all()


class RedisBus:
    """Redis pub/sub: publish to the tenant's channel; one pattern subscription per process fans out."""

    RECONNECT_SECONDS = 1.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.hub = Hub()
        self._publisher = redis_client(url)
        self._listener: asyncio.Task | None = None

    async def publish(self, items: list[tuple[uuid.UUID, dict[str, Any]]]) -> None:
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for tenant_id, message in items:
                    pipe.publish(channel(tenant_id), json.dumps(message, default=str))
                await pipe.execute()
        except REDIS_ERRORS as error:
            log.warning("live update not published (%s): pages catch up by polling", error)

    async def start(self) -> None:
        self.hub.closed = False
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="live-subscriber")

    async def _listen(self) -> None:
        while True:
            # No socket timeout on the subscriber: it waits for messages as long as it takes.
            client = redis_client(self.url, timeout=None)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{PREFIX}*")
                async for raw in pubsub.listen():
                    self._deliver(raw)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as error:
                log.warning("live subscriber lost Redis (%s); reconnecting", error)
            finally:
                await pubsub.aclose()
                await client.aclose()
            await asyncio.sleep(self.RECONNECT_SECONDS)

    def _deliver(self, raw: dict[str, Any]) -> None:
        if raw.get("type") != "pmessage":
            return
        name = raw["channel"].decode() if isinstance(raw["channel"], bytes) else raw["channel"]
        try:
            tenant_id = uuid.UUID(name.removeprefix(PREFIX))
            message = json.loads(raw["data"])
        except (ValueError, TypeError) as error:
            log.warning("live message on %s ignored: %s", name, error)
            return
        self.hub.deliver(tenant_id, message)

    async def stop(self) -> None:
        self.hub.close_all()
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        await self._publisher.aclose()


_buses: dict[str, Bus] = {}


def bus_for(settings: Settings) -> Bus:
    """The process's bus for these settings: Redis when the platform has one, else in memory."""
    key = settings.redis_url or "local"
    if key not in _buses:
        _buses[key] = RedisBus(settings.redis_url) if settings.redis_url else LocalBus()
    return _buses[key]


_process_bus: Bus | None = None


def use(bus: Bus | None) -> Bus | None:
    """Make ``bus`` the one this process publishes to (the web app's lifespan does, so that in the embedded
    mode its worker threads publish where its streams listen); returns the previous one."""
    global _process_bus
    previous, _process_bus = _process_bus, bus
    return previous


def forget_bus(settings: Settings) -> None:
    """Tests and restarts: the next ``bus_for`` builds a fresh bus (the old one's connections are closed)."""
    _buses.pop(settings.redis_url or "local", None)


# --- publishing after commit -----------------------------------------------------------------------------

_tasks: set[asyncio.Task] = set()


def publish_after_commit(session: AsyncSession, tenant_id: uuid.UUID, message: dict[str, Any],
                         *, bus: Bus | None = None) -> None:
    """Publish ``message`` on the tenant's channel once ``session``'s transaction commits; a rollback
    drops it. ``bus`` defaults to the process's bus for its settings."""
    sync = session.sync_session
    if not sync.info.get(_HOOKED):
        sync.info[_HOOKED] = True
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_rollback", _after_rollback)
    sync.info.setdefault(_PENDING, []).append((bus, tenant_id, {**message, "id": event_id()}))


def _after_rollback(session) -> None:
    session.info.pop(_PENDING, None)


def _after_commit(session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        log.warning("live updates committed outside an event loop were not published")
        return
    by_bus: dict[int, tuple[Bus, list]] = {}
    for bus, tenant_id, message in pending:
        bus = bus or _process_bus or bus_for(get_settings())
        by_bus.setdefault(id(bus), (bus, []))[1].append((tenant_id, message))
    for bus, items in by_bus.values():
        task = loop.create_task(bus.publish(items))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


async def drain() -> None:
    """Wait for the publishes already scheduled (tests; a worker finishing its message)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


async def messages(subscription: Subscription, *, heartbeat: float, stop: asyncio.Event
                   ) -> AsyncIterator[dict[str, Any] | None]:
    """A subscription's messages; None every ``heartbeat`` seconds of silence; ends at shutdown."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            getting = asyncio.ensure_future(subscription.queue.get())
            done, _ = await asyncio.wait({getting, stopping}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED)
            if getting not in done:
                getting.cancel()
                if stopping in done:
                    return
                yield None
                continue
            message = getting.result()
            if message is None:
                return
            yield message
    finally:
        stopping.cancel()
