"""The portal's live stream: server-sent events for the inbox badge, new notifications and routine runs.

``GET /<slug>/live`` answers ``text/event-stream`` to a signed-in user of that tenant, and 401 to anyone
else (no session, another tenant's session, a staff console session). The stream holds no database
session: the person is checked once at connect, then messages come from the process's bus
(platform/live.py: one Redis subscription per web process, fanned out here) filtered to this tenant and
this person. Every ``HEARTBEAT`` seconds of silence a comment line keeps proxies from closing it.

A reconnecting browser sends ``Last-Event-ID`` (an event's time in ms): if notifications arrived while it
was away, it is told at once (one count query per reconnect). The page's script falls back to polling
``/inbox/poll`` when the stream fails.

Shutdown: uvicorn waits for open responses before it stops; an event stream never finishes by itself, so
the app's lifespan hooks uvicorn's exit signal (``install_exit_hook``) and ends every stream at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.response import Stream

from backoffice.platform.db.session import Database
from backoffice.platform.live import Bus, bus_for, messages, use
from backoffice.tenants.notifications import queries
from backoffice.tenants.notifications.live import NOTIFICATION, RUN
from backoffice.tenants.registry.models import Tenant

log = logging.getLogger(__name__)
HEARTBEAT = 15.0
RETRY_MS = 3000
_STOPS: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}  # one per running app (tests run several)


class _Refused(Exception):
    pass


async def _person(request: Request, tenant: Tenant, database: Database) -> uuid.UUID:
    data = request.session if request.scope.get("session") else {}
    if not data or data.get("tenant_id") != str(tenant.id) or not data.get("user_id"):
        raise _Refused()
    try:
        user_id = uuid.UUID(str(data["user_id"]))
    except ValueError:
        raise _Refused() from None
    async with database.tenant(tenant.id) as session:
        if await queries.active_person(session, user_id) is None:
            raise _Refused()
    return user_id


def _since(value: str | None) -> datetime | None:
    if not value or not value.isdigit() or len(value) > 15:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def sse_frame(message: dict[str, Any]) -> str:
    return f"id: {message.get('id', '')}\nevent: {message['type']}\ndata: {json.dumps(message.get('data', {}))}\n\n"


def _for(message: dict[str, Any], user_id: uuid.UUID) -> bool:
    if message.get("type") not in (NOTIFICATION, RUN):
        return False
    addressee = message.get("user_id")
    return addressee is None or addressee == str(user_id)


@get("/live", name="portal:live")
async def live(request: Request, tenant: Tenant, state: State) -> Response:
    try:
        user_id = await _person(request, tenant, state.database)
    except _Refused:
        return Response({"title": "sign-in required", "status": 401}, status_code=401,
                        media_type="application/problem+json", headers={"cache-control": "no-store"})
    since = _since(request.headers.get("last-event-id"))
    missed = 0
    if since is not None:
        async with state.database.tenant(tenant.id) as session:
            missed = await queries.unread_since(session, user_id, since)
    bus: Bus = state.live_bus
    stop: asyncio.Event = state.live_stop
    subscription = bus.hub.subscribe(tenant.id)

    async def frames() -> AsyncIterator[str]:
        with_subscription = subscription
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n"
            if missed:
                yield sse_frame({"type": NOTIFICATION, "data": {"new": missed, "resync": True}})
            async for message in messages(with_subscription, heartbeat=HEARTBEAT, stop=stop):
                if message is None:
                    yield ": keep-alive\n\n"
                elif _for(message, user_id):
                    yield sse_frame(message)
        finally:
            with_subscription.close()

    return Stream(frames(), media_type="text/event-stream",
                  headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def install_exit_hook(stop: asyncio.Event) -> None:
    """Have uvicorn's exit signal end the streams (it would wait for them otherwise). Uvicorn calls
    ``handle_exit`` from the signal handler; the event is set on the loop's thread."""
    try:
        from uvicorn.server import Server
    except ImportError:  # served by something else: the lifespan's shutdown still ends the streams
        return
    _STOPS[stop] = asyncio.get_running_loop()
    if getattr(Server.handle_exit, "_backoffice_live", False):
        return
    original = Server.handle_exit

    def handle_exit(self, sig, frame) -> None:
        for event, loop in list(_STOPS.items()):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that app's loop is gone
                _STOPS.pop(event, None)
        original(self, sig, frame)

    handle_exit._backoffice_live = True  # type: ignore[attr-defined]
    Server.handle_exit = handle_exit  # type: ignore[method-assign]


@asynccontextmanager
async def live_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The process's bus and its subscriber for as long as the app runs; every stream ends on the way out."""
    bus = bus_for(app.state.settings)
    stop = asyncio.Event()
    app.state.live_bus = bus
    app.state.live_stop = stop
    await bus.start()
    previous = use(bus)
    install_exit_hook(stop)
    try:
        yield
    finally:
        stop.set()
        _STOPS.pop(stop, None)
        use(previous)
        await bus.stop()


LIVE_HANDLERS = [live]
