"""Only one scheduler acts at a time: a PostgreSQL session-level advisory lock held on a dedicated
connection. If that process dies its connection closes and the lock passes to a standby. In the embedded
mode (SQLite, one process) the only scheduler is the leader."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from backoffice.platform.db.session import Database

LOCK_KEY = 0x6B6F_0001  # arbitrary, fixed: "the backoffice scheduler"
log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._connection: AsyncConnection | None = None
        self.is_leader = False

    async def try_acquire(self) -> bool:
        if self.is_leader:
            return await self._still_held()
        if self.database.dialect != "postgresql":
            self.is_leader = True
            return True
        connection = await self.database.system_engine.connect()
        try:
            got = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})).scalar()
            await connection.commit()
        except Exception:
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
