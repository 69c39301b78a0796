"""Rate limits: in Redis when the platform has one, in process in the embedded mode (one process).

Two kinds. ``hit`` counts requests in fixed windows (an API key's budget per minute). ``attempt`` counts
attempts in a sliding window (log-ins, reset mails): what counts is how many happened in the last
``window`` seconds, so a refusal ends as soon as the oldest counted attempt is old enough, never at a
boundary an attacker can wait for and then double up across. A refused attempt is not counted (the set
stays at most ``limit`` long and a blocked guesser cannot stretch the block), and an attempt that turned
out fine can be taken back (``undo``/``forget``).

Keys are namespaced and carry the tenant (``{namespace}:rl:{tenant}:{what}:{window}``,
``{namespace}:attempts:{tenant}:{what}``), so two tenants never share a budget and a flush of one tenant's
keys is a prefix away.

When Redis cannot be reached, each caller decides (see the README's "Faults and outages"): the API's
per-key budget fails open (``hit`` raises; the API middleware logs and lets the authenticated request
through: intake must not stop for a counter), a log-in or reset throttle fails closed (the error reaches
the app's handler, which answers 503 with Retry-After: no password guessing without a count), and the
clean-up after a log-in that succeeded (``Gate.succeeded``, ``forget_account``) fails open: the outcome
is already decided, the count only stays until its window ends.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from backoffice.platform.availability import REDIS_ERRORS, redis_client
from backoffice.platform.settings import Settings

NAMESPACE = "backoffice"
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Attempt:
    """One attempt in a sliding window: counted when allowed, not counted when refused."""

    allowed: bool
    retry_after: int  # seconds until a refused attempt would be allowed; 0 when allowed
    key: str
    member: str = ""


class RateLimiter(Protocol):
    async def hit(self, tenant: str, what: str, *, limit: int, window: int) -> Decision: ...

    async def attempt(self, tenant: str, what: str, *, limit: int, window: int) -> Attempt: ...

    async def undo(self, attempt: Attempt) -> None: ...

    async def forget(self, tenant: str, what: str) -> None: ...

    async def close(self) -> None: ...


def _attempts_key(namespace: str, tenant: str, what: str) -> str:
    return f"{namespace}:attempts:{tenant}:{what}"


def _member(now: float) -> str:
    return f"{now:.6f}:{secrets.token_hex(4)}"


def _retry_after(oldest: float, window: int, now: float) -> int:
    return max(1, math.ceil(oldest + window - now))


def _window(window: int, now: float) -> tuple[int, int]:
    start = int(now // window) * window
    return start, max(1, math.ceil(start + window - now))


class MemoryRateLimiter:
    """One process's counters (embedded mode: there is only one process)."""

    def __init__(self, namespace: str = NAMESPACE, clock=time.time) -> None:
        self.namespace = namespace
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._attempts: dict[str, tuple[int, dict[str, float]]] = {}  # key -> (window, member -> time)
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

    async def attempt(self, tenant: str, what: str, *, limit: int, window: int) -> Attempt:
        now, key = self._clock(), _attempts_key(self.namespace, tenant, what)
        with self._lock:
            if len(self._attempts) > 10_000:  # drop keys whose every attempt has left its window
                self._attempts = {k: (w, e) for k, (w, e) in self._attempts.items()
                                  if any(t > now - w for t in e.values())}
            _, entries = self._attempts.setdefault(key, (window, {}))
            for member, at in list(entries.items()):
                if at <= now - window:
                    del entries[member]
            if len(entries) >= limit:
                return Attempt(False, _retry_after(min(entries.values()), window, now), key)
            member = _member(now)
            entries[member] = now
        return Attempt(True, 0, key, member)

    async def undo(self, attempt: Attempt) -> None:
        with self._lock:
            if attempt.member and attempt.key in self._attempts:
                self._attempts[attempt.key][1].pop(attempt.member, None)

    async def forget(self, tenant: str, what: str) -> None:
        with self._lock:
            self._attempts.pop(_attempts_key(self.namespace, tenant, what), None)

    async def close(self) -> None:
        return None


