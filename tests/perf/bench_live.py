"""Benchmark of the portal's live stream: many open streams on one web process, what they cost the
database while idle, and how fast one notification reaches all of them.

    .venv/bin/python -m tests.perf.bench_live                       # 500 streams, 20 s idle
    .venv/bin/python -m tests.perf.bench_live --streams 1000 --idle 30

An embedded (SQLite) database in a temporary directory, one tenant, one signed-in person holding
``--streams`` streams (as many tabs) on one uvicorn in this process. Counts the SQL statements the app
runs while the streams sit idle (the design's promise: none, whatever the number of streams), then writes
one notification the way a process batch does and times its arrival on every stream, from the start of
the writing transaction. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from backoffice.platform import clock
from backoffice.platform import live as bus_module
from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.tenants.effects.service import EffectRows
from backoffice.tenants.notifications.models import Notification
from backoffice.web.app import create_app
from tests.conftest import make_tenant
from tests.web.portal.conftest import PASSWORD, csrf_of


async def _stream(client: httpx.AsyncClient, ready: asyncio.Event, counter: list[int], arrived: list[float]) -> None:
    async with client.stream("GET", "/alfa/live", headers={"accept": "text/event-stream"}, timeout=None) as response:
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        async for line in response.aiter_lines():
            if line == "event: notification":
                arrived.append(time.perf_counter())
                return


async def main(streams: int, idle: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/live.sqlite3",
                            broker_url="memory://")
        await asyncio.to_thread(upgrade, settings)
        database = Database(settings)
        tenant = await make_tenant(database, "alfa", "11.222.333/0001-81", [])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(settings, database=database), log_level="warning",
                                               timeout_graceful_shutdown=5, backlog=4096))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
        client = httpx.AsyncClient(base_url=base, limits=limits, headers={"accept": "text/html"})
        page = await client.get("/alfa/login")
        await client.post("/alfa/login", data={"email": "member@alfa.example", "password": PASSWORD,
                                               "_csrf_token": csrf_of(page.text)})
        statements = [0]

        def count(*_args) -> None:
            statements[0] += 1

        ready, counter, arrived = asyncio.Event(), [0, streams], []
        opened_at = time.perf_counter()
        tasks = [asyncio.create_task(_stream(client, ready, counter, arrived)) for _ in range(streams)]
        await asyncio.wait_for(ready.wait(), 120)
        opened = time.perf_counter() - opened_at
        hub = bus_module.bus_for(settings).hub
        while hub.connections() < streams:
            await asyncio.sleep(0.05)
        sa_event.listen(Engine, "before_cursor_execute", count)
        await asyncio.sleep(idle)
        sa_event.remove(Engine, "before_cursor_execute", count)
        idle_statements = statements[0]

        rows = EffectRows(tenant.id)
        rows.add(Notification, effect_key=f"bench:{uuid.uuid4()}", recipient_id=tenant.member_id,
                 kind="customer.started", title="Cliente novo", body="b", detail={}, customer_id=None, event_id=None,
                 read_at=None, created_at=clock.now())
        committed = time.perf_counter()  # from the start of the writing transaction, commit included
        async with database.tenant(tenant.id) as session:
            await rows.write(session)
        commit_ms = (time.perf_counter() - committed) * 1000
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        fan_out = sorted(at - committed for at in arrived)
        await client.aclose()
        server.should_exit = True
        await serving
        await database.dispose()
        return {"streams": streams, "seconds_to_open_all": round(opened, 2), "idle_seconds": idle,
                "sql_statements_while_idle": idle_statements, "received": len(arrived),
                "write_and_commit_ms": round(commit_ms, 1), "fan_out_ms_p50": round(fan_out[len(fan_out) // 2] * 1000, 1),
                "fan_out_ms_max": round(fan_out[-1] * 1000, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--idle", type=float, default=20.0)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.streams, arguments.idle)), indent=2))
