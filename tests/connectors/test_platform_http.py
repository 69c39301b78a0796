"""The tenant's platform connector against a local server that plays the tenant's platform over real
loopback HTTP and verifies every Standard Webhooks signature with the instance's secret."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.connectors.platform_http import KIND, PlatformPort
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.security.standard_webhooks import new_secret
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import RecordingPort, set_port
from backoffice.tenants.effects.service import DELIVER_JOB
from tests.connectors.conftest import make_instance
from tests.providers.webhook_receiver import Receiver, Reply, run_due

HTTP = {"timeout": 0.5, "retries": 0, "threshold": 50}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def recording() -> RecordingPort:
    return RecordingPort(Channel.PLATFORM)


@pytest.fixture
def platform_port(database, recording) -> Iterator[PlatformPort]:
    settings = database.settings.model_copy(update={"allow_private_targets": True})
    port = PlatformPort(settings=settings, fallback=recording, http_options=HTTP)
    previous = set_port(Channel.PLATFORM, port)
    try:
        yield port
    finally:
        set_port(Channel.PLATFORM, previous)


async def platform(database, tenant_id, receiver: Receiver, path: str = "/platform") -> uuid.UUID:
    secret = new_secret()
    receiver.secrets[path] = [secret]
    return await make_instance(database, tenant_id, KIND, {"url": receiver.url(path), "secret": secret})


async def command(database, tenant_id, name: str = "block", key: str | None = None) -> uuid.UUID:
    """A command as the late-payment process writes it (``StepEffects.command``)."""
    async with database.tenant(tenant_id) as session:
        message = OutboundMessage(
            effect_key=key or f"{uuid.uuid4()}:{name}", channel=Channel.PLATFORM, target=name,
            payload={"command": name, "reason": "not paid by the grace deadline", "data": {"charge": "pay_2"},
                     "customer": {"id": "c-1", "external_ids": {"asaas": "cus_1"}, "tax_id": "52998224725"}})
        session.add(message)
        await session.flush()
        add_to_outbox(session, tenant_id, DELIVER_JOB, message_id=str(message.id))
        return message.id


async def message(database, tenant_id, message_id) -> OutboundMessage:
    async with database.tenant(tenant_id) as session:
        return await session.get(OutboundMessage, (tenant_id, message_id))


async def test_a_command_arrives_signed_and_its_acknowledgement_is_kept(database, tenants, receiver, platform_port):
    instance_id = await platform(database, tenants.a.id, receiver)
    receiver.script("/platform", Reply(202, '{"accepted":true,"ticket":"T-9"}'))
    sent_id = await command(database, tenants.a.id, "block", key="evt-9:block")
    await run_due(database)

    [request] = receiver.at("/platform")
    assert request.verified, request.problem
    assert request.webhook_id == "evt-9:block"
    body = request.json
    assert (body["id"], body["command"], body["reason"]) == ("evt-9:block", "block", "not paid by the grace deadline")
    assert body["customer"]["external_ids"] == {"asaas": "cus_1"} and body["data"] == {"charge": "pay_2"}
    sent = await message(database, tenants.a.id, sent_id)
    assert sent.status == DeliveryStatus.SENT and sent.attempts == 1
    assert sent.response["status"] == 202 and sent.response["body"] == '{"accepted":true,"ticket":"T-9"}'
    assert sent.response["webhook_id"] == "evt-9:block"
    async with database.tenant(tenants.a.id) as session:
        instance = await session.get(ConnectorInstance, (tenants.a.id, instance_id))
    assert instance.health == Health.OK


@pytest.mark.parametrize("status", [404, 422])
async def test_a_refusal_is_dead_at_once_with_the_platforms_answer(database, tenants, receiver, platform_port, status):
    await platform(database, tenants.a.id, receiver)
    receiver.script("/platform", Reply(status, '{"error":"unknown customer"}'))
    sent_id = await command(database, tenants.a.id, "unblock")
    await run_due(database)
    dead = await message(database, tenants.a.id, sent_id)
    assert dead.status == DeliveryStatus.DEAD and dead.attempts == 1
    assert str(status) in dead.last_error and "unknown customer" in dead.last_error
    async with database.tenant(tenants.a.id) as session:
        [instance] = (await session.execute(select(ConnectorInstance))).scalars().all()
    assert instance.health == Health.FAILING and str(status) in instance.last_error


@pytest.mark.parametrize("reply", [Reply(503, "down"), Reply(408), Reply(429), Reply(200, delay=HTTP["timeout"] + 0.4)],
                         ids=["503", "408", "429", "timeout"])
async def test_server_errors_throttling_and_timeouts_are_retried_until_acknowledged(
        database, tenants, receiver, platform_port, reply):
    await platform(database, tenants.a.id, receiver)
    receiver.script("/platform", reply)
    sent_id = await command(database, tenants.a.id, "provision")
    await run_due(database)
    failed = await message(database, tenants.a.id, sent_id)
    assert failed.status == DeliveryStatus.FAILED and failed.next_attempt_at is not None, failed.last_error

    from backoffice.platform import clock
    from backoffice.platform.clock import FrozenClock

    previous = clock.use(FrozenClock(failed.next_attempt_at))
    try:
        await run_due(database)
    finally:
        clock.use(previous)
    done = await message(database, tenants.a.id, sent_id)
    assert done.status == DeliveryStatus.SENT and done.attempts == 2 and done.response["status"] == 200, done.last_error
    requests = receiver.at("/platform")
    assert len({r.webhook_id for r in requests}) == 1 and all(r.verified for r in requests[-1:])


async def test_each_tenant_commands_only_its_own_platform(database, tenants, receiver, platform_port, recording,
                                                          backend):
    await platform(database, tenants.a.id, receiver, "/alfa")
    b_message = await command(database, tenants.b.id, "deprovision")
    await command(database, tenants.a.id, "block")
    await run_due(database)
    assert [r.json["command"] for r in receiver.at("/alfa")] == ["block"]
    assert receiver.at("/beta") == []
    sent = await message(database, tenants.b.id, b_message)
    if backend.name == "sqlite":  # embedded mode: no connector, the demo records what would be sent
        assert sent.status == DeliveryStatus.SENT and [r.target for r in recording.for_tenant(tenants.b.id)] == \
            ["deprovision"]
    else:
        assert sent.status == DeliveryStatus.DEAD and "no platform connector configured" in sent.last_error
    assert recording.for_tenant(tenants.a.id) == []


async def test_a_private_target_is_refused_at_send_time(database, tenants, receiver, platform_port):
    await platform(database, tenants.a.id, receiver)
    platform_port._settings = platform_port.settings.model_copy(update={"allow_private_targets": False})
    sent_id = await command(database, tenants.a.id, "block")
    await run_due(database)
    dead = await message(database, tenants.a.id, sent_id)
    assert dead.status == DeliveryStatus.DEAD and "not a public address" in dead.last_error
    assert receiver.received == []


async def test_the_config_needs_a_whsec_secret_and_an_http_url(database, tenants):
    with pytest.raises(ValidationFailed) as refused:
        await make_instance(database, tenants.a.id, KIND, {"url": "ftp://platform", "secret": "plain"})
    assert {e.field for e in refused.value.errors} == {"config.url", "config.secret"}
    assert "plain" not in str(refused.value)


@pytest.mark.postgres_only
async def test_health_bookkeeping_never_waits_for_another_batch_holding_the_connector_row(
        database, tenants, receiver, platform_port):
    """Concurrent delivery batches once deadlocked on the connector's health row and the loser, rolled back
    after its calls, sent them again. A batch now skips the bookkeeping when the row is held elsewhere."""
    import asyncio

    from sqlalchemy import text

    instance_id = await platform(database, tenants.a.id, receiver)
    receiver.script("/platform", Reply(200, "{}"))
    sent_id = await command(database, tenants.a.id, "provision", key="evt-held:provision")
    async with database.tenant(tenants.a.id) as holder:  # another batch's transaction holds the row
        await holder.execute(text("SELECT id FROM connector_instances WHERE id = :id FOR UPDATE"),
                             {"id": instance_id})
        await asyncio.wait_for(run_due(database), 30)  # finishes while the row is still held
        sent = await message(database, tenants.a.id, sent_id)
        assert sent.status == DeliveryStatus.SENT and sent.attempts == 1
    assert len(receiver.at("/platform")) == 1