# One command (EVALSHA, atomic like MULTI/EXEC): the count and the key's expiry, set once. A transaction
# of INCR and EXPIRE cost 0.32-0.43 ms of the web process's CPU per API call, the script 0.20-0.25 ms.
COUNT_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return count
"""

# A large budget is counted in process and reconciled with Redis: a hit sends what the process counted since
# its last exchange once that reaches SLACK of the limit or SYNC_SECONDS have passed, and learns the count of
# every process. Each process can then admit at most that many requests the others have not seen yet, so a
# key's limit holds to within SLACK per web process (6 requests a minute on the default 600). A budget under
# 1 / SLACK (100 a minute) is counted in Redis on every hit, exactly. The script call was 17% of the
# single-event intake's CPU.
SLACK = 0.01
SYNC_SECONDS = 0.25


@dataclass
class _Local:
    known: int = 0  # the count of every process, as Redis last answered it
    pending: int = 0  # hits counted here since, not sent yet
    synced_at: float = -math.inf
    syncing: bool = False


class RedisRateLimiter:
    """Shared by every web process: INCR on a per-window key that expires with its window."""

    def __init__(self, url: str, namespace: str = NAMESPACE, clock=time.time) -> None:
        self.namespace = namespace
        self.url = url
        self._clock = clock
        self._redis = redis_client(url)
        self._count = self._redis.register_script(COUNT_SCRIPT)
        self._local: dict[str, _Local] = {}
        self._monotonic = time.monotonic

    def key(self, tenant: str, what: str, start: int) -> str:
        return f"{self.namespace}:rl:{tenant}:{what}:{start}"

    async def hit(self, tenant: str, what: str, *, limit: int, window: int) -> Decision:
        start, reset = _window(window, self._clock())
        key = self.key(tenant, what, start)
        slack = int(limit * SLACK)
        if slack < 1:  # a small budget: exact, a round trip per hit
            count = await self._send(key, 1, window)
            return Decision(count <= limit, limit, max(0, limit - count), reset)
        local = self._local.get(key)
        if local is None:
            if len(self._local) > 10_000:  # drop finished windows
                suffix = f":{start}"
                self._local = {k: v for k, v in self._local.items() if k.endswith(suffix)}
            local = self._local[key] = _Local()
        local.pending += 1
        count = local.known + local.pending
        now = self._monotonic()
        if not local.syncing and (local.pending >= slack or now - local.synced_at >= SYNC_SECONDS):
            sent, local.pending, local.syncing = local.pending, 0, True
            try:
                total = await self._send(key, sent, window)
            except BaseException:
                local.pending += sent  # not counted in Redis: sent with the next exchange
                raise
            finally:
                local.syncing = False
            local.known, local.synced_at = max(local.known, total), now
            count = local.known + local.pending
        return Decision(count <= limit, limit, max(0, limit - count), reset)

    async def _send(self, key: str, hits: int, window: int) -> int:
        return int(await self._count(keys=[key], args=[window + 1, hits]))

    async def attempt(self, tenant: str, what: str, *, limit: int, window: int) -> Attempt:
        """A sorted set of attempt times. Add first, then count, in one transaction: of any number of
        concurrent attempts at most ``limit`` are admitted (one that finds itself over the limit takes
        itself out again), so a burst of parallel guesses cannot slip in between a count and an add."""
        now, key = self._clock(), _attempts_key(self.namespace, tenant, what)
        member = _member(now)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.zadd(key, {member: now})
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.expire(key, window + 1)
            _, _, count, oldest, _ = await pipe.execute()
        if count <= limit:
            return Attempt(True, 0, key, member)
        await self._redis.zrem(key, member)
        return Attempt(False, _retry_after(oldest[0][1] if oldest else now, window, now), key)

    async def undo(self, attempt: Attempt) -> None:
        if attempt.member:
            await self._redis.zrem(attempt.key, attempt.member)

    async def forget(self, tenant: str, what: str) -> None:
        await self._redis.delete(_attempts_key(self.namespace, tenant, what))

    async def close(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(settings: Settings, namespace: str = NAMESPACE) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, namespace)
    return MemoryRateLimiter(namespace)


# --- log-in throttling ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AttemptLimits:
    per_account: int
    per_address: int
    window: int  # seconds, sliding


# Password log-ins (portal and staff): ten failures per account in any 15 minutes is plenty for a person
# who mistypes and far too few to guess a password; an address gets more, since an office shares one.
LOG_IN = AttemptLimits(per_account=10, per_address=30, window=15 * 60)
# Password-reset mails: a few per account (no mail-bombing), a few dozen per address.
RESET_REQUEST = AttemptLimits(per_account=5, per_address=30, window=15 * 60)


def account_key(identifier: str) -> str:
    """The account as a throttle knows it: normalised as the log-in looks it up (trimmed, lower case), hashed
    so that neither a huge value nor the e-mail itself ends up in a Redis key."""
    normalised = identifier.strip().lower().encode("utf-8", "surrogatepass")
    return hashlib.sha256(normalised).hexdigest()[:32]


@dataclass
class Gate:
    """An attempt counted against an account and an address (or refused, and then counted against neither)."""

    allowed: bool
    retry_after: int
    _limiter: RateLimiter | None = field(default=None, repr=False)
    _account: Attempt | None = field(default=None, repr=False)
    _address: Attempt | None = field(default=None, repr=False)
    _tenant: str = ""
    _account_what: str = ""

    async def succeeded(self) -> None:
        """The credentials were right: the account's earlier failures are forgotten (they were mistakes of
        someone who knows the password) and this attempt does not count against the address."""
        if self._limiter is None:
            return
        try:
            await self._limiter.forget(self._tenant, self._account_what)
            if self._address is not None:
                await self._limiter.undo(self._address)
        except REDIS_ERRORS as error:  # the log-in succeeded; the count ends with its window instead
            log.warning("log-in throttle clean-up skipped for tenant %s: Redis unavailable (%s)",
                        self._tenant, type(error).__name__)


async def gate(limiter: RateLimiter, tenant: str, kind: str, *, account: str, address: str,
               limits: AttemptLimits) -> Gate:
    """Count one attempt of ``kind`` (``login``, ``reset``...) by this account and from this address, both
    in sliding windows. Refused when either budget is spent, whether or not the account exists (the same
    answer for both, so the throttle tells nothing about who has an account). An attacker who keeps
    failing against one account holds it at its limit only while they keep going: every refusal ends
    ``window`` seconds after the failure it waits on, and a completed password reset forgets the count."""
    account_what = f"{kind}:account:{account_key(account)}"
    by_account = await limiter.attempt(tenant, account_what, limit=limits.per_account, window=limits.window)
    if not by_account.allowed:
        return Gate(False, by_account.retry_after)
    by_address = await limiter.attempt(tenant, f"{kind}:address:{address}", limit=limits.per_address,
                                       window=limits.window)
    if not by_address.allowed:
        await limiter.undo(by_account)
        return Gate(False, by_address.retry_after)
    return Gate(True, 0, limiter, by_account, by_address, tenant, account_what)


async def forget_account(limiter: RateLimiter, tenant: str, kind: str, account: str) -> None:
    """After a completed reset: the account's failed log-ins are forgotten; fails open (see above)."""
    try:
        await limiter.forget(tenant, f"{kind}:account:{account_key(account)}")
    except REDIS_ERRORS as error:
        log.warning("log-in throttle clean-up skipped for tenant %s: Redis unavailable (%s)", tenant,
                    type(error).__name__)
