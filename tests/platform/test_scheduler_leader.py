"""Only one scheduler leads: a PostgreSQL advisory lock on a dedicated connection. A standby takes over
when the leader lets go or when the leader's connection dies with its process."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backoffice.platform.db.session import Database
from backoffice.platform.scheduler.leader import Leadership

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def two_processes(database, tenants):
    """Two schedulers as two processes would have them: each with its own Database (engines, pools)."""
    other = Database(database.settings)
    first, second = Leadership(database), Leadership(other)
    try:
        yield first, second
    finally:
        await first.release()
        await second.release()
        await other.dispose()


async def _until(predicate, seconds: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if await predicate():
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)


async def test_only_one_leads_and_the_standby_takes_over_when_it_releases(two_processes):
    first, second = two_processes
    assert await first.try_acquire() is True
    assert await second.try_acquire() is False
    assert await first.try_acquire() is True  # still leading: the lock is re-checked, not re-taken
    assert await second.try_acquire() is False

    await first.release()
    assert first.is_leader is False
    assert await second.try_acquire() is True
    assert await first.try_acquire() is False


async def test_the_standby_takes_over_when_the_leaders_connection_dies(two_processes, backend):
    first, second = two_processes
    assert await first.try_acquire() is True
    leader_pid = (await first._connection.execute(text("SELECT pg_backend_pid()"))).scalar()
    await first._connection.commit()

    # The leader's process dies: PostgreSQL ends its session, and with it the lock.
    admin = create_async_engine(backend.owner_url)
    try:
        async with admin.connect() as connection:
            # An operator looking at pg_stat_activity tells the lock's connection from the pools'.
            named = await connection.scalar(text("SELECT application_name FROM pg_stat_activity WHERE pid = :pid"),
                                            {"pid": leader_pid})
            assert named == "backoffice-leader"
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": leader_pid})
    finally:
        await admin.dispose()

    assert await _until(second.try_acquire)
    # The old leader notices on its next check and stands down instead of running a second scheduler.
    assert await first.try_acquire() is False
    assert first.is_leader is False and second.is_leader is True
