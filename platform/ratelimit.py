"""Fixed-window rate limits: in Redis when the platform has one, in process in the embedded mode.

Keys are namespaced and carry the tenant (``{namespace}:rl:{tenant}:{what}:{window}``), so two tenants
never share a budget and a flush of one tenant's keys is a prefix away.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from backoffice.platform.settings import Settings

NAMESPACE = "backoffice"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        """The IETF draft's ``RateLimit-*`` fields and the widespread ``X-RateLimit-*`` ones."""
        values = {"Limit": str(self.limit), "Remaining": str(self.remaining), "Reset": str(self.reset_after)}
        headers = {f"RateLimit-{k}": v for k, v in values.items()}
        headers.update({f"X-RateLimit-{k}": v for k, v in values.items()})
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_after)
        return headers


class RateLimiter(Protocol):
    async def hit(self, tenant: str, what: str, *, limit: int, window: int) -> Decision: ...

    async def close(self) -> None: ...


def _window(window: int, now: float) -> tuple[int, int]:
    start = int(now // window) * window
    return start, max(1, math.ceil(start + window - now))


class MemoryRateLimiter:
    """One process's counters (embedded mode: there is only one process)."""

    def __init__(self, namespace: str = NAMESPACE, clock=time.time) -> None:
        self.namespace = namespace
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def key(self, tenant: str, what: str, start: int) -> str:
        return f"{self.namespace}:rl:{tenant}:{what}:{start}"

    async def hit(self, tenant: str, what: str, *, limit: int, window: int) -> Decision:
        start, reset = _window(window, self._clock())
        key = self.key(tenant, what, start)
        with self._lock:
            if len(self._counts) > 10_000:  # drop finished windows
                suffix = f":{start}"
                self._counts = {k: v for k, v in self._counts.items() if k.endswith(suffix)}
            count = self._counts[key] = self._counts.get(key, 0) + 1
        return Decision(count <= limit, limit, max(0, limit - count), reset)

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    """Shared by every web process: INCR on a per-window key that expires with its window."""

    def __init__(self, url: str, namespace: str = NAMESPACE, clock=time.time) -> None:
        import redis.asyncio as redis

        self.namespace = namespace
        self._clock = clock
        self._redis = redis.Redis.from_url(url)

    def key(self, tenant: str, what: str, start: int) -> str:
        return f"{self.namespace}:rl:{tenant}:{what}:{start}"

    async def hit(self, tenant: str, what: str, *, limit: int, window: int) -> Decision:
        start, reset = _window(window, self._clock())
        key = self.key(tenant, what, start)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window + 1, nx=True)
            count, _ = await pipe.execute()
        return Decision(count <= limit, limit, max(0, limit - count), reset)

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(settings: Settings, namespace: str = NAMESPACE) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, namespace)
    return MemoryRateLimiter(namespace)
