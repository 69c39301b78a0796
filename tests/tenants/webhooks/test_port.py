"""The signed POST itself (``SignedPost``, on aiohttp): what it does with a receiver's redirect, a huge or
oddly encoded answer, and a certificate nobody vouches for."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import dramatiq
import pytest
from dramatiq.asyncio import get_event_loop_thread

from backoffice.platform.settings import Settings
from backoffice.platform.worker.broker import build_broker
from backoffice.tenants.webhooks import port
from backoffice.tenants.webhooks.jobs import _transport_reason
from backoffice.tenants.webhooks.port import SNIPPET, SignedPost
from tests.providers.certs import self_signed
from tests.providers.webhook_receiver import Reply

SECRETS = ["whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
PAYLOAD = {"type": "payment.overdue", "data": {"charge": {"amount_cents": 19990}}}


@pytest.fixture
def loopback(tmp_path) -> Settings:
    """Private targets allowed (the receivers listen on 127.0.0.1); no database involved."""
    return Settings(data_dir=tmp_path, allow_private_targets=True)


async def test_a_redirect_is_the_answer_and_is_not_followed(receiver, loopback):
    """A 3xx to an internal address would walk around the outbound check: it is recorded, never followed."""
    receiver.script("/moved", Reply(302, body="", headers={"location": receiver.url("/elsewhere")}))
    answer = await SignedPost(settings=loopback).post(receiver.url("/moved"), SECRETS, "msg_1", PAYLOAD)
    assert answer.status == 302
    assert [r.path for r in receiver.received] == ["/moved"]


async def test_a_huge_answer_gives_its_first_characters_and_the_next_post_still_goes_out(receiver, loopback):
    receiver.script("/big", Reply(200, body="ç" * 2_000_000))  # 4 MB of UTF-8
    poster = SignedPost(settings=loopback, total_timeout=30.0)
    async with poster.client() as client:
        first = await poster.post(receiver.url("/big"), SECRETS, "msg_1", PAYLOAD, client=client)
        second = await poster.post(receiver.url("/big"), SECRETS, "msg_2", PAYLOAD, client=client)
    assert first.status == 200 and first.snippet == "ç" * SNIPPET
    assert second.status == 200 and second.snippet == '{"ok":true}'
    first_seen, second_seen = receiver.at("/big")
    assert (first_seen.webhook_id, second_seen.webhook_id) == ("msg_1", "msg_2")
    assert first_seen.peer != second_seen.peer  # the unread rest was not left on a kept connection


async def test_an_answer_in_a_charset_python_does_not_know_is_read_as_utf8(receiver, loopback):
    receiver.script("/odd", Reply(200, body="recebido ✓", headers={"content-type": "text/plain; charset=x-unknown"}))
    answer = await SignedPost(settings=loopback).post(receiver.url("/odd"), SECRETS, "msg_1", PAYLOAD)
    assert (answer.status, answer.snippet) == (200, "recebido ✓")


async def test_a_receiver_whose_certificate_nobody_vouches_for_is_not_posted_to(loopback, tmp_path):
    """The shared TLS context verifies: a self-signed certificate fails the connect, a failure to retry whose
    reason says why, and the receiver reads nothing."""
    cert, key = self_signed(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    heard: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heard.append(await reader.read(1024))
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
            await SignedPost(settings=loopback, total_timeout=5.0).post(
                f"https://127.0.0.1:{port}/hook", SECRETS, "msg_1", PAYLOAD)
    finally:
        server.close()
        await server.wait_closed()
    assert heard in ([], [b""])
    reason = _transport_reason(refused.value)
    assert reason.startswith(f"cannot connect to 127.0.0.1:{port}: ") and "certificate verify failed" in reason


async def test_a_worker_shutdown_closes_the_clients_kept_on_its_loop(receiver, loopback):
    """The lanes' kept-alive clients live on the worker's event loop between jobs; stopping the worker closes
    them on that loop before it stops (left to the collector, each logged "Unclosed client session")."""
    worker = dramatiq.Worker(build_broker(loopback), worker_threads=1, worker_timeout=50)
    worker.start()
    poster = SignedPost(settings=loopback, total_timeout=30.0)

    async def post_and_keep() -> tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop]:
        async with poster.client(keep=("tenant", port.origin(receiver.url("/")))) as client:
            await poster.post(receiver.url("/kept"), SECRETS, "msg_1", PAYLOAD, client=client)
        return client, asyncio.get_running_loop()

    try:
        client, loop = await asyncio.to_thread(get_event_loop_thread().run_coroutine, post_and_keep())
        assert not client.closed and loop in port._kept
    finally:
        await asyncio.to_thread(worker.stop)
    assert client.closed and loop not in port._kept
    assert [r.webhook_id for r in receiver.at("/kept")] == ["msg_1"]
