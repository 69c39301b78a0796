"""``webhooks.deliver``: one attempt of each delivery of a batch; the next attempt is an outbox row, not a
broker delay. The relay hands a tenant's deliveries over in batches; their posts go out concurrently (at
most ``CONCURRENCY`` at a time) and their answers are recorded one by one.

Schedule (delay before each attempt, ±10% jitter): 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. A longer
``Retry-After`` wins. 2xx succeeds; 410 Gone disables the endpoint at once; anything else (other codes,
network errors, timeouts) is retried until the schedule runs out, then the delivery is dead with its
reason. An endpoint failing without a single success for five days, or with ``DEAD_LIMIT`` dead
deliveries in a row, is disabled and the company's admins are told in the portal.

The composition root (``web/entry/wiring.py``) installs the real webhook port for ``Channel.WEBHOOK``
with :func:`install`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock, metrics
from backoffice.platform.db.session import get_owned, owned_by_ids
from backoffice.platform.security.outbound import TargetRefused
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.platform.worker.jobs import BatchItem, BatchOutcome, item_ids, tenant_job
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import RecordingPort, get_port, set_port
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.port import Answer, WebhookPort, current_transport, origin
from backoffice.tenants.webhooks.service import DELIVER_JOB, disable_for_failure, live_secrets, schedule

log = logging.getLogger(__name__)

SCHEDULE = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(SCHEDULE)
JITTER = 0.1
MAX_RETRY_AFTER = 24 * 3600
SUSTAINED_FAILURE = timedelta(days=5)
DEAD_LIMIT = 20


def delay_before(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (1-based), with jitter."""
    base = SCHEDULE[attempt - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


BATCH = 20  # deliveries of one tenant per job, posted concurrently
CONCURRENCY = 10  # at most this many posts of one job in flight


@tenant_job(DELIVER_JOB, queue="deliveries", batch=BATCH, min_backoff=1_000, max_backoff=300_000)
async def deliver_batch(session: AsyncSession, *, tenant_id: uuid.UUID, items: list[BatchItem]) -> BatchOutcome:
    ids = item_ids(items, "delivery_id", DELIVER_JOB)
    found = await owned_by_ids(session, WebhookDelivery, ids, job=DELIVER_JOB)
    endpoint_ids = {d.endpoint_id for d in found.values()}
    endpoints = await owned_by_ids(session, WebhookEndpoint, list(endpoint_ids), job=DELIVER_JOB)
    await _deliver_all(session, [found[i] for i in dict.fromkeys(ids) if i in found], endpoints)
    return BatchOutcome()


async def deliver(session: AsyncSession, *, tenant_id: uuid.UUID, delivery_id: str) -> str:
    """Deliver one webhook now (the batch job's work for one item)."""
    delivery = await get_owned(session, WebhookDelivery, uuid.UUID(delivery_id))
    endpoint = await get_owned(session, WebhookEndpoint, delivery.endpoint_id)
    await _deliver_all(session, [delivery], {endpoint.id: endpoint})
    return delivery.status.value


async def _deliver_all(session: AsyncSession, deliveries: list[WebhookDelivery],
                       endpoints: dict[uuid.UUID, WebhookEndpoint]) -> None:
    """Post every due delivery concurrently (each endpoint's over kept-alive connections, ``CONCURRENCY``
    posts at most in flight), then record each answer in order (an endpoint's failure counters and its
    disabling see the answers one by one, as if they had come one by one)."""
    transport = current_transport()
    limit = asyncio.Semaphore(CONCURRENCY)
    sends: list[tuple[WebhookDelivery, WebhookEndpoint, list[str]]] = []
    for delivery in deliveries:
        if delivery.status in (WebhookDeliveryStatus.SUCCEEDED, WebhookDeliveryStatus.DEAD):
            continue  # a repeated message changes nothing
        endpoint = endpoints[delivery.endpoint_id]
        if not endpoint.enabled:
            _dead(delivery, f"endpoint disabled: {endpoint.disabled_reason}")
            continue
        now = clock.now()
        delivery.attempts += 1
        delivery.last_attempt_at = now
        try:
            secrets = live_secrets(endpoint, now, transport.effective_settings)
        except SecretUnreadable:
            await _failed(session, delivery, endpoint, "signing secret unreadable (its key is gone): rotate the "
                          "secret", retryable=False)
            continue
        sends.append((delivery, endpoint, secrets))

    answers: list[Answer | BaseException | None] = [None] * len(sends)
    by_endpoint: dict[uuid.UUID, list[int]] = {}
    for index, (_, endpoint, _) in enumerate(sends):
        by_endpoint.setdefault(endpoint.id, []).append(index)

    async def lane(indexes: list[int]) -> None:
        # One kept-alive connection per lane, its posts one after another; a lane has at most
        # ceil(BATCH / CONCURRENCY) of them, so a receiver that times out holds a job no longer than before.
        # The connection outlives the lane: the tenant's next lane to the same origin posts over it.
        first = sends[indexes[0]][1]
        try:
            keep = (first.tenant_id, origin(first.url))
        except ValueError:
            keep = None  # its posts fail one by one, each recorded with its reason
        async with transport.client(keep=keep) as client:
            for index in indexes:
                delivery, endpoint, secrets = sends[index]
                async with limit:
                    try:
                        answers[index] = await transport.post(endpoint.url, secrets, delivery.message_id,
                                                              delivery.payload, client=client)
                    except Exception as error:  # recorded per delivery by _record, as gather(return_exceptions)
                        answers[index] = error

    lanes: list[list[int]] = []
    for indexes in by_endpoint.values():
        width = min(CONCURRENCY, len(indexes))
        lanes += [indexes[n::width] for n in range(width)]
    await asyncio.gather(*(lane(indexes) for indexes in lanes))
    for (delivery, endpoint, _), answer in zip(sends, answers, strict=True):
        assert answer is not None  # every lane answered for each of its indexes
        await _record(session, delivery, endpoint, answer)


def _transport_reason(error: BaseException) -> str:
    """What the console shows for a post that got no answer: said plainly, with the receiver's address."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error.strerror or str(error.os_error) or str(error)
        return f"cannot connect to {error.host}:{error.port}: {cause}"
    return f"{type(error).__name__}: {error}"


async def _record(session: AsyncSession, delivery: WebhookDelivery, endpoint: WebhookEndpoint,
                  answer: Answer | BaseException) -> None:
    if isinstance(answer, TargetRefused):
        delivery.last_status_code = None
        await _failed(session, delivery, endpoint, f"target refused: {answer}", retryable=False)
        return
    if isinstance(answer, (aiohttp.ClientError, TimeoutError, OSError)):
        delivery.last_status_code = None
        reason = _transport_reason(answer)
        await _failed(session, delivery, endpoint, reason, retryable=True)
        return
    if isinstance(answer, BaseException):  # not a transport failure: a bug, raised as before
        raise answer
    now = clock.now()
    delivery.last_status_code = answer.status
    delivery.response_snippet = answer.snippet[:1000] or None
    if 200 <= answer.status < 300:
        delivery.status = WebhookDeliveryStatus.SUCCEEDED
        metrics.DELIVERIES.labels("webhook", "sent").inc()
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = None
        endpoint.consecutive_failures = 0
        endpoint.consecutive_dead = 0
        endpoint.first_failure_at = None
    elif answer.status == 410:
        await _failed(session, delivery, endpoint, "410 Gone: the receiver asked to stop", retryable=False)
        await disable_for_failure(session, endpoint, "the receiver answered 410 Gone")
    else:
        await _failed(session, delivery, endpoint, f"HTTP {answer.status}", retryable=True,
                      retry_after=answer.retry_after)


async def _failed(session: AsyncSession, delivery: WebhookDelivery, endpoint: WebhookEndpoint, reason: str, *,
                  retryable: bool, retry_after: float | None = None) -> None:
    now = clock.now()
    delivery.last_error = reason[:2000]
    endpoint.consecutive_failures += 1
    endpoint.first_failure_at = endpoint.first_failure_at or now
    if retryable and delivery.attempts < MAX_ATTEMPTS:
        delay = delay_before(delivery.attempts + 1)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        delivery.status = WebhookDeliveryStatus.FAILED
        metrics.DELIVERIES.labels("webhook", "failed").inc()
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        await schedule(session, delivery, at=delivery.next_attempt_at)
    else:
        if retryable:
            reason = f"gave up after {delivery.attempts} attempts; last: {reason}"
        _dead(delivery, reason)
        endpoint.consecutive_dead += 1
    log.info("webhook delivery %s to endpoint %s failed (attempt %s): %s",
             delivery.id, endpoint.id, delivery.attempts, reason)
    if endpoint.enabled and now - endpoint.first_failure_at >= SUSTAINED_FAILURE:
        await disable_for_failure(session, endpoint, f"failing without a success since "
                                                     f"{endpoint.first_failure_at.isoformat()}")
    elif endpoint.enabled and endpoint.consecutive_dead >= DEAD_LIMIT:
        await disable_for_failure(session, endpoint, f"{endpoint.consecutive_dead} deliveries in a row gave up")


def _dead(delivery: WebhookDelivery, reason: str) -> None:
    delivery.status = WebhookDeliveryStatus.DEAD
    metrics.DELIVERIES.labels("webhook", "dead").inc()
    metrics.DEAD_LETTERS.labels("webhook").inc()
    delivery.next_attempt_at = None
    delivery.last_error = reason[:2000]


def install() -> None:
    """Put the real webhook port in place of the recording one (once per process)."""
    if isinstance(get_port(Channel.WEBHOOK), RecordingPort):
        set_port(Channel.WEBHOOK, WebhookPort())
