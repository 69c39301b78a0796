"""Outbound HTTP: retries only for repeatable calls, timeouts, and the per-(tenant, instance) breaker,
against the local provider server; the breaker's state in process and in Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backoffice.connectors.http import (
    CircuitBreaker, CircuitOpen, Http, MemoryStore, ProviderError, RedisStore, circuit_key,
)
from backoffice.platform.settings import get_settings
from tests.connectors.conftest import Answer


def http(store=None, tenant=None, instance=None, **kw) -> Http:
    key = circuit_key(tenant or uuid.uuid4(), instance or uuid.uuid4())
    breaker = CircuitBreaker(store or MemoryStore(), key, threshold=kw.pop("threshold", 3),
                             cooldown=kw.pop("cooldown", 0.3))
    # The provider stand-in listens on loopback, which only BACKOFFICE_ALLOW_PRIVATE_TARGETS lets a client reach.
    return Http(breaker, timeout=kw.pop("timeout", 0.5), retries=kw.pop("retries", 2), backoff=0.01,
                settings=get_settings().model_copy(update={"allow_private_targets": True}))


async def test_idempotent_calls_retry_through_500s_and_posts_without_a_key_do_not(provider):
    provider.on("GET", "/v3/payments/p1", Answer(500), Answer(503), Answer(200, {"id": "p1"}))
    response = await http().request("GET", provider.url + "/v3/payments/p1")
    assert response.json() == {"id": "p1"} and len(provider.requests("GET", "/v3/payments/p1")) == 3

    provider.on("POST", "/v3/customers", Answer(500), Answer(200, {"id": "cus_1"}))
    with pytest.raises(ProviderError) as failed:
        await http().request("POST", provider.url + "/v3/customers", json={"name": "x"})
    assert failed.value.retryable and len(provider.requests("POST", "/v3/customers")) == 1

    provider.on("POST", "/v1/charges", Answer(500), Answer(200, {"id": "ch_1"}))
    ok = await http().request("POST", provider.url + "/v1/charges", idempotency_key="effect-123")
    sent = provider.requests("POST", "/v1/charges")
    assert ok.json() == {"id": "ch_1"} and len(sent) == 2
    assert {s.headers["idempotency-key"] for s in sent} == {"effect-123"}  # the same key on the retry


async def test_4xx_is_not_retried_and_not_retryable(provider):
    provider.on("POST", "/v3/payments", Answer(400, {"errors": [{"description": "invalid customer"}]}))
    with pytest.raises(ProviderError) as refused:
        await http().request("POST", provider.url + "/v3/payments", idempotency_key="k")
    assert refused.value.status == 400 and not refused.value.retryable and "invalid customer" in str(refused.value)
    assert len(provider.requests("POST", "/v3/payments")) == 1


async def test_slow_provider_times_out_as_retryable(provider):
    provider.on("GET", "/slow", Answer(200, {}, delay=0.6))
    with pytest.raises(ProviderError) as slow:
        await http(timeout=0.2, retries=0).request("GET", provider.url + "/slow")
    assert slow.value.retryable and "no answer within 0.2 s" in str(slow.value)


async def _circuit(store, provider) -> None:
    tenant, instance = uuid.uuid4(), uuid.uuid4()
    client = http(store, tenant, instance, retries=0, cooldown=0.3)
    neighbour = http(store, uuid.uuid4(), instance, retries=0)  # same instance id, another tenant
    provider.on("GET", "/down", Answer(500))
    provider.on("GET", "/up", Answer(200, {"ok": True}))
    for _ in range(3):
        with pytest.raises(ProviderError):
            await client.request("GET", provider.url + "/down")
    assert await client.breaker.state() == "open"
    with pytest.raises(CircuitOpen):
        await client.request("GET", provider.url + "/up")
    assert provider.requests("GET", "/up") == []  # refused without calling the provider
    assert (await neighbour.request("GET", provider.url + "/up")).status_code == 200  # its own circuit
    await asyncio.sleep(0.35)
    assert await client.breaker.state() == "half-open"
    with pytest.raises(ProviderError):
        await client.request("GET", provider.url + "/down")  # the trial fails: open again
    with pytest.raises(CircuitOpen):
        await client.request("GET", provider.url + "/up")
    await asyncio.sleep(0.35)
    assert (await client.request("GET", provider.url + "/up")).status_code == 200  # the trial succeeds
    assert await client.breaker.state() == "closed"


async def test_circuit_opens_refuses_half_opens_and_closes_in_process(provider):
    await _circuit(MemoryStore(), provider)


async def test_circuit_state_is_shared_through_redis(provider, redis_available):
    await _circuit(RedisStore(redis_available), provider)
    # Another process (another store object on the same Redis) sees the same circuit.
    key = circuit_key(uuid.uuid4(), uuid.uuid4())
    first, second = (CircuitBreaker(RedisStore(redis_available), key, threshold=1, cooldown=30) for _ in range(2))
    await first.failure()
    assert await second.state() == "open"
    await second.success()
    assert await first.state() == "closed"
