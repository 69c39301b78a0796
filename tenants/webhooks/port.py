"""The webhook channel's port, and the signed HTTP POST it shares with the tenant-platform connector.

A process step fans a processed event out itself (``WebhookPort.fan_out``): one ``WebhookDelivery`` per
enabled endpoint subscribed to its type, each with its outbox row for ``webhooks.deliver``, written with
the step's other rows, the outbound message recorded as handed over (a delivery job less per event).
``WebhookPort.send`` does the same for a message that reaches the port through ``effects.deliver``, in
that job's transaction: either every endpoint gets its delivery or none does. Endpoints then retry and
fail independently of each other.

The installed port also carries the transport settings (SSRF policy, timeouts) that ``webhooks.deliver``
uses, so a test or the embedded runtime configures both with one ``set_port``.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.security.outbound import check_url_shape, checked_connector
from backoffice.platform.security.standard_webhooks import sign
from backoffice.platform.settings import Settings, get_settings
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.ports import get_port, send_one
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.effects.service import EffectRows, outbox_row
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from backoffice.tenants.webhooks.service import DELIVER_JOB, new_delivery, schedule

SNIPPET = 500
# What is read of an answer's body: the snippet's characters in any UTF-8 (a receiver that streams more is
# not read further; its connection is closed instead of kept).
SNIPPET_BYTES = 4 * SNIPPET
# Kept-alive connections are not reused after this many idle seconds (receivers close theirs after a while).
KEEPALIVE_SECONDS = 5.0
USER_AGENT = "backoffice-webhooks/1"
# A lane's client goes back to its event loop's pool when the lane ends, for the next lane of the same tenant
# to the same origin: under a backlog every delivery job of a tenant posts to the same receivers, and a
# connection (an outbound check, and over HTTPS a TLS handshake) per two posts was most of a post's cost. An
# idle client is closed after KEPT_SECONDS; its connection is not reused after KEEPALIVE_SECONDS.
KEPT_SECONDS = 30.0
KEPT_PER_KEY = 10  # as many as a batch's lanes to one endpoint (jobs.CONCURRENCY)


@dataclass
class _Kept:
    client: aiohttp.ClientSession
    settings: Settings
    idle_since: float


# Per event loop (a client belongs to the loop it was opened on), then per (tenant, origin): a client opened
# for one tenant is never lent to another, whatever the address.
_kept: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, list[_Kept]]] = weakref.WeakKeyDictionary()
_swept: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float] = weakref.WeakKeyDictionary()


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL; ValueError for one with no host or a port that is not one."""
    parsed = urlsplit(url)
    if not parsed.hostname:
        raise ValueError(f"no host in {url!r}")
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


@dataclass(frozen=True)
class Answer:
    status: int
    snippet: str
    retry_after: float | None  # seconds, from a Retry-After header (seconds or HTTP date)


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


