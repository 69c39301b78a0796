"""The HTTP apps the intake benchmarks compare, each served by uvicorn in its own process.

- ``trivial``: Litestar answering without any database work: what the server and the load generator
  alone can do on this machine (bench_intake.py's ceiling).
- ``bare``: Litestar + a raw asyncpg pool, one INSERT per request: the floor a durable endpoint costs.
- ``intake``: the platform's durable intake: the tenant-scoped session (RLS tenant set per transaction),
  catalogue validation, deduplication, the event and its outbox row in one transaction.
"""

from __future__ import annotations

import json
import os
import uuid

import asyncpg
from litestar import Litestar, Request, post

DSN = os.environ.get("PERF_DSN", "")


def _bare() -> Litestar:
    state: dict = {}

    async def startup() -> None:
        state["pool"] = await asyncpg.create_pool(DSN, min_size=4, max_size=8)

    @post("/events", status_code=202)
    async def receive(request: Request) -> dict:
        body = await request.body()
        async with state["pool"].acquire() as connection:
            await connection.execute("INSERT INTO bare_events (id, body) VALUES ($1, $2::jsonb)",
                                     uuid.uuid4(), body.decode())
        return {"status": "accepted"}

    return Litestar([receive], on_startup=[startup])


def _trivial() -> Litestar:
    """The load generator's ceiling: reads the body and answers, no database."""

    @post("/events", status_code=202)
    async def receive(request: Request) -> dict:
        await request.body()
        return {"status": "accepted"}

    return Litestar([receive])


def _intake() -> Litestar:
    from backoffice.platform.db.session import Database
    from backoffice.platform.errors import ValidationFailed
    from backoffice.platform.settings import get_settings
    from backoffice.tenants.events.intake import ingest

    database = Database(get_settings())
    tenant_id = uuid.UUID(os.environ["PERF_TENANT"])

    @post("/events", status_code=202)
    async def receive(request: Request) -> dict:
        payload = json.loads(await request.body())
        try:
            async with database.tenant(tenant_id) as session:
                result = await ingest(session, tenant_id, payload)
        except ValidationFailed as error:
            return {"status": "refused", "errors": [e.field for e in error.errors]}
        return {"status": result.status, "event_id": str(result.event_id)}

    return Litestar([receive])


app = {"bare": _bare, "trivial": _trivial}.get(os.environ.get("PERF_APP", ""), _intake)()
