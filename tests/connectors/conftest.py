"""Local stand-ins for the providers, over real loopback HTTP, and the platform's web app to post to.

``provider`` is a small ASGI server under uvicorn on 127.0.0.1 (random port) that answers by route with
what the test scripts (status, JSON, delay) and keeps every request it received, so tests can check
what we sent (headers, auth, query, body) as the provider would see it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import Database

ACTOR = Actor.system("tests")
PROVIDER_ADMIN = Actor(type="staff", label="admin@provider.example")


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass
class Provider:
    """Scripted answers by (method, path); a list is consumed one per request, its last entry repeating."""

    url: str = ""
    routes: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body, headers = await read_request(scope, receive)
        self.seen.append(Seen(scope["method"], scope["path"], scope["query_string"].decode(), headers, body))
        answers = self.routes.get((scope["method"], scope["path"]))
        answer = (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else Answer(404, {"errors": []})
        if answer.delay:
            await asyncio.sleep(answer.delay)
        payload = json.dumps(answer.body if answer.body is not None else {}).encode()
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


async def read_request(scope, receive) -> tuple[bytes, dict[str, str]]:
    """An ASGI request's whole body and its headers (names lower-cased), as a provider stand-in needs them."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return body, {k.decode().lower(): v.decode() for k, v in scope["headers"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class QuickServer(uvicorn.Server):
    """uvicorn's server, noticing ``should_exit`` within 10 ms: its own loop looks every 100 ms, which came
    to ~0.15 s at the end of every test that serves a stand-in."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):  # on_tick refreshes the Date header every tenth call
            counter += 1
            await asyncio.sleep(0.01)


@contextmanager
def serving(app):
    """Serve an ASGI provider stand-in (anything with a ``url`` attribute to fill in) under uvicorn on a
    free loopback port, on its own thread and event loop, while the block runs: the web test client
    blocks the test's loop while a request runs, and a benchmark's workers call it from other processes."""
    port = free_port()
    server = QuickServer(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           access_log=False))
    server.install_signal_handlers = lambda: None  # uvicorn < 0.29; newer ones skip it off the main thread
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    app.url = f"http://127.0.0.1:{port}"
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serving(Provider()) as fake:
        yield fake


# Short timeouts and backoff so slow-provider tests take a fraction of a second.
FAST_HTTP = {"timeout": 0.5, "retries": 1, "backoff": 0.01, "threshold": 3, "cooldown": 0.4}


def connector_settings(database: Database):
    return database.settings.model_copy(update={"allow_private_targets": True})


@pytest.fixture
async def web(database: Database) -> AsyncIterator[AsyncTestClient]:
    from backoffice.web.app import create_app

    # The app opens its own Database in its lifespan, on the test client's event loop.
    app = create_app(connector_settings(database))
    async with AsyncTestClient(app=app) as client:
        app.state.connector_http_options = FAST_HTTP
        yield client


async def make_instance(database: Database, tenant_id: uuid.UUID, kind: str, config: dict[str, Any],
                        name: str | None = None) -> uuid.UUID:
    """A connector as staff would configure it. A provider kind pointed at a local stand-in gets the stand-in's
    host allowed the way production allows any other host: a provider admin's audited ``host_override``."""
    from backoffice.connectors.kinds import get_kind
    from backoffice.connectors.service import create_instance

    host = urlsplit(str(config.get("base_url", ""))).hostname
    override = host if get_kind(kind).hosts and host and host not in get_kind(kind).hosts else None
    async with database.provider(tenant_id) as session:
        instance = await create_instance(session, kind=kind, name=name or kind, config=config,
                                         acting=PROVIDER_ADMIN if override else ACTOR, host_override=override,
                                         settings=connector_settings(database))
        return instance.id
