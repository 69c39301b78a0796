"""Headers the platform sets are never folded (issue 18, finding 5): receivers read the identity headers
(``X-Backoffice-Effect``, ``Message-ID``; ``webhook-id`` and the like on HTTP) as tokens, and a folded one
arrives with a line break or, worse, RFC 2047-encoded. Checked on the raw bytes the local receivers got."""

from __future__ import annotations

import asyncio
import email
import uuid
from email import policy

from aiosmtpd.controller import Controller
from sqlalchemy import select

from backoffice.connectors.http import CircuitBreaker, Http, MemoryStore, circuit_key
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.jobs import deliver
from backoffice.platform.settings import get_settings
from tests.connectors.conftest import free_port, make_instance
from tests.connectors.test_ports import authenticator, ports, smtp_config  # noqa: F401  (ports: a fixture)

LONG_KEY = "dunning:" + str(uuid.uuid4()) + ":reminder:" + "x" * 60 + ":" + str(uuid.uuid4())


class RawInbox:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.raw.append(envelope.original_content)
        return "250 2.0.0 queued"


def header_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


async def test_an_effect_key_past_78_characters_reaches_the_smtp_server_on_one_line(database, tenants, ports):  # noqa: F811
    assert len(LONG_KEY) > 78 + len("X-Backoffice-Effect: ")
    inbox, port = RawInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        await make_instance(database, tenants.a.id, "smtp", smtp_config(port))
        subject = "Cobrança em atraso: sua fatura de novembro venceu e o acesso será bloqueado em breve — " * 2
        async with database.tenant(tenants.a.id) as session:
            message = OutboundMessage(effect_key=LONG_KEY, channel=Channel.EMAIL, target="cliente@example.com",
                                      payload={"to": "cliente@example.com", "to_name": "Cliente Exemplo",
                                               "subject": subject, "text": "Olá,\n\nsua fatura venceu."})
            session.add(message)
            await session.flush()
            await deliver(session, tenant_id=tenants.a.id, message_id=str(message.id))
        async with database.tenant(tenants.a.id) as session:
            sent = (await session.execute(select(OutboundMessage).where(OutboundMessage.id == message.id))).scalar_one()
        assert sent.status == DeliveryStatus.SENT, sent.last_error
    finally:
        controller.stop()
    [raw] = inbox.raw
    lines = header_lines(raw)
    assert b"X-Backoffice-Effect: " + LONG_KEY.encode() in lines
    [message_id] = [line for line in lines if line.lower().startswith(b"message-id:")]
    assert message_id.endswith(b">")  # the whole identifier on its line, no continuation after it
    # No header of ours continues on a folded line; the tenant's Subject is the only header that may (it
    # is text, RFC 2047-encoded in words of at most 75 characters), and it still reads back whole.
    continued, current = set(), b""
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            continued.add(current)
        else:
            current = line.split(b":", 1)[0]
    assert continued <= {b"Subject", b"To", b"From"}, continued
    assert all(len(line) <= 998 for line in lines)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == subject and parsed["X-Backoffice-Effect"] == LONG_KEY
    assert "venceu" in parsed.get_body(("plain",)).get_content()


async def test_long_headers_on_outbound_http_reach_the_receiver_on_one_line():
    """httpx (h11) writes each header on one line whatever its length; this keeps it so for ours."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        http = Http(CircuitBreaker(MemoryStore(), circuit_key(uuid.uuid4(), uuid.uuid4())), timeout=2, retries=0,
                    settings=get_settings().model_copy(update={"allow_private_targets": True}))
        await http.request("POST", f"http://127.0.0.1:{port}/commands", idempotency_key=LONG_KEY,
                           headers={"webhook-id": LONG_KEY, "X-Backoffice-Effect": LONG_KEY}, json={})
    finally:
        server.close()
        await server.wait_closed()
    lines = received[0].split(b"\r\n")
    for name in (b"idempotency-key", b"webhook-id", b"x-backoffice-effect"):
        assert name + b": " + LONG_KEY.encode() in [line.lower()[:len(name)] + line[len(name):] for line in lines]
    assert not [line for line in lines if line[:1] in (b" ", b"\t")]
