"""Delivering webhooks over real loopback HTTP to a local receiver that verifies every signature: fan-out
by event-type filter, the retry schedule under a frozen clock, Retry-After, 410, sustained failure,
dead letters, replay by delivery and by time window, timeouts, and tenants kept apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.session import NotFound
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.worker.broker import run_batch
from backoffice.platform.worker.jobs import REGISTRY, BatchItem
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.effects.service import DELIVER_JOB
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.webhooks import jobs, service
from backoffice.tenants.webhooks.jobs import DEAD_LIMIT, MAX_ATTEMPTS, SCHEDULE
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.port import WebhookPort
from backoffice.tenants.webhooks.queries import endpoint_deliveries_query
from tests.tenants.webhooks.conftest import ACTOR
from tests.providers.webhook_receiver import Reply, run_due

pytestmark = pytest.mark.usefixtures("frozen", "webhook_port")


async def endpoint(database, tenant_id, receiver, path, settings, *, event_types=None) -> WebhookEndpoint:
    async with database.tenant(tenant_id) as session:
        created, secret = await service.create_endpoint(session, url=receiver.url(path), event_types=event_types,
                                                        acting=ACTOR, settings=settings)
    receiver.secrets[path] = [secret]
    return created


async def event_message(database, tenant_id, event_type: str, key: str) -> OutboundMessage:
    """What the process engine writes for every processed event: one webhook message and its outbox row."""
    async with database.tenant(tenant_id) as session:
        message = OutboundMessage(effect_key=key, channel=Channel.WEBHOOK, target=event_type, payload={
            "type": event_type, "event_id": key, "occurred_at": "2026-11-02T15:00:00+00:00",
            "customer": {"name": "Casa do Pão"}, "data": {"charge": {"amount_cents": 19990}}})
        session.add(message)
        await session.flush()
        add_to_outbox(session, tenant_id, DELIVER_JOB, message_id=str(message.id))
    return message


async def reload(database, tenant_id, model, ident):
    async with database.tenant(tenant_id) as session:
        return await session.get(model, (tenant_id, ident))


async def test_one_message_fans_out_to_the_subscribed_enabled_endpoints_of_its_tenant(
        database, tenants, receiver, loopback):
    a, b = tenants.a, tenants.b
    everything = await endpoint(database, a.id, receiver, "/all", loopback)
    payments = await endpoint(database, a.id, receiver, "/payments", loopback, event_types=["payment.cleared"])
    await endpoint(database, a.id, receiver, "/invoices", loopback, event_types=["invoice.issued"])
    off = await endpoint(database, a.id, receiver, "/off", loopback)
    async with database.tenant(a.id) as session:
        await service.disable_endpoint(session, off.id, reason="paused", acting=ACTOR)
    await endpoint(database, b.id, receiver, "/beta", loopback)

    message = await event_message(database, a.id, "payment.cleared", "evt-1:webhook")
    await run_due(database)

    assert sorted(r.path for r in receiver.received) == ["/all", "/payments"]
    for received in receiver.received:
        assert received.verified, received.problem
        assert received.webhook_id == "evt-1:webhook"
        assert received.json["type"] == "payment.cleared" and received.json["data"]["charge"]["amount_cents"] == 19990
    sent = await reload(database, a.id, OutboundMessage, message.id)
    assert sent.status == DeliveryStatus.SENT
    assert sorted(sent.response["endpoints"]) == sorted([str(everything.id), str(payments.id)])
    async with database.tenant(a.id) as session:
        log = (await session.execute(endpoint_deliveries_query(payments.id))).scalars().all()
    assert [(d.status, d.attempts, d.last_status_code) for d in log] == [(WebhookDeliveryStatus.SUCCEEDED, 1, 200)]

    # Tenant B's event reaches B's endpoint only, never A's.
    await event_message(database, b.id, "invoice.issued", "evt-2:webhook")
    await run_due(database)
    assert [r.path for r in receiver.received if r.webhook_id == "evt-2:webhook"] == ["/beta"]
    async with database.tenant(b.id) as session:
        assert (await session.execute(select(WebhookDelivery))).scalars().one().event_type == "invoice.issued"


async def test_a_failure_then_success_resets_the_endpoints_streak(database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/flaky", loopback)
    receiver.script("/flaky", Reply(500, "boom"))
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    failed = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert (failed.status, failed.last_status_code, failed.response_snippet) == (WebhookDeliveryStatus.FAILED, 500,
                                                                                   "boom")
    assert (await reload(database, tenants.a.id, WebhookEndpoint, hook.id)).consecutive_failures == 1
    frozen.set(failed.next_attempt_at)
    await run_due(database)
    done = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert (done.status, done.attempts, done.delivered_at) == (WebhookDeliveryStatus.SUCCEEDED, 2, frozen.now())
    streak = await reload(database, tenants.a.id, WebhookEndpoint, hook.id)
    assert (streak.consecutive_failures, streak.first_failure_at) == (0, None)
    assert all(r.verified for r in receiver.at("/flaky")) and len(receiver.at("/flaky")) == 2


async def test_retries_follow_the_schedule_then_the_delivery_is_dead_and_can_be_replayed(
        database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/down", loopback)
    receiver.always["/down"] = Reply(503, "maintenance")
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
        gap = (row.next_attempt_at - frozen.now()).total_seconds()
        assert SCHEDULE[attempt - 1] * 0.9 <= gap <= SCHEDULE[attempt - 1] * 1.1, (attempt, gap)
        frozen.set(row.next_attempt_at - timedelta(seconds=1))
        assert await run_due(database) == 0  # not before its time
        frozen.advance(seconds=1)
        assert await run_due(database) == 1
    dead = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert dead.status == WebhookDeliveryStatus.DEAD and dead.attempts == MAX_ATTEMPTS == 8
    assert dead.last_error == "gave up after 8 attempts; last: HTTP 503" and dead.next_attempt_at is None
    assert len(receiver.at("/down")) == 8
    frozen.advance(days=1)
    assert await run_due(database) == 0

    receiver.always["/down"] = Reply(200)
    async with database.tenant(tenants.a.id) as session:
        await service.replay_delivery(session, delivery.id, acting=ACTOR)
    await run_due(database)
    replayed = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert (replayed.status, replayed.attempts, replayed.replays) == (WebhookDeliveryStatus.SUCCEEDED, 1, 1)
    assert receiver.at("/down")[-1].webhook_id == delivery.message_id and receiver.at("/down")[-1].verified

    # By message: the same webhook-id again to every enabled endpoint that had it; another tenant's is unknown.
    async with database.tenant(tenants.a.id) as session:
        [again] = await service.replay_message(session, delivery.message_id, acting=ACTOR)
    await run_due(database)
    assert (await reload(database, tenants.a.id, WebhookDelivery, again.id)).replays == 2
    assert len(receiver.at("/down")) == 10
    async with database.tenant(tenants.b.id) as session:
        with pytest.raises(NotFound):
            await service.replay_message(session, delivery.message_id, acting=ACTOR)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_a_longer_retry_after_is_honoured(database, tenants, receiver, loopback, frozen, form):
    hook = await endpoint(database, tenants.a.id, receiver, "/busy", loopback)
    later = frozen.now() + timedelta(hours=1)
    value = "3600" if form == "seconds" else format_datetime(later.astimezone(UTC), usegmt=True)
    receiver.script("/busy", Reply(429, "slow down", {"Retry-After": value}))
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert row.status == WebhookDeliveryStatus.FAILED and row.next_attempt_at == later  # not 5 s
    frozen.advance(minutes=59)
    assert await run_due(database) == 0
    frozen.set(later)
    await run_due(database)
    assert (await reload(database, tenants.a.id, WebhookDelivery, delivery.id)).status == \
        WebhookDeliveryStatus.SUCCEEDED


async def test_410_gone_disables_the_endpoint_at_once_and_tells_the_admins(
        database, tenants, receiver, loopback):
    hook = await endpoint(database, tenants.a.id, receiver, "/gone", loopback)
    receiver.script("/gone", Reply(410, "no such hook"))
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    gone = await reload(database, tenants.a.id, WebhookEndpoint, hook.id)
    assert row.status == WebhookDeliveryStatus.DEAD and "410" in row.last_error
    assert not gone.enabled and "410" in gone.disabled_reason
    async with database.tenant(tenants.a.id) as session:
        [notice] = (await session.execute(select(Notification))).scalars().all()
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.disabled"))
                 ).scalars().one()
    assert notice.recipient_id == tenants.a.admin_id and notice.kind == "webhook.endpoint_disabled"
    assert notice.detail["endpoint_id"] == str(hook.id) and audit.actor_label == "system:webhooks"
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(Notification))).scalars().all() == []
    # A message for a disabled endpoint is not sent; replaying needs the endpoint enabled first.
    await event_message(database, tenants.a.id, "payment.cleared", "evt-3:webhook")
    await run_due(database)
    assert len(receiver.at("/gone")) == 1
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(Exception, match="disabled"):
            await service.replay_delivery(session, delivery.id, acting=ACTOR)


async def test_failing_for_five_days_disables_the_endpoint_with_a_notice(
        database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/sick", loopback)
    receiver.always["/sick"] = Reply(500)
    async with database.tenant(tenants.a.id) as session:
        await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    for _ in range(4):  # four days of failures: still enabled
        frozen.advance(days=1)
        async with database.tenant(tenants.a.id) as session:
            await service.send_test(session, hook.id, acting=ACTOR)
        await run_due(database)
    assert (await reload(database, tenants.a.id, WebhookEndpoint, hook.id)).enabled
    frozen.advance(days=1)
    async with database.tenant(tenants.a.id) as session:
        await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    sick = await reload(database, tenants.a.id, WebhookEndpoint, hook.id)
    assert not sick.enabled and "without a success since 2026-11-02T15:00:00" in sick.disabled_reason
    async with database.tenant(tenants.a.id) as session:
        [notice] = (await session.execute(select(Notification))).scalars().all()
        pending = (await session.execute(select(WebhookDelivery).where(
            WebhookDelivery.status == WebhookDeliveryStatus.FAILED))).scalars().all()
    assert notice.kind == "webhook.endpoint_disabled" and "without a success" in notice.body
    requests = len(receiver.at("/sick"))
    frozen.advance(days=2)
    await run_due(database)  # the retries still scheduled find the endpoint disabled: dead, not sent
    assert len(receiver.at("/sick")) == requests
    for delivery in pending:
        row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
        assert row.status == WebhookDeliveryStatus.DEAD and row.last_error.startswith("endpoint disabled")


async def test_replay_by_time_window_resends_only_that_windows_failures(
        database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/window", loopback)
    receiver.always["/window"] = Reply(502)
    made = []
    for hours in (0, 1, 3):
        frozen.set(datetime(2026, 11, 2, 15, tzinfo=UTC) + timedelta(hours=hours))
        async with database.tenant(tenants.a.id) as session:
            made.append(await service.send_test(session, hook.id, acting=ACTOR))
        await run_due(database)
    for _ in range(MAX_ATTEMPTS):
        frozen.advance(hours=11)
        await run_due(database)
    async with database.tenant(tenants.a.id) as session:
        dead = endpoint_deliveries_query(hook.id, status=WebhookDeliveryStatus.DEAD)
        assert len((await session.execute(dead)).scalars().all()) == 3
    receiver.always["/window"] = Reply(200)
    start = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
    async with database.tenant(tenants.a.id) as session:
        replayed = await service.replay_window(session, hook.id, since=start, until=start + timedelta(hours=3),
                                               acting=ACTOR)
    assert [d.id for d in replayed] == [made[1].id, made[2].id]
    await run_due(database)
    statuses = [(await reload(database, tenants.a.id, WebhookDelivery, d.id)).status for d in made]
    assert statuses == [WebhookDeliveryStatus.DEAD, WebhookDeliveryStatus.SUCCEEDED, WebhookDeliveryStatus.SUCCEEDED]


async def test_a_slow_receiver_times_out_and_is_retried(database, tenants, receiver, loopback, webhook_port):
    hook = await endpoint(database, tenants.a.id, receiver, "/slow", loopback)
    receiver.script("/slow", Reply(200, delay=webhook_port.total_timeout + 0.5))
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert (row.status, row.last_error, row.last_status_code) == (WebhookDeliveryStatus.FAILED, "timed out", None)


async def test_an_unreachable_receiver_is_retried_with_the_reason(database, tenants, receiver, loopback):
    hook = await endpoint(database, tenants.a.id, receiver, "/x", loopback)
    receiver.stop()  # nothing listens on the port any more
    async with database.tenant(tenants.a.id) as session:
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert row.status == WebhookDeliveryStatus.FAILED and "cannot connect to 127.0.0.1:" in row.last_error


async def test_many_dead_deliveries_in_a_row_disable_the_endpoint(database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/dead", loopback)
    async with database.tenant(tenants.a.id) as session:
        row = await session.get(WebhookEndpoint, (tenants.a.id, hook.id))
        row.consecutive_dead = DEAD_LIMIT - 1  # as after a long series of dead deliveries
        row.first_failure_at = frozen.now() - timedelta(days=1)
    receiver.always["/dead"] = Reply(500)
    async with database.tenant(tenants.a.id) as session:
        await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    for _ in range(MAX_ATTEMPTS):
        frozen.advance(hours=11)
        await run_due(database)
        if not (await reload(database, tenants.a.id, WebhookEndpoint, hook.id)).enabled:
            break
    disabled = await reload(database, tenants.a.id, WebhookEndpoint, hook.id)
    assert not disabled.enabled and f"{DEAD_LIMIT} deliveries in a row" in disabled.disabled_reason


async def test_a_secret_no_live_key_can_read_is_dead_with_the_reason(database, tenants, receiver, loopback, frozen):
    hook = await endpoint(database, tenants.a.id, receiver, "/lost", loopback)
    async with database.tenant(tenants.a.id) as session:
        row = await session.get(WebhookEndpoint, (tenants.a.id, hook.id))
        row.secrets = [{**row.secrets[0], "secret": "gAAAAA-written-with-a-removed-key"}]
        delivery = await service.send_test(session, hook.id, acting=ACTOR)
    await run_due(database)
    dead = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
    assert dead.status == WebhookDeliveryStatus.DEAD and "rotate the secret" in dead.last_error
    assert receiver.received == []


async def test_a_webhook_sent_again_after_a_crash_before_the_commit_has_the_same_webhook_id(
        database, tenants, receiver, loopback, monkeypatch):
    """The receiver took the webhook; the worker died before our commit recorded it (issue 18, finding 3).
    The next attempt sends it again with the same webhook-id, which the receiver drops."""
    a = tenants.a
    await endpoint(database, a.id, receiver, "/all", loopback)
    await event_message(database, a.id, "payment.cleared", "evt-crash:webhook")
    record, crashed = jobs._record, []

    async def crash_once(session, delivery, endpoint, answer):
        if not crashed:
            crashed.append(delivery.message_id)
            raise ConnectionResetError("worker lost its database connection before the commit")
        return await record(session, delivery, endpoint, answer)

    monkeypatch.setattr(jobs, "_record", crash_once)
    with pytest.raises(ConnectionResetError):
        await run_due(database)
    await run_due(database)

    first, again = receiver.at("/all")
    assert first.verified and again.verified
    assert first.webhook_id == again.webhook_id == "evt-crash:webhook" == crashed[0]
    async with database.tenant(a.id) as session:
        [delivery] = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED and delivery.message_id == "evt-crash:webhook"


async def test_a_batch_to_one_endpoint_reuses_its_connections_and_delivers_each_once(
        database, tenants, receiver, loopback):
    """A delivery batch posts each endpoint's deliveries over kept-alive connections (at most
    ``CONCURRENCY`` of them, each reused by its lane) instead of a connection per post: every delivery
    still goes out once, signed, and is recorded on its own."""
    # The fixture's half-second timeout is for the timeout tests; on a busy machine twenty posts to a
    # threaded test server can take longer, and a timed-out post would not be what this test is about.
    previous = set_port(Channel.WEBHOOK, WebhookPort(settings=loopback, total_timeout=30.0))
    hook = await endpoint(database, tenants.a.id, receiver, "/batch", loopback)
    async with database.tenant(tenants.a.id) as session:
        deliveries = [await service.send_test(session, hook.id, acting=ACTOR) for _ in range(jobs.BATCH)]
    async with database.system() as session:
        rows = (await session.execute(select(OutboxEntry).where(
            OutboxEntry.job == service.DELIVER_JOB, OutboxEntry.completed_at.is_(None)))).scalars().all()
    assert len(rows) == jobs.BATCH
    try:
        async with database.provider(tenants.a.id) as session:  # one job, the whole batch, as the relay hands it
            await run_batch(session, REGISTRY[service.DELIVER_JOB], tenants.a.id,
                            [BatchItem(row.payload, row.id, 1) for row in rows])
    finally:
        set_port(Channel.WEBHOOK, previous)

    got = receiver.at("/batch")
    assert len(got) == jobs.BATCH and all(r.verified for r in got)
    assert {r.webhook_id for r in got} == {d.message_id for d in deliveries}
    assert len({r.peer for r in got}) <= jobs.CONCURRENCY  # 20 posts over (at most) 10 connections
    for delivery in deliveries:
        row = await reload(database, tenants.a.id, WebhookDelivery, delivery.id)
        assert (row.status, row.attempts, row.last_status_code) == (WebhookDeliveryStatus.SUCCEEDED, 1, 200)


async def _one_batch(database, tenant_id, hook, count: int) -> list:
    """``count`` test deliveries to ``hook``, run as one batch job as the relay hands it; their ids."""
    async with database.tenant(tenant_id) as session:
        deliveries = [await service.send_test(session, hook.id, acting=ACTOR) for _ in range(count)]
    async with database.system() as session:
        rows = (await session.execute(select(OutboxEntry).where(
            OutboxEntry.tenant_id == tenant_id, OutboxEntry.job == service.DELIVER_JOB,
            OutboxEntry.completed_at.is_(None)))).scalars().all()
    async with database.provider(tenant_id) as session:
        await run_batch(session, REGISTRY[service.DELIVER_JOB], tenant_id,
                        [BatchItem(row.payload, row.id, 1) for row in rows])
    async with database.system() as session:  # settled: the next batch of this tenant takes only its own
        for row in rows:
            (await session.get(OutboxEntry, (row.tenant_id, row.id))).completed_at = datetime.now(UTC)
    return [d.message_id for d in deliveries]


async def test_the_next_batch_of_a_tenant_posts_over_the_kept_connections_and_no_other_tenant_does(
        database, tenants, receiver, loopback):
    """A lane's connection outlives its job: the tenant's next batch to the same receiver reuses it (no new
    connect, outbound check or TLS handshake). Another tenant's batch to the very same origin never gets it."""
    previous = set_port(Channel.WEBHOOK, WebhookPort(settings=loopback, total_timeout=30.0))
    a, b = tenants.a.id, tenants.b.id
    hook_a = await endpoint(database, a, receiver, "/kept-a", loopback)
    hook_b = await endpoint(database, b, receiver, "/kept-b", loopback)
    try:
        first = await _one_batch(database, a, hook_a, 4)
        second = await _one_batch(database, a, hook_a, 4)
        theirs = await _one_batch(database, b, hook_b, 4)
    finally:
        set_port(Channel.WEBHOOK, previous)
    got = receiver.at("/kept-a")
    peers = {r.webhook_id: r.peer for r in got}
    assert sorted(peers) == sorted(first + second) and all(r.verified for r in got)
    first_peers, second_peers = {peers[i] for i in first}, {peers[i] for i in second}
    assert second_peers <= first_peers  # the same connections, not new ones
    their_peers = {r.peer for r in receiver.at("/kept-b")}
    assert len(their_peers) >= 1 and not their_peers & (first_peers | second_peers)
    assert len({r.webhook_id for r in receiver.at("/kept-b")}) == len(theirs)


async def test_kept_clients_are_closed_when_idle_and_never_lent_under_other_settings(
        database, tenants, receiver, loopback, monkeypatch):
    import asyncio

    from backoffice.tenants.webhooks import port

    poster = WebhookPort(settings=loopback, total_timeout=30.0)
    key = (tenants.a.id, "http://127.0.0.1:1")
    async with poster.client(keep=key) as first:
        pass
    async with poster.client(keep=key) as again:
        assert again is first  # lent again
    other = WebhookPort(settings=loopback.model_copy(), total_timeout=30.0)
    async with other.client(keep=key) as theirs:
        assert theirs is not first  # made under other settings: a client of its own
    async with poster.client(keep=(tenants.b.id, key[1])) as tenant_b:
        assert tenant_b is not first
    pool = port._kept[asyncio.get_running_loop()]
    assert [k.client for k in pool[key]] == [first, theirs]
    monkeypatch.setattr(port, "KEPT_SECONDS", 0.0)
    port._swept.pop(asyncio.get_running_loop(), None)
    async with poster.client(keep=(tenants.b.id, "http://127.0.0.1:2")):
        assert key not in pool and first.closed and theirs.closed  # swept: idle for too long
