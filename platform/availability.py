"""Dependencies that are down, told apart from bugs; and the one way to open a Redis client.

``unavailable(error)`` says whether an exception means PostgreSQL or Redis cannot be reached right now
(refused or reset connections, a server shutting down or starting up, a connection dropped under a
statement, a timeout, an exhausted pool): the web app answers those with ``503`` and ``Retry-After``
(``web/errors.py``) instead of a bare 500, and bookkeeping around a call logs them and goes on.

``redis_client(url)`` is configured for outages, for every Redis client that sits on a request's path
(rate limits, circuit state, portal sessions): short socket timeouts (a hung Redis costs a request a
second, not redis-py's default five per command), a couple of quick retries on connection errors (a
pooled connection that died with a Redis restart is replaced on the spot, not failed to the caller), and
a health check on connections idle for more than ``HEALTH_CHECK_SECONDS``.
"""

from __future__ import annotations

import socket
import threading
import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

HEALTH_CHECK_SECONDS = 15
REDIS_TIMEOUT = 1.0
# Seconds a client is told to wait: long enough for a restart, short enough that nobody waits in vain.
RETRY_AFTER_SECONDS = 5
# SQLSTATE classes 08 (connection exception) and 57P (admin or crash shutdown, cannot connect now).
_UNAVAILABLE_STATES = ("08", "57P")
# Errors the Redis bookkeeping may raise when Redis is away (or answers nonsense while loading).
REDIS_ERRORS = (RedisError, OSError)


def redis_client(url: str, *, timeout: float = REDIS_TIMEOUT) -> Redis:
    return Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.25), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])


class Pause:
    """Bookkeeping that fails open skips a Redis that just failed for ``seconds``, per URL, instead of paying
    its connection attempts (a few hundred milliseconds) on every call of an outage. Per process."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def active(self, url: str) -> bool:
        with self._lock:
            return time.monotonic() < self._until.get(url, 0.0)

    def failed(self, url: str) -> None:
        with self._lock:
            self._until[url] = time.monotonic() + self.seconds


def unavailable(error: BaseException) -> bool:
    if isinstance(error, RedisConnectionError | RedisTimeoutError | PoolTimeout):
        return True
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True  # asyncpg's connect raises these bare (refused, reset, DNS, connect timeout)
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, BaseExceptionGroup):  # e.g. a session's rollback failing on the same dead connection
        return all(unavailable(inner) for inner in error.exceptions)
    # A DBAPIError names the driver's error; code that talks to asyncpg directly (the intake's hot path) gets
    # the driver's error itself, untranslated.
    candidates = (error.orig, getattr(error.orig, "__cause__", None)) if isinstance(error, DBAPIError) else (error,)
    for candidate in candidates:
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES):
            return True
        if isinstance(candidate, ConnectionError | TimeoutError):
            return True
        if type(candidate).__name__ in {"ConnectionDoesNotExistError", "InterfaceError"} and \
                "connection" in str(candidate).lower() and "closed" in str(candidate).lower():
            return True
    return False
