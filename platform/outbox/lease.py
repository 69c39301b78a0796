"""Outbox leases: short, held by the job that runs the rows, renewed by its worker while it runs.

A crashed worker's rows must come back in seconds, and a job that runs for minutes (a routine item at a
slow provider, a large batch) must never lose its rows while it is alive. So a lease is short and renewed:

- **hand-over** (the relay's claim): ``lease_until = now + HANDOVER_SECONDS``, ``lease_token`` NULL. When it
  runs out on a row no job took, the relay looks in Redis (``handover.py``): a message still waiting there
  keeps the row for another hand-over (a second copy would only queue behind the first); a message lost
  with Redis, or fetched by a worker that died, is handed out again at once.
- **take** (:func:`take`, one UPDATE when a job starts): the message's rows that are still open, handed
  out (leased: a deferred row waiting for its retry time is not), and not held by a live job (no token,
  or its lease ran out) get the job's token and a fresh lease. A row the statement does not return is a
  stale copy: the relay handed it out again and another job has it or finished it; the job leaves it
  alone. A copy that waited in the queue longer than the lease still works
  (nobody holds its row), so a backlog longer than the lease never starves a row.
- **take waiting rows too** (:func:`take_waiting`, batch jobs on PostgreSQL): a batch job with room left takes,
  in the same statement, the tenant's other rows of its job that are handed over and waiting in the queue
  (leased, no token). The relay cuts batches by what it finds pending; while the workers keep up, that is
  a few rows a round, and when they fall behind those small messages pile up in the queue, each paying a
  job's fixed cost: the workers then fall further behind (measured: the notification latency at half the
  maximum rate grew through the run, p99 2.6-4.5 s). A job that takes the waiting rows runs them as one
  batch; their own messages then find them held or finished and are skipped like any stale copy.
- **heartbeat** (:class:`Heartbeat`): every ``HEARTBEAT_SECONDS`` (5 s) each worker process renews, in ONE
  statement, the lease of every row its running jobs hold (by token: the partial index
  ``ix_outbox_lease_token`` reaches exactly those rows). A process that dies stops renewing, and its rows
  are claimable ``LEASE_SECONDS`` (15 s) later at most; the relay sends them on the queue of recovered work
  (``RECOVERED_QUEUE``), which every worker consumes beside the others, so they do not wait behind the
  backlog a second time. Measured under load: a killed worker's rows done 16–34 s after the kill
  (tests/perf/README.md, "Faults").
- **settle** (``service.py``): completion and deferral touch only rows still under the job's token; if any
  is not, :class:`LeaseLost` is raised and the job's transaction rolls back: the rows belong to another job
  now, which does the work (effects are keyed, so doing it there changes nothing twice).

dramatiq's own recovery of a dead worker's unacknowledged messages (its Redis broker puts them back after
its 60 s heartbeat timeout, at its queue maintenance's random moment) is left as it is: by then the relay
has handed the rows out again, so those messages are stale copies that ``take`` skips (one UPDATE each).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, Uuid, bindparam, or_, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import UTCDateTime
from backoffice.platform.db.retry import again_if_disconnected
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0  # a taken row's lease and each renewal: the longest a crashed job's rows wait
HEARTBEAT_SECONDS = 5.0  # three beats per lease: one or two slow beats do not lose a live job's rows
# The relay's hand-over. When it runs out on a row no job took, the relay looks in Redis before handing the
# row out again: a message still waiting there keeps its row for another hand-over (``handover.py``).
HANDOVER_SECONDS = 15.0
# A worker process whose dramatiq heartbeat is older than this is dead: the messages it fetched and never
# started are handed out again (a live one polls Redis at least every second, or acknowledges a message).
WORKER_SILENT_SECONDS = 15.0


class LeaseLost(RuntimeError):
    """The job no longer holds some of its outbox rows (its lease ran out and another job took them)."""


@asynccontextmanager
async def _statement(database: Database) -> AsyncIterator[AsyncConnection | AsyncSession]:
    """Where a lease statement runs. On PostgreSQL an autocommit connection of the system role: the
    statement is its own transaction, one round trip instead of BEGIN, UPDATE, COMMIT (each job takes its
    rows once, each worker beats every 5 s). On SQLite (the embedded mode) a system session."""
    if database.dialect != "postgresql":
        async with database.system() as session:
            yield session
        return
    async with database.system_engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


async def take(database: Database, tenant_id: uuid.UUID, ids: list[uuid.UUID], token: uuid.UUID) -> set[uuid.UUID]:
    """Take the rows a starting job was handed; returns those it now holds under ``token``."""
    if not ids:
        return set()
    now = clock.now()
    statement = (
        update(OutboxEntry)
        .where(OutboxEntry.tenant_id == tenant_id, OutboxEntry.id.in_(ids), OutboxEntry.completed_at.is_(None),
               # Handed out by the relay (a deferred row has no lease: a stale copy must not run it before
               # its time); not compared with available_at, which another process's clock wrote.
               OutboxEntry.lease_until.is_not(None),
               # ours already: a retry of this statement after a connection lost once it had committed
               or_(OutboxEntry.lease_token.is_(None), OutboxEntry.lease_token == token, OutboxEntry.lease_until < now))
        .values(lease_token=token, lease_until=now + timedelta(seconds=LEASE_SECONDS))
        .returning(OutboxEntry.id)
        .execution_options(synchronize_session=False)
    )

    async def run() -> set[uuid.UUID]:
        async with _statement(database) as connection:
            return set((await connection.execute(statement)).scalars())

    return await again_if_disconnected(run)


# The rows the message names, as ``take`` takes them, and up to :limit more of the tenant's rows of the same
# job that the relay handed over and no job took yet (their messages wait in the queue), oldest first.
# Every lock is taken with SKIP LOCKED, the named rows' too: two jobs each taking the other's waiting rows
# would otherwise wait on each other (measured: deadlocks, found by PostgreSQL after its 1 s
# deadlock_timeout). A named row another job has locked is being taken or settled by that job; it is not
# this one's, and a skipped row is never lost (its lease runs out and the relay hands it out again). The
# waiting rows are found through ix_outbox_inflight (tenant, lease_until; open and leased rows only: at
# most the relay's per-tenant cap of them); the job name is compared in the filter. Rows already under
# :token are taken again, as ``take`` does: a retry after the connection dropped once the statement had
# committed gets the same rows back rather than leaving them held by a job that does not know them.
_TAKE_WAITING = text("""
WITH named AS (
    SELECT n.id FROM outbox n
    WHERE n.tenant_id = :tenant AND n.id = ANY(:ids) AND n.completed_at IS NULL AND n.lease_until IS NOT NULL
      AND (n.lease_token IS NULL OR n.lease_token = :token OR n.lease_until < :now)
    FOR UPDATE SKIP LOCKED
), waiting AS (
    SELECT w.id FROM outbox w
    WHERE w.tenant_id = :tenant AND w.completed_at IS NULL AND w.lease_until IS NOT NULL
      AND w.lease_until >= :now AND (w.lease_token IS NULL OR w.lease_token = :token) AND w.job = :job
      AND w.id <> ALL(:ids)
    ORDER BY w.available_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET lease_token = :token, lease_until = :until
WHERE o.tenant_id = :tenant AND o.id IN (SELECT id FROM named UNION ALL SELECT id FROM waiting)
RETURNING o.id, o.id = ANY(:ids) AS named, o.payload, o.attempts
""").bindparams(bindparam("now", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()),
                bindparam("ids", type_=ARRAY(Uuid())), bindparam("tenant", type_=Uuid()),
                bindparam("token", type_=Uuid())).columns(id=Uuid(), named=Boolean(), payload=JSON(), attempts=Integer())


@dataclass(frozen=True)
class Waiting:
    """A row a batch job took beside its message's own: its payload and how many times it was handed out."""

    id: uuid.UUID
    payload: dict[str, Any]
    attempts: int


async def take_waiting(database: Database, tenant_id: uuid.UUID, ids: list[uuid.UUID], token: uuid.UUID, *,
                       job: str, limit: int) -> tuple[set[uuid.UUID], list[Waiting]]:
    """:func:`take`, and up to ``limit`` of the tenant's rows of ``job`` waiting in the queue; returns the
    named rows now held and the waiting rows taken (oldest first). PostgreSQL only (SQLite has no SKIP
    LOCKED, and the embedded mode's one worker keeps up with its volumes): elsewhere, :func:`take`."""
    if database.dialect != "postgresql" or limit <= 0:
        return await take(database, tenant_id, ids, token), []
    now = clock.now()
    params = {"tenant": tenant_id, "ids": list(ids), "token": token, "job": job, "limit": limit, "now": now,
              "until": now + timedelta(seconds=LEASE_SECONDS)}

    async def run() -> tuple[set[uuid.UUID], list[Waiting]]:
        async with _statement(database) as connection:
            rows = (await connection.execute(_TAKE_WAITING, params)).all()
        named = {row.id for row in rows if row.named}
        waiting = [Waiting(row.id, row.payload or {}, row.attempts or 1) for row in rows if not row.named]
        return named, waiting

    return await again_if_disconnected(run)


async def renew(database: Database, tokens: list[uuid.UUID]) -> int:
    """Extend the lease of every open row held under ``tokens``: one statement, however many rows."""
    if not tokens:
        return 0
    async with _statement(database) as connection:
        result = await connection.execute(
            update(OutboxEntry)
            .where(OutboxEntry.lease_token.in_(tokens), OutboxEntry.completed_at.is_(None))
            .values(lease_until=clock.now() + timedelta(seconds=LEASE_SECONDS))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0


async def let_go(database: Database, token: uuid.UUID) -> None:
    """A job that failed lets go of its rows (their lease runs on): dramatiq's retry of the message may take
    them at once instead of being skipped as a stale copy until the lease runs out."""
    async with _statement(database) as connection:
        await connection.execute(
            update(OutboxEntry)
            .where(OutboxEntry.lease_token == token, OutboxEntry.completed_at.is_(None))
            .values(lease_token=None)
            .execution_options(synchronize_session=False)
        )


class Heartbeat:
    """The tokens of the jobs running in this process, and the task that renews their leases.

    Jobs run as coroutines on the worker's event loop (dramatiq's AsyncIO middleware); the beat is a task
    on the same loop, started by the first job that holds rows and ended when none does, so it shares the
    jobs' database engine (kept per loop: an engine's connections belong to the loop that opened them).
    """

    def __init__(self, every: float = HEARTBEAT_SECONDS) -> None:
        self.every = every
        self._held: dict[asyncio.AbstractEventLoop, dict[int, tuple[Database, Counter[uuid.UUID]]]] = {}
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}

    def hold(self, database: Database, token: uuid.UUID) -> None:
        loop = asyncio.get_running_loop()
        self._held.setdefault(loop, {}).setdefault(id(database), (database, Counter()))[1][token] += 1
        task = self._tasks.get(loop)
        if task is None or task.done():
            self._tasks[loop] = loop.create_task(self._run(loop), name="outbox-lease-heartbeat")

    def release(self, database: Database, token: uuid.UUID) -> None:
        loop = asyncio.get_running_loop()
        databases = self._held.get(loop, {})
        entry = databases.get(id(database))
        if entry is None:
            return
        tokens = entry[1]
        tokens[token] -= 1
        if tokens[token] <= 0:
            del tokens[token]
        if not tokens:
            del databases[id(database)]
        if not databases:
            self._held.pop(loop, None)

    def held(self) -> list[uuid.UUID]:
        """The tokens held on the running loop."""
        databases = self._held.get(asyncio.get_running_loop(), {})
        return [token for _, tokens in databases.values() for token in tokens]

    async def beat(self) -> int:
        """Renew the running loop's leases now; returns how many rows were renewed."""
        renewed = 0
        for database, tokens in list(self._held.get(asyncio.get_running_loop(), {}).values()):
            renewed += await renew(database, list(tokens))
        return renewed

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._held.get(loop):
                await asyncio.sleep(self.every)
                try:
                    await self.beat()
                except Exception:  # a missed beat costs nothing yet: the lease outlives two more
                    log.warning("outbox lease heartbeat failed; retrying in %.0fs", self.every, exc_info=True)
        finally:
            if self._tasks.get(loop) is asyncio.current_task():
                del self._tasks[loop]


HEARTBEAT = Heartbeat()
