"""What the world outside sees: the tenants' platforms and webhook endpoints (one HTTP recorder, Standard
Webhooks signatures checked with each tenant's secret) and the tenants' SMTP server (aiosmtpd).

The recorders keep every request they received for the whole run, with the identity the receiver would
deduplicate on (``webhook-id``, ``Message-ID``), so the suite can tell a repeat the receiver can drop
(same identity) from one it cannot (a fresh identity for the same effect). They run on their own threads
in the test process, so they outlive every fault the test injects into the platform.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import compat32
from typing import Any

from backoffice.platform.security.standard_webhooks import SignatureError, verify

from tests.connectors.conftest import read_request

OK = json.dumps({"ok": True}).encode()


@dataclass
class Received:
    channel: str  # "platform" | "webhook" | "email"
    tenant: str
    identity: str  # webhook-id or Message-ID
    logical: tuple  # what the effect is, independent of its identity
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


class HttpRecorder:
    """``POST /platform/<tenant>`` (commands) and ``POST /webhooks/<tenant>`` (events), each verified with
    the secret the tenant registered; a bad signature is answered 401 and counted."""

    def __init__(self) -> None:
        self.url = ""
        self.secrets: dict[tuple[str, str], str] = {}  # (channel, tenant) -> whsec_
        self.received: list[Received] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body, headers = await read_request(scope, receive)
        status, answer = self._handle(scope["method"], scope["path"], headers, body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        match = re.fullmatch(r"/(platform|webhooks)/([a-z0-9-]+)", path)
        if method != "POST" or not match:
            return 404, b"{}"
        channel = "platform" if match.group(1) == "platform" else "webhook"
        tenant = match.group(2)
        secret = self.secrets.get((channel, tenant))
        try:
            if secret is None:
                raise SignatureError("no secret registered for this receiver")
            verify([secret], headers, body)
            payload = json.loads(body)
        except (SignatureError, ValueError) as error:
            with self._lock:
                self.refused.append(f"{channel}/{tenant}: {error}")
            return 401, b'{"error": "signature"}'
        identity = headers["webhook-id"]
        if channel == "platform":
            customer = (payload.get("customer") or {}).get("id")
            data = payload.get("data") or {}
            variant = "change" if "previous_plan" in data else ""  # one story per customer: no other variant
            logical = (tenant, "platform", customer, payload.get("command"), variant)
        else:
            logical = (tenant, "webhook", payload.get("event_id"))
        with self._lock:
            self.received.append(Received(channel, tenant, identity, logical, time.time(),
                                          {"type": payload.get("type") or payload.get("command")}))
        return 200, OK


class SmtpRecorder:
    """aiosmtpd handler: keeps each message's Message-ID, recipients and ``X-Backoffice-Effect`` as it
    arrived on the wire (a folded header keeps its line break, so the suite can see it)."""

    def __init__(self, tenants_by_sender: dict[str, str]) -> None:
        self.tenants_by_sender = tenants_by_sender
        self.received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=compat32)
        effect_raw = message.get("X-Backoffice-Effect") or ""
        effect = re.sub(r"\s", "", effect_raw)
        tenant = self.tenants_by_sender.get(envelope.mail_from.lower(), envelope.mail_from)
        record = Received("email", tenant, str(message.get("Message-ID") or ""), (tenant, "email", effect), time.time(),
                          {"to": list(envelope.rcpt_tos), "subject": str(message.get("Subject") or ""),
                           "effect_raw": effect_raw, "folded": "\n" in effect_raw or effect_raw != effect_raw.strip()})
        with self._lock:
            self.received.append(record)
        return "250 OK"


class SmtpServer:
    def __init__(self, handler: SmtpRecorder) -> None:
        from aiosmtpd.controller import Controller

        from tests.faults.cluster import free_port

        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:  # noqa: PYI034 (a plain context manager)
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
