"""Rate limits count per tenant and key within a window, in Redis and in process alike; log-in attempts in
sliding windows, per account and per address."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backoffice.platform.ratelimit import (
    AttemptLimits, MemoryRateLimiter, RedisRateLimiter, account_key, gate,
)


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


async def test_a_redis_window_key_expires_with_its_window_and_keeps_its_first_expiry(redis_available):
    """Every process counts in Redis; a window's key must not outlive its window (nothing piles up in Redis),
    and later hits must not push its expiry back."""
    clock = Clock()
    limiter = RedisRateLimiter(redis_available, namespace=f"test-{uuid.uuid4().hex[:8]}", clock=clock)
    try:
        await limiter.hit("tenant-a", "key-1", limit=5, window=60)
        start = int(clock.now) // 60 * 60
        key = limiter.key("tenant-a", "key-1", start)
        assert 59 <= await limiter._redis.ttl(key) <= 61
        await limiter._redis.expire(key, 30)  # as if 31 s had passed
        assert (await limiter.hit("tenant-a", "key-1", limit=5, window=60)).remaining == 3
        assert await limiter._redis.ttl(key) <= 30
    finally:
        await limiter.close()


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_large_budget_is_counted_in_process_and_holds_across_processes(redis_available):
    """Two web processes share a 1,000-a-minute budget: each counts in process and reconciles with Redis after
    10 hits (1%) or 0.25 s, so requests cost no Redis call in between and the limit holds to within 10 a
    process; each process learns the other's count at its next exchange."""
    clock, ticks, namespace = Clock(), Ticks(), f"test-{uuid.uuid4().hex[:8]}"
    one, two = (RedisRateLimiter(redis_available, namespace=namespace, clock=clock) for _ in range(2))
    for limiter in (one, two):
        limiter._monotonic = ticks
    key = one.key("tenant-a", "key-1", int(clock.now) // 60 * 60)
    try:
        await one.hit("tenant-a", "key-1", limit=1000, window=60)  # a key's first hit asks Redis
        assert int(await one._redis.get(key)) == 1
        for _ in range(9):
            await one.hit("tenant-a", "key-1", limit=1000, window=60)
        assert int(await one._redis.get(key)) == 1  # nine hits, no Redis call
        decision = await one.hit("tenant-a", "key-1", limit=1000, window=60)  # the tenth sends them
        assert int(await one._redis.get(key)) == 11 and decision.remaining == 989
        ticks.now += 0.3  # and time alone sends what is pending
        await one.hit("tenant-a", "key-1", limit=1000, window=60)
        assert int(await one._redis.get(key)) == 12

        admitted = 12
        for n in range(3000):
            decision = await (one if n % 2 else two).hit("tenant-a", "key-1", limit=1000, window=60)
            admitted += decision.allowed
        assert 1000 - 10 <= admitted <= 1000 + 2 * 10  # the budget, give or take a process's slack
        assert not decision.allowed and decision.headers()["Retry-After"]
        # Another tenant's key of the same name is its own budget, in Redis too.
        assert (await two.hit("tenant-b", "key-1", limit=1000, window=60)).remaining == 999
        clock.now += 60  # a new window starts from nothing
        assert (await one.hit("tenant-a", "key-1", limit=1000, window=60)).remaining == 999
    finally:
        await one.close()
        await two.close()


async def test_hits_counted_in_process_are_sent_later_when_redis_fails(redis_available):
    clock, ticks = Clock(), Ticks()
    limiter = RedisRateLimiter(redis_available, namespace=f"test-{uuid.uuid4().hex[:8]}", clock=clock)
    limiter._monotonic = ticks
    key = limiter.key("t", "k", int(clock.now) // 60 * 60)
    send = limiter._send
    try:
        await limiter.hit("t", "k", limit=1000, window=60)
        for _ in range(9):
            await limiter.hit("t", "k", limit=1000, window=60)

        async def down(*_):
            raise ConnectionError("Redis went away")

        limiter._send = down
        with pytest.raises(ConnectionError):
            await limiter.hit("t", "k", limit=1000, window=60)  # ten pending: their exchange fails
        limiter._send = send
        ticks.now += 1
        await limiter.hit("t", "k", limit=1000, window=60)
        assert int(await limiter._redis.get(key)) == 12  # nothing counted here was lost
    finally:
        await limiter.close()


def test_keys_carry_the_namespace_and_tenant():
    limiter = MemoryRateLimiter(namespace="ns")
    assert limiter.key("t1", "k1", 60) == "ns:rl:t1:k1:60"


async def test_attempts_slide_and_a_refused_attempt_is_not_counted(limiter_and_clock):
    limiter, clock = limiter_and_clock
    allowed = []
    for _ in range(3):
        allowed.append(await limiter.attempt("tenant-a", "login:x", limit=3, window=60))
        clock.now += 10
    refused = await limiter.attempt("tenant-a", "login:x", limit=3, window=60)
    assert [a.allowed for a in allowed] == [True, True, True] and not refused.allowed
    assert refused.retry_after == 30  # the first attempt (30 s ago) leaves the window in 30 s
    # Hammering while refused does not stretch the refusal: refused attempts are not counted.
    for _ in range(20):
        assert not (await limiter.attempt("tenant-a", "login:x", limit=3, window=60)).allowed
    clock.now += 30
    # Sliding, not fixed: only the oldest has left, so exactly one more fits; no boundary resets all three.
    assert (await limiter.attempt("tenant-a", "login:x", limit=3, window=60)).allowed
    assert not (await limiter.attempt("tenant-a", "login:x", limit=3, window=60)).allowed
    # Other tenants and other keys have their own windows.
    assert (await limiter.attempt("tenant-b", "login:x", limit=3, window=60)).allowed
    # undo takes one attempt back; forget clears the key.
    await limiter.undo(allowed[-1])
    assert (await limiter.attempt("tenant-a", "login:x", limit=3, window=60)).allowed
    await limiter.forget("tenant-a", "login:x")
    assert all([(await limiter.attempt("tenant-a", "login:x", limit=3, window=60)).allowed for _ in range(3)])


async def test_a_burst_of_parallel_attempts_admits_no_more_than_the_limit(limiter_and_clock):
    limiter, _ = limiter_and_clock
    results = await asyncio.gather(*[limiter.attempt("t", "login:burst", limit=5, window=60) for _ in range(40)])
    assert sum(a.allowed for a in results) == 5


async def test_an_account_is_throttled_from_any_address_and_an_address_across_accounts(limiter_and_clock):
    limiter, clock = limiter_and_clock
    limits = AttemptLimits(per_account=3, per_address=5, window=900)
    # One account from many addresses: the account's budget holds, and its spelling does not matter.
    spellings = ["Ana@X.example", " ana@x.example", "ana@x.example ", "ANA@x.example"]
    gates = [await gate(limiter, "t", "login", account=e, address=f"203.0.113.{i}", limits=limits)
             for i, e in enumerate(spellings)]
    assert [g.allowed for g in gates] == [True, True, True, False] and gates[-1].retry_after > 0
    # Another account of the same tenant, and the same account on another tenant, are not held back.
    assert (await gate(limiter, "t", "login", account="bia@x.example", address="203.0.113.9", limits=limits)).allowed
    assert (await gate(limiter, "u", "login", account="ana@x.example", address="203.0.113.9", limits=limits)).allowed
    # One address across many accounts (password spraying): the address's budget holds.
    spray = [await gate(limiter, "t", "login", account=f"user{i}@x.example", address="198.51.100.1", limits=limits)
             for i in range(6)]
    assert [g.allowed for g in spray] == [True] * 5 + [False]
    # A refusal by address counts nothing against the account it named.
    assert (await gate(limiter, "t", "login", account="user5@x.example", address="198.51.100.2", limits=limits)).allowed
    # A success forgets the account's failures; 15 minutes later the blocked account is free by itself too.
    ok = await gate(limiter, "t", "login", account="bia@x.example", address="203.0.113.9", limits=limits)
    await ok.succeeded()
    assert all([(await gate(limiter, "t", "login", account="bia@x.example", address=f"192.0.2.{i}",
                            limits=limits)).allowed for i in range(3)])
    clock.now += 900
    assert (await gate(limiter, "t", "login", account="ana@x.example", address="192.0.2.50", limits=limits)).allowed


def test_account_keys_are_normalised_and_hashed():
    assert account_key(" Ana@X.example ") == account_key("ana@x.example") != account_key("ana@y.example")
    assert "ana" not in account_key("ana@x.example") and len(account_key("a" * 100_000)) == 32
    assert account_key("\ud800@x.example")  # an unpaired surrogate is an input, not a crash
