"""The portal's live stream (web/portal/live.py), served by a real uvicorn on a loopback socket: events
reach only their tenant and their person, a refused stream is a 401, a reconnect with Last-Event-ID is
told what it missed, and uvicorn's exit signal ends open streams instead of waiting for them."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from backoffice.platform import clock
from backoffice.platform import live as bus_module
from backoffice.platform.live import RedisBus
from backoffice.tenants.effects.service import EffectRows
from backoffice.tenants.notifications.live import announce_run
from backoffice.tenants.notifications.models import Notification
from backoffice.web.app import create_app
from tests.conftest import redis_url
from tests.web.console.conftest import (  # noqa: F401  fixtures: an operator of tenant A signed in to the console
    operator_client, staff_members,
)
from tests.web.portal.conftest import PASSWORD, csrf_of


@asynccontextmanager
async def served(settings) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=30))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        bus_module.forget_bus(settings)


async def signed_in(base_url: str, slug: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, headers={"accept": "text/html"})
    page = await client.get(f"/{slug}/login")
    answer = await client.post(f"/{slug}/login", data={"email": email, "password": PASSWORD,
                                                       "_csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text
    return client


class Stream:
    """An open event stream: its frames as they come."""

    def __init__(self, client: httpx.AsyncClient, path: str, headers: dict | None = None) -> None:
        self.client, self.path, self.headers = client, path, headers or {}
        self.frames: asyncio.Queue[dict] = asyncio.Queue()
        self.status: int | None = None
        self.opened = asyncio.Event()

    async def run(self) -> None:
        async with self.client.stream("GET", self.path, headers={"accept": "text/event-stream", **self.headers},
                                      timeout=None) as response:
            self.status = response.status_code
            self.opened.set()
            if response.status_code != 200:
                return
            frame: dict = {}
            async for line in response.aiter_lines():
                if line == "":
                    if frame:
                        await self.frames.put(frame)
                    frame = {}
                    continue
                key, _, value = line.partition(":")
                frame[key or "comment"] = value.strip()

    async def next_event(self, timeout: float = 3.0) -> dict:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if "event" in frame:
                return frame

    async def nothing_for(self, seconds: float) -> None:
        try:
            frame = await self.next_event(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"this stream should have received nothing, got {frame}")


@asynccontextmanager
async def listening(client: httpx.AsyncClient, path: str, headers: dict | None = None) -> AsyncIterator[Stream]:
    stream = Stream(client, path, headers)
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.opened.wait(), 5)
    await asyncio.sleep(0.05)  # subscribed before the test publishes
    try:
        yield stream
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def notify(database, tenant_id: uuid.UUID, recipient_id: uuid.UUID, title: str) -> None:
    """A notification written as a process batch writes it (EffectRows), announced after commit."""
    rows = EffectRows(tenant_id)
    rows.add(Notification, effect_key=f"test:{uuid.uuid4()}", recipient_id=recipient_id, kind="customer.started",
             title=title, body="Corpo", detail={}, customer_id=None, event_id=None, read_at=None,
             created_at=clock.now())
    async with database.tenant(tenant_id) as session:
        await rows.write(session)
    await bus_module.drain()


async def test_a_notification_reaches_only_its_person_and_a_run_only_its_tenant(database, tenants):
    async with served(database.settings) as (url, _server):
        member_a = await signed_in(url, "alfa", "member@alfa.example")
        admin_a = await signed_in(url, "alfa", "admin@alfa.example")
        member_b = await signed_in(url, "beta", "member@beta.example")
        async with listening(member_a, "/alfa/live") as mine, listening(admin_a, "/alfa/live") as colleague, \
                listening(member_b, "/beta/live") as other_tenant:
            assert mine.status == colleague.status == other_tenant.status == 200
            await notify(database, tenants.a.id, tenants.a.member_id, "Cliente novo: Casa do Pão")
            frame = await mine.next_event()
            assert frame["event"] == "notification" and json.loads(frame["data"]) == {"new": 1}
            assert frame["id"].isdigit()
            # The badge's source of truth answers the new count to the person it was for.
            poll = (await member_a.get("/alfa/inbox/poll", headers={"accept": "application/json"})).json()
            assert poll["unread"] == 1 and poll["latest"][0]["title"] == "Cliente novo: Casa do Pão"

            async with database.tenant(tenants.a.id) as session:
                announce_run(session, tenants.a.id, uuid.uuid4(), settled=3, total=10, finished=False)
            await bus_module.drain()
            assert (await mine.next_event())["event"] == "run"
            assert (await colleague.next_event())["event"] == "run"  # a run is the whole company's
            # The colleague never heard of the member's notification; tenant B heard of nothing at all.
            await colleague.nothing_for(0.3)
            await other_tenant.nothing_for(0.3)
        for client in (member_a, admin_a, member_b):
            await client.aclose()


async def test_a_rolled_back_notification_is_never_announced(database, tenants):
    async with served(database.settings) as (url, _server):
        member_a = await signed_in(url, "alfa", "member@alfa.example")
        async with listening(member_a, "/alfa/live") as mine:
            rows = EffectRows(tenants.a.id)
            rows.add(Notification, effect_key="test:rolled-back", recipient_id=tenants.a.member_id,
                     kind="customer.started", title="t", body="b", detail={}, customer_id=None, event_id=None,
                     read_at=None, created_at=clock.now())
            with pytest.raises(RuntimeError):
                async with database.tenant(tenants.a.id) as session:
                    await rows.write(session)
                    raise RuntimeError("the batch failed after writing")
            await bus_module.drain()
            await mine.nothing_for(0.3)
        await member_a.aclose()


async def test_the_stream_refuses_without_a_portal_session_of_that_tenant(database, tenants, operator_client):
    async with served(database.settings) as (url, _server):
        anonymous = httpx.AsyncClient(base_url=url)
        assert (await anonymous.get("/alfa/live")).status_code == 401
        member_b = await signed_in(url, "beta", "member@beta.example")
        assert (await member_b.get("/alfa/live")).status_code == 401  # B's session on A's portal
        await anonymous.aclose()
        await member_b.aclose()
    # A staff operator's console session (assigned to A only) opens neither tenant's stream.
    for slug in ("beta", "alfa"):
        answer = await operator_client.client.get(f"/{slug}/live", headers={"accept": "text/event-stream"})
        assert answer.status_code == 401, slug


async def test_a_reconnect_with_last_event_id_is_told_what_it_missed(database, tenants):
    async with served(database.settings) as (url, _server):
        member_a = await signed_in(url, "alfa", "member@alfa.example")
        before = str(int(time.time() * 1000) - 1000)
        await notify(database, tenants.a.id, tenants.a.member_id, "Enquanto você estava fora")
        async with listening(member_a, "/alfa/live", {"last-event-id": before}) as mine:
            frame = await mine.next_event()
            assert frame["event"] == "notification" and json.loads(frame["data"]) == {"new": 1, "resync": True}
        later = str(int(time.time() * 1000) + 1000)
        async with listening(member_a, "/alfa/live", {"last-event-id": later}) as mine:
            await mine.nothing_for(0.3)
        await member_a.aclose()


async def test_the_exit_signal_ends_open_streams_so_uvicorn_stops_at_once(database, tenants):
    async with served(database.settings) as (url, server):
        member_a = await signed_in(url, "alfa", "member@alfa.example")
        stream = Stream(member_a, "/alfa/live")
        reading = asyncio.create_task(stream.run())
        await asyncio.wait_for(stream.opened.wait(), 5)
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        # uvicorn re-raises a captured signal once it has stopped (to end the process); not this one's.
        server._captured_signals.clear()
        # The server ends the open stream itself; without that it would wait the whole grace period (30 s).
        await asyncio.wait_for(reading, 5)
        assert stream.status == 200
        await member_a.aclose()


@pytest.mark.postgres_only
async def test_redis_fans_a_tenants_message_out_to_each_web_process(database, tenants, redis_available):
    """Two buses on the same Redis stand for two web processes: each delivers to its own connections,
    and only to the tenant the message is for."""
    one, two = RedisBus(redis_url()), RedisBus(redis_url())
    await one.start()
    await two.start()
    try:
        here, there, elsewhere = one.hub.subscribe(tenants.a.id), two.hub.subscribe(tenants.a.id), \
            two.hub.subscribe(tenants.b.id)
        await asyncio.sleep(0.2)  # the pattern subscriptions are in place
        await one.publish([(tenants.a.id, {"type": "run", "data": {"run_id": "r"}})])
        assert (await asyncio.wait_for(here.queue.get(), 3))["data"] == {"run_id": "r"}
        assert (await asyncio.wait_for(there.queue.get(), 3))["data"] == {"run_id": "r"}
        await asyncio.sleep(0.1)
        assert elsewhere.queue.empty()
    finally:
        await one.stop()
        await two.stop()


async def test_reading_a_notification_tells_the_persons_other_pages_and_silence_is_a_heartbeat(database, tenants,
                                                                                             monkeypatch):
    from backoffice.web.portal import live as portal_live

    monkeypatch.setattr(portal_live, "HEARTBEAT", 0.2)
    async with served(database.settings) as (url, _server):
        member_a = await signed_in(url, "alfa", "member@alfa.example")
        await notify(database, tenants.a.id, tenants.a.member_id, "Cliente novo: Casa do Pão")
        poll = (await member_a.get("/alfa/inbox/poll", headers={"accept": "application/json"})).json()
        async with listening(member_a, "/alfa/live") as other_tab:
            beat = await asyncio.wait_for(other_tab.frames.get(), 3)
            while "event" in beat or beat.get("comment") != "keep-alive":
                beat = await asyncio.wait_for(other_tab.frames.get(), 3)
            inbox = await member_a.get(f"/alfa/inbox/{poll['latest'][0]['id']}")
            answer = await member_a.post(f"/alfa/inbox/{poll['latest'][0]['id']}/read",
                                         data={"_csrf_token": csrf_of(inbox.text)})
            assert answer.status_code == 303
            await bus_module.drain()
            frame = await other_tab.next_event()
            assert frame["event"] == "notification" and json.loads(frame["data"]) == {"read": 1}
        await member_a.aclose()
