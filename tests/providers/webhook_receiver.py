"""A small HTTP server on 127.0.0.1 that plays a tenant's system (or the tenant's platform) over real
loopback: it checks the Standard Webhooks signature with the secrets it was given, records every request
and answers from a per-path script (status, headers, body, delay), 200 when the script is empty."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.service import complete_outbox_entry
from backoffice.platform.worker.broker import run_batch
from backoffice.platform.worker.jobs import REGISTRY, BatchItem
from backoffice.platform.security.standard_webhooks import SignatureError, verify


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = '{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    problem: str | None
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per TCP connection

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {}  # path -> secrets that verify its requests
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.always: dict[str, Reply] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do (every answer has its length)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._handle(self.path, headers, body, self.client_address)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    payload = reply.body.encode()
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests): nothing left to answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, path: str, headers: dict[str, str], body: bytes, peer: tuple[str, int]) -> Reply:
        secrets = self.secrets.get(path, [])
        try:
            verify(secrets, headers, body, now=int(clock.now().timestamp()))
            verified, problem = True, None
        except SignatureError as error:
            verified, problem = False, str(error)
        with self._lock:
            self.received.append(Received(path, headers, body, verified, problem, peer))
            script = self.scripts[path]
            return script.popleft() if script else self.always.get(path, Reply())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.scripts[path].extend(replies)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def run_due(database: Database, *, rounds: int = 20) -> int:
    """Run every outbox row that is due now, in due order, until none is left; returns how many ran."""
    ran = 0
    for _ in range(rounds):
        async with database.system() as session:
            due = (await session.execute(
                select(OutboxEntry).where(OutboxEntry.completed_at.is_(None), OutboxEntry.available_at <= clock.now())
                .order_by(OutboxEntry.available_at, OutboxEntry.id))).scalars().all()
        if not due:
            return ran
        for entry in due:
            spec = REGISTRY[entry.job]
            async with database.provider(entry.tenant_id) as session:  # as the worker runs it
                if spec.batch:  # a batch job, handed this one row as the relay would
                    await run_batch(session, spec, entry.tenant_id, [BatchItem(entry.payload, entry.id, entry.attempts + 1)])
                else:
                    await spec.fn(session, tenant_id=entry.tenant_id, **entry.payload)
                    await complete_outbox_entry(session, entry.tenant_id, entry.id)
            ran += 1
    raise AssertionError("outbox rows kept coming")