@dataclass
class SignedPost:
    """POST a JSON body signed per Standard Webhooks; the target's address is checked at connect time.

    Raises ``TargetRefused`` for a refused target and aiohttp/timeout errors for transport failures; any
    HTTP answer (2xx or not) is returned for the caller to judge.

    The client is aiohttp's, not httpx's as elsewhere: a worker under a backlog posts a webhook per event,
    and httpx spent 0.78 ms of CPU on each post over a kept-alive connection against aiohttp's 0.28 ms
    (tests/perf/bench_webhook_lanes.py, figures in tests/perf/README.md). The outbound check is the same one
    (``checked_connector``)."""

    settings: Settings | None = None
    connect_timeout: float = 5.0
    total_timeout: float = 15.0

    @property
    def effective_settings(self) -> Settings:
        return self.settings or get_settings()

    def _new_client(self) -> aiohttp.ClientSession:
        # No redirects (per post, below): a 3xx to an internal address would walk around the SSRF check. The
        # connector resolves the host, checks the address and connects to that address (no DNS rebinding in
        # between). No cookies kept between posts, nothing from the environment (a proxy would make the check
        # judge the proxy), no decompression of what the receiver answers. The connect timeout spans the name's
        # resolution and check, the TCP connect and the TLS handshake; the total, the whole post.
        return aiohttp.ClientSession(
            connector=checked_connector(self.effective_settings, limit=1, keepalive_seconds=KEEPALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=self.total_timeout, connect=self.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False)

    @asynccontextmanager
    async def client(self, keep: tuple[Any, str] | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        """One kept-alive connection to one receiver, for posts made one after another (a lane of a
        delivery batch): the connect, the outbound check and, over HTTPS, the TLS handshake happen once.

        With ``keep`` (the tenant and the receiver's :func:`origin`), the client is lent from this event
        loop's pool and given back when the lane ends, so the next lane of that tenant to that origin posts
        over the same connection; a client made under other transport settings (a test's, a changed
        policy) is never lent.
        """
        if keep is None:
            async with self._new_client() as client:
                yield client
            return
        settings = self.effective_settings
        loop = asyncio.get_running_loop()
        pool = _kept.setdefault(loop, {})
        await _sweep(loop, pool)
        idle = pool.setdefault(keep, [])
        lent = next((kept for kept in reversed(idle) if kept.settings is settings), None)
        if lent is not None:
            idle.remove(lent)
        client = lent.client if lent is not None else self._new_client()
        try:
            yield client
        except BaseException:
            await client.close()
            raise
        idle = pool.setdefault(keep, [])  # a sweep meanwhile may have dropped the key's emptied list
        if len(idle) < KEPT_PER_KEY and not client.closed:
            idle.append(_Kept(client, settings, time.monotonic()))
        else:
            await client.close()

    async def post(self, url: str, secrets: list[str], message_id: str, payload: dict[str, Any], *,
                   client: aiohttp.ClientSession | None = None) -> Answer:
        """Post once; through ``client`` when given (it must have come from :meth:`client`)."""
        if client is None:
            async with self.client() as own:
                return await self.post(url, secrets, message_id, payload, client=own)
        check_url_shape(url)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        now = clock.now()
        headers = {**sign(secrets, message_id, body, timestamp=int(now.timestamp())),
                   "content-type": "application/json", "user-agent": USER_AGENT}
        async with asyncio.timeout(self.total_timeout):
            async with client.post(url, data=body, headers=headers, allow_redirects=False) as response:
                head = b""
                while len(head) < SNIPPET_BYTES and (more := await response.content.read(SNIPPET_BYTES - len(head))):
                    head += more
                if not response.content.at_eof():
                    response.close()  # more than the snippet: not read, and the connection not kept
        try:
            snippet = head.decode(response.charset or "utf-8", errors="replace")[:SNIPPET]
        except LookupError:  # a charset Python does not know
            snippet = head.decode("utf-8", errors="replace")[:SNIPPET]
        return Answer(response.status, snippet, _retry_after(response.headers.get("retry-after"), now))


async def close_kept() -> None:
    """Close this event loop's kept clients: the worker's shutdown runs it on its loop before the loop stops
    (``platform/worker/middleware.LoopResources``, wired in ``web/entry/wiring.py``)."""
    loop = asyncio.get_running_loop()
    pool = _kept.pop(loop, {})
    _swept.pop(loop, None)
    for idle in pool.values():
        for kept in idle:
            await kept.client.close()


async def _sweep(loop: asyncio.AbstractEventLoop, pool: dict[tuple, list[_Kept]]) -> None:
    """Close the loop's clients idle for over KEPT_SECONDS (at most once a second per loop)."""
    now = time.monotonic()
    if now - _swept.get(loop, 0.0) < 1.0:
        return
    _swept[loop] = now
    # Out of the pool first, all of them, then closed: while one closes, a lane could otherwise lend another.
    stale: list[_Kept] = []
    for key in list(pool):
        idle = pool[key]
        stale += [kept for kept in idle if now - kept.idle_since > KEPT_SECONDS]
        idle[:] = [kept for kept in idle if now - kept.idle_since <= KEPT_SECONDS]
        if not idle:
            del pool[key]
    for kept in stale:
        await kept.client.close()


@dataclass
class WebhookFanOut:
    """A process batch's view of the tenant's enabled endpoints (read once): whether an event type has a
    subscriber, and the deliveries of one message, written with the batch's other rows."""

    endpoints: list[WebhookEndpoint]

    def reaches(self, event_type: str | None) -> bool:
        return any(endpoint.subscribed(event_type or "") for endpoint in self.endpoints)

    def expand(self, rows: EffectRows, message: dict[str, Any]) -> dict[str, Any]:
        """One delivery and its ``webhooks.deliver`` outbox row per subscribed endpoint; returns what the
        outbound message records as its acknowledgement (the same as ``send`` answers)."""
        event_type = message["target"] or str(message["payload"].get("type", ""))
        now = message["created_at"]
        chosen = [endpoint for endpoint in self.endpoints if endpoint.subscribed(event_type)]
        for endpoint in chosen:
            delivery_id = rows.add(
                WebhookDelivery, endpoint_id=endpoint.id, message_id=message["effect_key"], event_type=event_type,
                payload=message["payload"], outbound_message_id=message["id"], status=WebhookDeliveryStatus.PENDING,
                attempts=0, replays=0, last_status_code=None, response_snippet=None, last_error=None,
                next_attempt_at=now, created_at=now, last_attempt_at=None, delivered_at=None)
            outbox_row(rows, DELIVER_JOB, now, delivery_id=str(delivery_id))
        return {"event_type": event_type, "endpoints": [str(endpoint.id) for endpoint in chosen]}


@dataclass
class WebhookPort(SignedPost):
    async def fan_out(self, session: AsyncSession, tenant: Tenant) -> WebhookFanOut:
        endpoints = (await session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)).order_by(WebhookEndpoint.created_at)
        )).scalars().all()
        return WebhookFanOut(list(endpoints))

    async def reaches(self, session: AsyncSession, tenant: Tenant, event_type: str | None) -> bool:
        """Whether any enabled endpoint of the tenant subscribes to ``event_type``: a process step writes
        no webhook message that would go nowhere."""
        endpoints = (await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)))).scalars()
        return any(endpoint.subscribed(event_type or "") for endpoint in endpoints)

    async def send(self, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        return await send_one(self, session, tenant, message)

    async def send_many(self, session: AsyncSession, tenant: Tenant,
                        messages: list[OutboundMessage]) -> list[dict[str, Any] | BaseException]:
        """Fan each message out to the endpoints subscribed to its type (read once for the batch)."""
        endpoints = (await session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)).order_by(WebhookEndpoint.created_at)
        )).scalars().all()
        outcomes: list[dict[str, Any] | BaseException] = []
        for message in messages:
            event_type = message.target or str(message.payload.get("type", ""))
            chosen = [endpoint for endpoint in endpoints if endpoint.subscribed(event_type)]
            for endpoint in chosen:
                delivery = new_delivery(session, endpoint, message_id=message.effect_key, event_type=event_type,
                                        payload=message.payload, outbound_message_id=message.id)
                await schedule(session, delivery)
            outcomes.append({"event_type": event_type, "endpoints": [str(endpoint.id) for endpoint in chosen]})
        return outcomes


def current_transport() -> SignedPost:
    """The installed webhook port's transport (settings, timeouts), or production defaults."""
    port = get_port(Channel.WEBHOOK)
    return port if isinstance(port, SignedPost) else SignedPost()
