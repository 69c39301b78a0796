"""Outbound HTTP for every connector: one client factory with timeouts, retries with exponential backoff
and jitter (only for calls that are safe to repeat: idempotent methods, or a provider idempotency key),
and a circuit breaker per (tenant, instance).

The breaker opens after ``threshold`` consecutive failed calls (a call fails when, after its retries,
the provider still answers 5xx/429 or cannot be reached in time); while open, calls are refused at once
with :class:`CircuitOpen` (retryable: the delivery job tries again later). After ``cooldown`` seconds it
half-opens: one trial call goes through; success closes it, failure opens it again. The state lives in
Redis when ``BACKOFFICE_REDIS_URL`` is set (shared by every worker process), else in this process.
Its key always carries the tenant: ``bo:circuit:{tenant_id}:{instance_id}``.

The breaker is bookkeeping, and bookkeeping never decides a call's outcome: when its Redis cannot be
reached (before the call, or after the provider answered) the error is logged with the connector's kind
and tenant and the call goes on (fail open). An answer the provider gave stands, so a delivered command
is never sent again because Redis restarted; while Redis is away the breaker simply does not count.

Error messages name the call by a label, never by its URL or headers: a chat webhook's URL is itself the
credential.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from backoffice.connectors.kinds import ConnectorError
from backoffice.platform import metrics
from backoffice.platform.availability import REDIS_ERRORS, Pause, redis_client
from backoffice.platform.security.outbound import CheckedTransport, TargetRefused
from backoffice.platform.settings import Settings

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = "backoffice-connectors/1"


class ProviderError(ConnectorError):
    """The provider refused the call or could not be reached. ``retryable`` says whether trying again
    later can help (5xx, 429, timeouts, connection errors, an open circuit) or not (4xx)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class CircuitOpen(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


def client(timeout: float = 10.0, settings: Settings | None = None, **kwargs: Any) -> httpx.AsyncClient:
    """The one way connectors get an httpx client: bounded timeouts, no redirects followed (a redirect to
    another host must not carry our credentials), a recognisable user agent, and the checked transport
    (``platform/security/outbound``: every connection goes to a resolved address that passed the SSRF
    check, with the shared TLS context)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), follow_redirects=False,
        headers={"User-Agent": USER_AGENT}, transport=CheckedTransport(settings), trust_env=False, **kwargs)


# --- circuit breaker state ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CircuitState:
    failures: int = 0
    opened_at: float | None = None


class BreakerStore(Protocol):
    async def get(self, key: str) -> CircuitState: ...
    async def put(self, key: str, state: CircuitState) -> None: ...


class MemoryStore:
    """Per-process state (embedded mode, or no Redis configured). Thread-safe: worker threads share it."""

    def __init__(self) -> None:
        self._states: dict[str, CircuitState] = {}
        self._lock = threading.Lock()

    async def get(self, key: str) -> CircuitState:
        with self._lock:
            return self._states.get(key, CircuitState())

    async def put(self, key: str, state: CircuitState) -> None:
        with self._lock:
            self._states[key] = state


class RedisStore:
    """Shared state for every worker process. One client per event loop: a redis.asyncio connection
    belongs to the loop that opened it (worker threads may run their own loops), and a client per
    operation used to cost more than the call it guarded (connection set-up reads package metadata)."""

    TTL = 86_400
    _clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {url: client}

    def __init__(self, url: str) -> None:
        self.url = url

    def _client(self):
        per_loop = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(self.url)
        if client is None:
            client = per_loop[self.url] = redis_client(self.url)
        return client

    async def get(self, key: str) -> CircuitState:
        values = await self._client().hgetall(key)
        if not values:
            return CircuitState()
        opened = values.get(b"opened_at", b"")
        return CircuitState(int(values.get(b"failures", b"0")), float(opened) if opened else None)

    async def put(self, key: str, state: CircuitState) -> None:
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "failures": state.failures, "opened_at": "" if state.opened_at is None else repr(state.opened_at)})
            pipe.expire(key, self.TTL)
            await pipe.execute()


_memory = MemoryStore()
_paused = Pause()  # a Redis that just failed is skipped for a second: the calls of an outage do not wait on it


def breaker_store(settings: Settings) -> BreakerStore:
    return RedisStore(settings.redis_url) if settings.redis_url else _memory


def circuit_key(tenant_id: uuid.UUID, instance_id: uuid.UUID) -> str:
    return f"bo:circuit:{tenant_id}:{instance_id}"


class CircuitBreaker:
    def __init__(self, store: BreakerStore, key: str, *, threshold: int = 5, cooldown: float = 30.0,
                 kind: str = "connector") -> None:
        self.store, self.key, self.threshold, self.cooldown = store, key, threshold, cooldown
        self.kind = kind  # the connector kind, for metrics only

    async def state(self) -> str:
        current = await self.store.get(self.key)
        if current.opened_at is None:
            return "closed"
        return "open" if time.time() - current.opened_at < self.cooldown else "half-open"

    async def before(self) -> None:
        current = await self.store.get(self.key)
        if current.opened_at is None:
            return
        if time.time() - current.opened_at < self.cooldown:
            raise CircuitOpen(f"circuit open after {current.failures} consecutive failures; "
                              f"next trial within {self.cooldown:.0f} s")
        # Half-open: let this one call through as the trial, and hold the others back for another cool-down.
        await self.store.put(self.key, CircuitState(current.failures, time.time()))

    async def success(self) -> None:
        current = await self.store.get(self.key)
        if current != CircuitState():
            await self.store.put(self.key, CircuitState())
            if current.opened_at is not None:
                metrics.CIRCUIT_TRANSITIONS.labels(self.kind, "closed").inc()

    async def failure(self) -> None:
        current = await self.store.get(self.key)
        failures = current.failures + 1
        opened = current.opened_at
        if failures >= self.threshold:
            opened = time.time()
            if current.opened_at is None:
                metrics.CIRCUIT_TRANSITIONS.labels(self.kind, "open").inc()
                log.warning("circuit %s opened after %d consecutive failures", self.key, failures)
        await self.store.put(self.key, CircuitState(failures, opened))


# --- the calling helper -------------------------------------------------------------------------------

class Http:
    """Calls for one connector instance, through its breaker."""

    def __init__(self, breaker: CircuitBreaker, *, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.25, max_backoff: float = 4.0, settings: Settings | None = None,
                 hosts: frozenset[str] | None = None, who: str = "connector") -> None:
        self.breaker, self.timeout, self.retries = breaker, timeout, retries
        self.who = who  # for logs: the connector's kind and tenant, never a URL or a credential
        self.backoff, self.max_backoff = backoff, max_backoff
        self.settings = settings
        self.hosts = hosts  # the only hosts this instance may call (a provider's documented ones), or any

    @classmethod
    def for_instance(cls, settings: Settings, tenant_id: uuid.UUID, instance_id: uuid.UUID, *, kind: str = "connector",
                     **kwargs: Any) -> Http:
        threshold = kwargs.pop("threshold", 5)
        cooldown = kwargs.pop("cooldown", 30.0)
        breaker = CircuitBreaker(breaker_store(settings), circuit_key(tenant_id, instance_id),
                                 threshold=threshold, cooldown=cooldown, kind=kind)
        kwargs.setdefault("settings", settings)
        kwargs.setdefault("who", f"{kind} instance {instance_id} of tenant {tenant_id}")
        return cls(breaker, **kwargs)

    async def _bookkeeping(self, step: str, operation) -> None:
        """Run a breaker step; a Redis that cannot be reached is logged and passed over (fail open).
        ``CircuitOpen`` is a decision, not a failure of the bookkeeping: it is raised as always."""
        url = getattr(self.breaker.store, "url", None)
        if url and _paused.active(url):
            return
        try:
            await operation()
        except REDIS_ERRORS as error:
            if url:
                _paused.failed(url)
            log.warning("circuit bookkeeping (%s) skipped for %s: Redis unavailable (%s); the call goes on",
                        step, self.who, type(error).__name__)

    def delay(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, so retries spread out."""
        base = min(self.max_backoff, self.backoff * 2 ** attempt)
        return base / 2 + random.uniform(0, base / 2)

    async def request(self, method: str, url: str, *, label: str | None = None, idempotency_key: str | None = None,
                      idempotency_header: str = "Idempotency-Key", repeatable: bool | None = None,
                      **kwargs: Any) -> httpx.Response:
        """One call; returns a 2xx-3xx response or raises ProviderError. 4xx answers are returned to no one:
        they raise (not retryable) with the provider's status. ``repeatable=True`` marks a call the provider
        makes idempotent by other means (Focus NFe's ``ref``)."""
        method = method.upper()
        label = label or f"{method} {httpx.URL(url).path}"
        headers = dict(kwargs.pop("headers", None) or {})
        if idempotency_key:
            headers[idempotency_header] = idempotency_key
        if repeatable is None:
            repeatable = method in IDEMPOTENT_METHODS or idempotency_key is not None
        attempts = 1 + (self.retries if repeatable else 0)
        host = httpx.URL(url).host
        if self.hosts is not None and host not in self.hosts:
            raise ProviderError(f"{label}: {host} is not one of this connector's hosts ({', '.join(sorted(self.hosts))})",
                                retryable=False)
        calls = metrics.CONNECTOR_CALLS
        try:
            await self._bookkeeping("before", self.breaker.before)
        except CircuitOpen:
            calls.labels(self.breaker.kind, "circuit_open").inc()
            raise
        problem = ""
        async with client(self.timeout, self.settings) as http:
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(self.delay(attempt - 1))
                try:
                    response = await http.request(method, url, headers=headers, **kwargs)
                except TargetRefused as refused:
                    # The address is not a provider's: nothing to retry and no verdict on the provider's health.
                    raise ProviderError(f"{label}: target refused: {refused}", retryable=False) from None
                except httpx.TimeoutException:
                    problem = f"{label}: no answer within {self.timeout:g} s"
                    continue
                except httpx.TransportError as error:
                    problem = f"{label}: cannot reach the provider ({type(error).__name__})"
                    continue
                if response.status_code >= 500 or response.status_code == 429:
                    problem = f"{label}: provider answered {response.status_code}"
                    continue
                # The provider is up, even when it refuses this call. From here the answer stands.
                await self._bookkeeping("success", self.breaker.success)
                calls.labels(self.breaker.kind, "refused" if response.status_code >= 400 else "ok").inc()
                if response.status_code >= 400:
                    raise ProviderError(f"{label}: provider refused with {response.status_code}: "
                                        f"{_excerpt(response)}", retryable=False, status=response.status_code)
                return response
        await self._bookkeeping("failure", self.breaker.failure)
        calls.labels(self.breaker.kind, "failed").inc()
        raise ProviderError(problem, retryable=True)


def json_of(response: httpx.Response, label: str) -> dict[str, Any]:
    """The JSON object a provider answered; a 2xx that is not one (a proxy's HTML page) is a provider
    failure, worth retrying later, not a crash."""
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(f"{label}: the answer is not JSON", retryable=True) from None
    if not isinstance(body, dict):
        raise ProviderError(f"{label}: the answer is not a JSON object", retryable=True)
    return body


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit]
