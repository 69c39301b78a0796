"""A send repeated after a crash between the send and our commit carries the same identity (issue 18,
finding 3): the receiver sees one message, or the same identity twice and drops the second.

The crash window is played for real: the delivery job sends (the local SMTP server or the tenant's
platform receives and acts), then its transaction is lost before the commit (the worker dies), so the
message is still pending and the next attempt sends it again.
"""

from __future__ import annotations

import uuid

import pytest

from backoffice.connectors.platform_http import KIND, PlatformPort
from backoffice.connectors.smtp import SmtpPort
from backoffice.platform.security.standard_webhooks import new_secret
from backoffice.tenants.effects.jobs import deliver, replay
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import RecordingPort, set_port
from tests.connectors.conftest import connector_settings, make_instance
from tests.connectors.test_ports import EMAIL, smtp_config, smtp_server  # noqa: F401  (fixture)
from tests.providers.webhook_receiver import Receiver, Reply


class WorkerDied(Exception):
    """The worker's process ends between the provider's answer and the commit."""


@pytest.fixture
def email_port(database):
    port = SmtpPort(settings=connector_settings(database), fallback=RecordingPort(Channel.EMAIL))
    previous = set_port(Channel.EMAIL, port)
    yield port
    set_port(Channel.EMAIL, previous)


@pytest.fixture
def receiver():
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def platform_port(database):
    settings = database.settings.model_copy(update={"allow_private_targets": True})
    port = PlatformPort(settings=settings, fallback=RecordingPort(Channel.PLATFORM),
                        http_options={"timeout": 0.5, "retries": 0, "threshold": 50})
    previous = set_port(Channel.PLATFORM, port)
    yield port
    set_port(Channel.PLATFORM, previous)


async def outbound(database, tenant_id, channel: Channel, key: str, payload: dict, target: str | None = None) -> uuid.UUID:
    async with database.tenant(tenant_id) as session:
        message = OutboundMessage(effect_key=key, channel=channel, target=target or payload.get("to"), payload=payload)
        session.add(message)
        await session.flush()
        return message.id


async def crash_after_sending(database, tenant_id, message_id: uuid.UUID) -> None:
    """The delivery job sends, then dies before its transaction commits: nothing it wrote is kept."""
    with pytest.raises(WorkerDied):
        async with database.provider(tenant_id) as session:
            await deliver(session, tenant_id=tenant_id, message_id=str(message_id))
            raise WorkerDied


async def deliver_now(database, tenant_id, message_id: uuid.UUID) -> OutboundMessage:
    async with database.provider(tenant_id) as session:
        await deliver(session, tenant_id=tenant_id, message_id=str(message_id))
    async with database.tenant(tenant_id) as session:
        return await session.get(OutboundMessage, (tenant_id, message_id))


async def test_an_email_sent_again_after_a_crash_has_the_same_message_id(database, tenants, email_port,
                                                                          smtp_server):  # noqa: F811
    inbox, port = smtp_server()
    for tenant in (tenants.a, tenants.b):
        await make_instance(database, tenant.id, "smtp", smtp_config(port))
    key = "evt-41:dunning.grace_notice:email"  # the same effect key in both tenants: two different e-mails
    a_id = await outbound(database, tenants.a.id, Channel.EMAIL, key, EMAIL)
    b_id = await outbound(database, tenants.b.id, Channel.EMAIL, key, EMAIL)

    await crash_after_sending(database, tenants.a.id, a_id)
    async with database.tenant(tenants.a.id) as session:
        assert (await session.get(OutboundMessage, (tenants.a.id, a_id))).status == DeliveryStatus.PENDING
    sent = await deliver_now(database, tenants.a.id, a_id)
    other = await deliver_now(database, tenants.b.id, b_id)

    assert sent.status == DeliveryStatus.SENT and other.status == DeliveryStatus.SENT, (sent.last_error, other.last_error)
    first, again, b_mail = (mail for _, mail in inbox.messages)
    # The customer's mail system sees one Message-ID twice and shows one message.
    assert first["Message-ID"] == again["Message-ID"] == sent.response["message_id"]
    assert first["Message-ID"].startswith("<") and first["Message-ID"].endswith("@aurora.example>")
    assert first["X-Backoffice-Effect"] == again["X-Backoffice-Effect"] == key
    # Another tenant's effect with the same key is another e-mail, with its own Message-ID.
    assert b_mail["Message-ID"] != first["Message-ID"]
    # And a replay from the console is the same e-mail again, not a new one.
    async with database.provider(tenants.a.id) as session:
        await replay(session, await session.get(OutboundMessage, (tenants.a.id, a_id)))
    replayed = await deliver_now(database, tenants.a.id, a_id)
    assert inbox.messages[-1][1]["Message-ID"] == first["Message-ID"] == replayed.response["message_id"]


async def test_a_platform_command_sent_again_after_a_crash_has_the_same_webhook_id(database, tenants, receiver,
                                                                                    platform_port):
    secret = new_secret()
    receiver.secrets["/platform"] = [secret]
    await make_instance(database, tenants.a.id, KIND, {"url": receiver.url("/platform"), "secret": secret})
    receiver.script("/platform", Reply(202, '{"accepted":true}'))
    payload = {"command": "block", "reason": "not paid by the grace deadline", "customer": {"id": "c-1"}, "data": {}}
    message_id = await outbound(database, tenants.a.id, Channel.PLATFORM, "evt-7:block", payload, target="block")

    await crash_after_sending(database, tenants.a.id, message_id)
    sent = await deliver_now(database, tenants.a.id, message_id)

    first, again = receiver.at("/platform")
    assert first.verified and again.verified
    assert first.webhook_id == again.webhook_id == "evt-7:block" == sent.response["webhook_id"]
    assert first.json["id"] == again.json["id"] == "evt-7:block"
