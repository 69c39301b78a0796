"""Webhook endpoints as audited actions: validation naming the field, secrets shown once and encrypted,
rotation with overlap, SSRF refusal, and another tenant's endpoints and deliveries answering 404."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.platform.security.standard_webhooks import SignatureError, verify
from backoffice.tenants.webhooks import service
from backoffice.tenants.webhooks.jobs import deliver
from backoffice.tenants.webhooks.models import WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.queries import endpoint_deliveries_query
from tests.tenants.webhooks.conftest import ACTOR
from tests.providers.webhook_receiver import run_due


async def test_create_shows_the_secret_once_and_keeps_it_encrypted(database, tenants, loopback, frozen):
    async with database.tenant(tenants.a.id) as session:
        endpoint, secret = await service.create_endpoint(
            session, url="https://hooks.alfa.example/in", event_types=["payment.cleared", "payment.cleared"],
            description=" ERP ", acting=ACTOR, settings=loopback)
    assert secret.startswith("whsec_")
    async with database.tenant(tenants.a.id) as session:
        stored = await service.get_endpoint(session, endpoint.id)
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.created")
                                       )).scalars().all()
        assert service.live_secrets(stored, settings=loopback) == [secret]
    assert stored.event_types == ["payment.cleared"] and stored.description == "ERP" and stored.enabled
    assert secret not in str(stored.secrets)  # encrypted at rest
    assert len(audit) == 1 and audit[0].actor_label == ACTOR.label and secret not in str(audit[0].detail)


async def test_invalid_input_names_every_field(database, tenants, loopback):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await service.create_endpoint(session, url="ftp://x", event_types=["payment.paid"],
                                          description="d" * 501, acting=ACTOR, settings=loopback)
    assert {e.field for e in refused.value.errors} == {"url", "event_types", "description"}
    assert "payment.paid" in str(refused.value)


async def test_private_and_plain_http_targets_are_refused_without_the_setting(database, tenants):
    strict = database.settings.model_copy(update={"allow_private_targets": False})
    async with database.tenant(tenants.a.id) as session:
        for url, message in [("https://127.0.0.1/hook", "not a public address"),
                             ("https://10.1.2.3/hook", "not a public address"),
                             ("https://[::1]/hook", "not a public address"),
                             ("http://8.8.8.8/hook", "https")]:
            with pytest.raises(ValidationFailed) as refused:
                await service.create_endpoint(session, url=url, acting=ACTOR, settings=strict)
            [error] = refused.value.errors
            assert error.field == "url" and message in error.message, url


async def test_a_private_target_is_refused_again_at_send_time(database, tenants, loopback, receiver, frozen):
    """Saved while allowed (or DNS pointed elsewhere then); the send-time check still refuses it."""
    from backoffice.tenants.effects.models import Channel
    from backoffice.tenants.effects.ports import set_port
    from backoffice.tenants.webhooks.port import WebhookPort

    async with database.tenant(tenants.a.id) as session:
        endpoint, _ = await service.create_endpoint(session, url=receiver.url("/a"), acting=ACTOR, settings=loopback)
        delivery = await service.send_test(session, endpoint.id, acting=ACTOR)
    previous = set_port(Channel.WEBHOOK, WebhookPort(settings=loopback.model_copy(
        update={"allow_private_targets": False})))
    try:
        await run_due(database)
    finally:
        set_port(Channel.WEBHOOK, previous)
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.get_delivery(session, delivery.id)
    assert delivery.status == WebhookDeliveryStatus.DEAD and "target refused" in delivery.last_error
    assert receiver.received == []


async def test_update_disable_enable_are_audited(database, tenants, loopback):
    async with database.tenant(tenants.a.id) as session:
        endpoint, _ = await service.create_endpoint(session, url="https://a.example/h", acting=ACTOR,
                                                    settings=loopback)
        await service.update_endpoint(session, endpoint.id, event_types=["invoice.issued"], acting=ACTOR,
                                      settings=loopback)
        with pytest.raises(ValidationFailed) as refused:
            await service.disable_endpoint(session, endpoint.id, reason=" ", acting=ACTOR)
        assert refused.value.errors[0].field == "reason"
        await service.disable_endpoint(session, endpoint.id, reason="receiver migrating", acting=ACTOR)
        assert not endpoint.enabled and endpoint.disabled_reason == "receiver migrating"
        await service.enable_endpoint(session, endpoint.id, acting=ACTOR)
        actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.occurred_at))).scalars().all()
    assert endpoint.enabled and endpoint.event_types == ["invoice.issued"]
    assert [a for a in actions if a.startswith("webhook_endpoint.")] == [
        "webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.disabled",
        "webhook_endpoint.enabled"]


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
        database, tenants, loopback, receiver, frozen, webhook_port):
    async with database.tenant(tenants.a.id) as session:
        endpoint, old = await service.create_endpoint(session, url=receiver.url("/rot"), acting=ACTOR,
                                                      settings=loopback)
        new = await service.rotate_secret(session, endpoint.id, overlap_hours=24, acting=ACTOR, settings=loopback)
        await service.send_test(session, endpoint.id, acting=ACTOR)
    await run_due(database)
    frozen.advance(hours=25)
    async with database.tenant(tenants.a.id) as session:
        await service.send_test(session, endpoint.id, acting=ACTOR)
    await run_due(database)

    during, after = receiver.at("/rot")
    now = int(frozen.now().timestamp())
    verify([old], during.headers, during.body, now=now - 25 * 3600)
    verify([new], during.headers, during.body, now=now - 25 * 3600)
    assert len(during.headers["webhook-signature"].split()) == 2
    verify([new], after.headers, after.body, now=now)
    with pytest.raises(SignatureError):
        verify([old], after.headers, after.body, now=now)
    assert new != old


async def test_another_tenants_endpoints_and_deliveries_are_not_found(database, tenants, loopback, frozen):
    async with database.tenant(tenants.b.id) as session:
        theirs, _ = await service.create_endpoint(session, url="https://b.example/h", acting=ACTOR, settings=loopback)
        their_delivery = await service.send_test(session, theirs.id, acting=ACTOR)
    async with database.tenant(tenants.a.id) as session:
        assert await service.list_endpoints(session) == []
        for call in (
            lambda: service.get_endpoint(session, theirs.id),
            lambda: service.get_delivery(session, their_delivery.id),
            lambda: service.replay_delivery(session, their_delivery.id, acting=ACTOR),
            lambda: service.replay_window(session, theirs.id, since=frozen.now() - timedelta(days=1),
                                          until=frozen.now() + timedelta(days=1), acting=ACTOR),
            lambda: service.rotate_secret(session, theirs.id, acting=ACTOR, settings=loopback),
            lambda: service.send_test(session, theirs.id, acting=ACTOR),
            lambda: service.disable_endpoint(session, theirs.id, reason="x", acting=ACTOR),
            lambda: service.update_endpoint(session, theirs.id, description="mine", acting=ACTOR,
                                            settings=loopback),
            lambda: deliver(session, tenant_id=tenants.a.id, delivery_id=str(their_delivery.id)),
        ):
            with pytest.raises(NotFound):
                await call()
        with pytest.raises(NotFound):
            await service.get_endpoint(session, uuid.uuid4())  # a missing id answers the same
        assert (await session.execute(endpoint_deliveries_query(theirs.id))).scalars().all() == []
    async with database.tenant(tenants.b.id) as session:
        still = await session.get(WebhookEndpoint, (tenants.b.id, theirs.id))
        delivery = await service.get_delivery(session, their_delivery.id)
    assert still.enabled and still.description == "" and delivery.attempts == 0 and delivery.replays == 0


async def test_descriptions_never_carry_a_secret(database, tenants, loopback, frozen):
    async with database.tenant(tenants.a.id) as session:
        endpoint, first = await service.create_endpoint(session, url="https://a.example/h", acting=ACTOR,
                                                        settings=loopback)
        second = await service.rotate_secret(session, endpoint.id, overlap_hours=1, acting=ACTOR, settings=loopback)
        delivery = await service.send_test(session, endpoint.id, acting=ACTOR)
        shown = service.describe_endpoint(endpoint)
        logged = service.describe_delivery(delivery)
    text = str(shown) + str(logged) + str([e["secret"] for e in endpoint.secrets])
    assert first not in text and second not in text and "whsec_" not in text
    assert [s["expires_at"] is None for s in shown["secrets"]] == [False, True]
    assert logged["status"] == "pending" and logged["event_type"] == "webhook.test"
    frozen.advance(hours=2)
    assert len(service.describe_endpoint(endpoint)["secrets"]) == 1
