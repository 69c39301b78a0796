"""Only one scheduler acts at a time: a PostgreSQL session-level advisory lock held on a dedicated
connection. If that process dies its connection closes and the lock passes to a standby. In the embedded
mode (SQLite, one process) the only scheduler is the leader.

The lock's connections are the leadership's own, outside the process's pool (``NullPool``: nothing stale
is handed back after a database restart, and the relay and the loops cannot use them all up), and every
attempt and check is bounded in time. An unbounded one could hold the scheduler's loop: in the fault suite,
after a PostgreSQL restart, neither scheduler held the lock for over 20 s with nothing logged, which fits
an attempt stuck in a connect (asyncpg waits 60 s by default)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from backoffice.platform.db.session import Database

LOCK_KEY = 0x6B6F_0001  # arbitrary, fixed: "the backoffice scheduler"
ATTEMPT_SECONDS = 5.0  # a connect, a try for the lock or a check of it: longer means the database is not there
log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._connection: AsyncConnection | None = None
        self._engine: AsyncEngine | None = None
        self.is_leader = False

    def _lock_engine(self) -> AsyncEngine:
        if self._engine is None:
            # Named apart from the pools' "backoffice" so pg_stat_activity shows which connection holds the lock.
            self._engine = create_async_engine(
                self.database.settings.system_database_url, poolclass=NullPool,
                connect_args={"timeout": ATTEMPT_SECONDS,
                              "server_settings": {"application_name": "backoffice-leader"}})
        return self._engine

    async def try_acquire(self) -> bool:
        if self.is_leader:
            return await self._still_held()
        if self.database.dialect != "postgresql":
            self.is_leader = True
            return True
        async with asyncio.timeout(ATTEMPT_SECONDS * 2):
            connection = await self._lock_engine().connect()
        try:
            async with asyncio.timeout(ATTEMPT_SECONDS):
                got = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})).scalar()
                await connection.commit()
        except BaseException:
            await connection.close()
            raise
        if got:
            self._connection, self.is_leader = connection, True
            log.info("scheduler: acquired leadership")
        else:
            await connection.close()
        return self.is_leader

    async def _still_held(self) -> bool:
        if self._connection is None:
            return True  # embedded
        try:
            async with asyncio.timeout(ATTEMPT_SECONDS):
                await self._connection.execute(text("SELECT 1"))
                await self._connection.commit()
            return True
        except Exception:
            log.warning("scheduler: lost the leadership connection")
            await self.release()
            return False

    async def release(self) -> None:
        connection, self._connection, self.is_leader = self._connection, None, False
        if connection is not None:
            try:
                async with asyncio.timeout(ATTEMPT_SECONDS):
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                    await connection.commit()
            except Exception:  # the connection is gone, and with it the lock
                log.debug("scheduler: unlock on a dead connection", exc_info=True)
            finally:
                await connection.close()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
