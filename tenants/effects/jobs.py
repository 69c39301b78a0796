"""Delivering outbound messages: retried with backoff and jitter, dead-lettered with the reason.

``effects.deliver`` is a batch job: the relay hands it up to ``BATCH`` of a tenant's messages at once; they
are read in one statement and their outcomes written in one flush, each message sent on its own (a
failure of one is that message's retry, never its neighbours')."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock, metrics
from backoffice.platform.db.session import get_owned, owned_by_ids
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.worker.jobs import BatchItem, BatchOutcome, item_ids, tenant_job
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError, get_port, send_many
from backoffice.tenants.effects.service import DELIVER_JOB
from backoffice.tenants.registry.models import Tenant

log = logging.getLogger(__name__)

# Seconds before attempt n+1 (then ±20% jitter): quick retries for blips, hours for outages.
BACKOFF = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
MAX_ATTEMPTS = len(BACKOFF) + 1


def next_delay(attempts: int) -> float:
    base = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)]
    return base * random.uniform(0.8, 1.2)


BATCH = 20  # a channel's messages in a batch are sent concurrently; a slow receiver holds back at most these


@tenant_job(DELIVER_JOB, queue="deliveries", batch=BATCH, min_backoff=1_000, max_backoff=300_000)
async def deliver_batch(session: AsyncSession, *, tenant_id: uuid.UUID, items: list[BatchItem]) -> BatchOutcome:
    ids = item_ids(items, "message_id", DELIVER_JOB)
    found = await owned_by_ids(session, OutboundMessage, ids, job=DELIVER_JOB)
    tenant = await session.get(Tenant, tenant_id)
    await _deliver_all(session, tenant, [found[i] for i in dict.fromkeys(ids) if i in found])
    return BatchOutcome()


async def deliver(session: AsyncSession, *, tenant_id: uuid.UUID, message_id: str) -> str:
    """Deliver one message now (the batch job's work for one item)."""
    message = await get_owned(session, OutboundMessage, uuid.UUID(message_id))
    await _deliver_all(session, await session.get(Tenant, tenant_id), [message])
    return message.status.value


async def _deliver_all(session: AsyncSession, tenant: Tenant, messages: list[OutboundMessage]) -> None:
    # A repeat of a finished delivery changes nothing.
    due = [m for m in messages if m.status not in (DeliveryStatus.SENT, DeliveryStatus.DEAD)]
    by_channel: dict[Channel, list[OutboundMessage]] = {}
    for message in due:
        by_channel.setdefault(message.channel, []).append(message)
    for channel, group in by_channel.items():
        for message in group:
            message.attempts += 1
        # The receiver may see a repeat if this transaction fails after sending: the effect key travels
        # with the message (webhook-id, Idempotency-Key) so receivers can drop it.
        outcomes = await send_many(get_port(channel), session, tenant, group)
        now = clock.now()
        for message, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, DeliveryError):
                _failed(session, message, str(outcome), retryable=outcome.retryable)
            elif isinstance(outcome, BaseException):  # any transport failure is recorded and retried
                log.warning("delivery %s failed: %s", message.effect_key, outcome, exc_info=outcome)
                _failed(session, message, f"{type(outcome).__name__}: {outcome}", retryable=True)
            else:
                message.status = DeliveryStatus.SENT
                metrics.DELIVERIES.labels(channel.value, "sent").inc()
                message.sent_at = now
                message.response = outcome
                message.last_error = None
                message.next_attempt_at = None


def _failed(session: AsyncSession, message: OutboundMessage, reason: str, *, retryable: bool) -> None:
    message.last_error = reason[:2000]
    if not retryable or message.attempts >= MAX_ATTEMPTS:
        message.status = DeliveryStatus.DEAD
        metrics.DELIVERIES.labels(message.channel.value, "dead").inc()
        metrics.DEAD_LETTERS.labels("message").inc()
        message.next_attempt_at = None
        return
    message.status = DeliveryStatus.FAILED
    metrics.DELIVERIES.labels(message.channel.value, "failed").inc()
    message.next_attempt_at = clock.now() + timedelta(seconds=next_delay(message.attempts))
    entry = add_to_outbox(session, message.tenant_id, DELIVER_JOB, message_id=str(message.id))
    entry.available_at = message.next_attempt_at


async def replay(session: AsyncSession, message: OutboundMessage) -> None:
    """Send a dead (or failed) message again from the console: attempts start over."""
    message.status = DeliveryStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = None
    add_to_outbox(session, message.tenant_id, DELIVER_JOB, message_id=str(message.id))
