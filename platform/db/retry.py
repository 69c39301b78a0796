"""One more try when the database connection turned out to be dead.

The pool does not ping a connection before handing it out (a round trip on every checkout). A connection
the server dropped meanwhile (restart, failover, ``pg_terminate_backend``, an idle timeout) fails on its
first statement instead; SQLAlchemy then invalidates it, and every pooled connection older than it, so a
second try runs on a fresh connection. Only safe for an operation that wrote nothing before the failure:
a read, or a transaction's first statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


async def again_if_disconnected(operation: Callable[[], Awaitable[T]]) -> T:
    try:
        return await operation()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return await operation()
