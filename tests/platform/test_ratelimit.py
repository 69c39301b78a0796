"""Rate limits count per tenant and key within a window, in Redis and in process alike."""

from __future__ import annotations

import uuid

import pytest

from backoffice.platform.ratelimit import MemoryRateLimiter, RedisRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def limiter_and_clock(request):
    clock = Clock()
    if request.param == "memory":
        limiter = MemoryRateLimiter(clock=clock)
    else:
        url = request.getfixturevalue("redis_available")
        limiter = RedisRateLimiter(url, namespace=f"test-{uuid.uuid4().hex[:8]}", clock=clock)
    yield limiter, clock
    await limiter.close()


async def test_limit_per_tenant_and_key_and_window(limiter_and_clock):
    limiter, clock = limiter_and_clock
    first = [await limiter.hit("tenant-a", "key-1", limit=2, window=60) for _ in range(3)]
    assert [d.allowed for d in first] == [True, True, False]
    assert [d.remaining for d in first] == [1, 0, 0]
    assert first[-1].headers()["Retry-After"] == str(first[-1].reset_after)
    assert 1 <= first[-1].reset_after <= 60
    # Another tenant with the same key name, and another key of the same tenant, have their own budget.
    assert (await limiter.hit("tenant-b", "key-1", limit=2, window=60)).allowed
    assert (await limiter.hit("tenant-a", "key-2", limit=2, window=60)).allowed
    clock.now += 60
    assert (await limiter.hit("tenant-a", "key-1", limit=2, window=60)).remaining == 1


def test_keys_carry_the_namespace_and_tenant():
    limiter = MemoryRateLimiter(namespace="ns")
    assert limiter.key("t1", "k1", 60) == "ns:rl:t1:k1:60"
