"""The relay: hands outbox rows to the workers, fairly across tenants, and never loses one.

A round (:func:`relay_once`) is one statement that claims rows and leases them, a commit, and only then
the sends. Every claimed row gets a short ``lease_until`` (15 s) for the hand-over; the job that starts on
it takes it under its own token, its worker renews the lease while it runs, and the job completes the row
in its own transaction (``lease.py``, ``broker.py``). A relay that dies after the commit, a lost message or
a crashed worker all end the same way: the lease runs out (within 15 s) and the row is claimed again; jobs
are idempotent, so the repeat changes nothing. Before claiming, a round looks in Redis for the rows whose
hand-over ran out before any job took them (:func:`keep_waiting`, ``handover.py``): a row whose message
still waits there is not handed out again (under a backlog that made up to 9 copies of a row), and one
whose message a dead worker had fetched goes out as recovered work. Every row handed out again because its
lease ran out (a job that died holding it, a message lost or orphaned) goes on ``RECOVERED_QUEUE``, which
workers consume beside the backlog's queues: it has waited once, and must not wait behind the up to
``per_tenant_cap`` rows per tenant handed out since (measured under load: over a minute).

Fairness: a round takes at most ``per_tenant_round`` rows of each tenant (oldest first), and none of a
tenant whose leased-not-completed rows already reach ``per_tenant_cap``. The claimed rows are ordered by
their turn within their tenant (every tenant's first row, then every tenant's second row, ...) before the
``batch`` limit cuts, so a tenant with 100,000 pending rows cannot push a quiet tenant out of a round.

:class:`Relay` runs rounds back to back while there is work (lingering ``linger`` seconds after a round
of only a few rows, so a trickle of rows goes out in batches), then sleeps until PostgreSQL notifies
``backoffice_outbox`` (the AFTER INSERT trigger of migration 0002) or the poll interval passes: the
notification is only a hint (it is lost while the listener reconnects), the poll is the floor. It runs as
its own long-lived task rather than a scheduler tick, because a tick waits behind the other loops (a
sweep may take seconds) and polls at the tick's pace; :func:`ensure_background` starts it (see
``web/entry/loops.py``). Relays need no leadership: two of them never claim the same row.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import asyncpg
import dramatiq
from dramatiq.errors import ActorNotFound
from sqlalchemy import JSON, Boolean, Integer, String, Uuid, bindparam, select, text, tuple_, update
from sqlalchemy.engine import make_url

from backoffice.platform import clock, metrics
from backoffice.platform.db.base import UTCDateTime
from backoffice.platform.db.session import Database
from backoffice.platform.outbox import handover
from backoffice.platform.outbox.lease import HANDOVER_SECONDS, WORKER_SILENT_SECONDS
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.worker.broker import RECOVERED_QUEUE, job_message

log = logging.getLogger(__name__)

CHANNEL = "backoffice_outbox"  # notified by the trigger of migrations/versions/0002_spine.py
RETRY_SEND_SECONDS = 10.0  # a failed send (broker down) is retried sooner than a full lease

# PostgreSQL: per tenant, an index probe on ix_outbox_tenant_pending (tenant_id, available_at) reads the
# oldest claimable rows (the ORDER BY is the index order on purpose: adding `id` would sort every pending
# row of the tenant); the in-flight count stops at the cap. Only the rows that make the batch are then
# locked, with SKIP LOCKED: a concurrent relay skips them instead of waiting, and the lease condition is
# checked again on the locked row (READ COMMITTED re-reads a row another relay leased and committed), so
# two relays never lease one row. Locking after choosing keeps a round's writes to the batch's rows.
# The plan must not depend on statistics: a queue's table grows from nothing to 50,000 pending rows
# between two ANALYZEs, and with a nearly empty table's statistics the planner joined the chosen rows the
# other way round, scanning every pending row once per chosen row (0.2 s growing to 2 s a round during a
# flood, which delayed every tenant's hand-over). So the lock goes from the chosen rows (LATERAL fixes that
# order), each one probe of the primary key, and the UPDATE finds the locked rows by their addresses (a TID
# scan). "Not completed" is written num_nulls(completed_at) = 1 there on purpose: as `completed_at IS
# NULL` it would offer the planner the pending partial indexes (a scan of every pending row) instead of
# the key. Both conditions are checked again on the row as locked (READ COMMITTED re-reads it).
_CLAIM_POSTGRES = """
WITH candidates AS (
    SELECT c.tenant_id, c.id, c.available_at,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.available_at, c.id) AS turn
    FROM tenants t
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM outbox f
            WHERE f.tenant_id = t.id AND f.completed_at IS NULL AND f.lease_until >= :now
            LIMIT :cap
        ) leased
    ) inflight
    CROSS JOIN LATERAL (
        SELECT o.tenant_id, o.id, o.available_at FROM outbox o
        WHERE o.tenant_id = t.id AND o.completed_at IS NULL AND o.available_at <= :now
          AND (o.lease_until IS NULL OR o.lease_until < :now)
        ORDER BY o.available_at
        LIMIT greatest(0, least(:per_round, :cap - inflight.n))
    ) c
), chosen AS (
    SELECT tenant_id, id FROM candidates ORDER BY turn, available_at, id LIMIT :batch
), locked AS (
    SELECT l.* FROM chosen
    CROSS JOIN LATERAL (
        SELECT o.tenant_id, o.id, o.ctid AS row_address, o.lease_until AS previous_lease FROM outbox o
        WHERE o.tenant_id = chosen.tenant_id AND o.id = chosen.id AND num_nulls(o.completed_at) = 1
          AND (o.lease_until IS NULL OR o.lease_until < :now)
        FOR UPDATE OF o SKIP LOCKED
    ) l
), claimed AS (
    UPDATE outbox o SET lease_until = :lease_until, lease_token = NULL, dispatched_at = :now, attempts = o.attempts + 1
    WHERE o.ctid = ANY(ARRAY(SELECT row_address FROM locked))
    RETURNING o.tenant_id, o.id, o.job, o.payload, o.attempts, o.available_at
)
SELECT claimed.*, locked.previous_lease IS NOT NULL AS recovered
FROM claimed JOIN locked ON locked.tenant_id = claimed.tenant_id AND locked.id = claimed.id
"""

# SQLite (the embedded mode: one process, small volumes, writers serialised by the database lock):
# the same rule with a window over the pending rows, in one UPDATE so the claim is atomic.
_CLAIM_SQLITE = """
WITH inflight AS (
    SELECT tenant_id, count(*) AS n FROM outbox
    WHERE completed_at IS NULL AND lease_until >= :now
    GROUP BY tenant_id
), ranked AS (
    SELECT o.tenant_id, o.id, o.available_at, coalesce(i.n, 0) AS leased,
           row_number() OVER (PARTITION BY o.tenant_id ORDER BY o.available_at, o.id) AS turn
    FROM outbox o LEFT JOIN inflight i ON i.tenant_id = o.tenant_id
    WHERE o.completed_at IS NULL AND o.available_at <= :now
      AND (o.lease_until IS NULL OR o.lease_until < :now)
), chosen AS (
    SELECT tenant_id, id FROM ranked
    WHERE turn <= :per_round AND turn <= :cap - leased
    ORDER BY turn, available_at, id LIMIT :batch
)
UPDATE outbox SET lease_until = :lease_until, lease_token = NULL, dispatched_at = :now, attempts = attempts + 1
WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM chosen)
RETURNING tenant_id, id, job, payload, attempts, available_at, 0 AS recovered
"""


def _claim_statement(dialect: str):
    sql = _CLAIM_POSTGRES if dialect == "postgresql" else _CLAIM_SQLITE
    return (
        text(sql)
        .bindparams(bindparam("now", type_=UTCDateTime()), bindparam("lease_until", type_=UTCDateTime()))
        .columns(tenant_id=Uuid(), id=Uuid(), job=String(), payload=JSON(), attempts=Integer(),
                 available_at=UTCDateTime(), recovered=Boolean())
    )


@dataclass(frozen=True)
class Claimed:
    tenant_id: uuid.UUID
    id: uuid.UUID
    job: str
    payload: dict[str, Any]
    attempts: int = 1
    available_at: Any = None
    # Handed out before and its lease ran out (the job holding it died or stalled, its message was lost with
    # Redis or fetched by a worker that died, the send failed): it has waited once already, so it goes on the
    # queue of recovered work, ahead of the backlog of rows handed out since. (A deferred row, whose lease
    # was released for its retry time, is not: it is new work at that time.)
    recovered: bool = False


async def claim(
    database: Database, *, batch: int = 500, per_tenant_round: int = 100, per_tenant_cap: int = 300,
    lease_seconds: float = HANDOVER_SECONDS,
) -> list[Claimed]:
    """Lease the next fair batch of rows and commit, so no other relay takes them within the lease."""
    now = clock.now()
    params = {"now": now, "lease_until": now + timedelta(seconds=lease_seconds), "batch": batch,
              "per_round": per_tenant_round, "cap": per_tenant_cap}
    async with database.system() as session:
        if database.dialect == "postgresql":
            # The LATERAL probes make the planner's cost estimate huge though the work is small; JIT
            # compilation would then cost more than the whole round (measured: ~1 s against ~0.1 s).
            await session.execute(text("SET LOCAL jit = off"))
        rows = (await session.execute(_claim_statement(database.dialect), params)).all()
    claimed = [Claimed(r.tenant_id, r.id, r.job, r.payload or {}, r.attempts, r.available_at, bool(r.recovered))
               for r in rows]
    claimed.sort(key=lambda row: (row.available_at, row.id))  # RETURNING keeps no order; work goes oldest first
    return claimed


async def relay_once(
    database: Database, broker: dramatiq.Broker, *, batch: int = 500, per_tenant_round: int = 100,
    per_tenant_cap: int = 300, lease_seconds: float = HANDOVER_SECONDS,
) -> int:
    """One round: keep the hand-over of rows whose message still waits, claim, commit, send. Returns how
    many rows were sent to the broker."""
    started = time.perf_counter()
    orphaned = await keep_waiting(database, broker, limit=batch * 4, lease_seconds=lease_seconds)
    rows = await claim(database, batch=batch, per_tenant_round=per_tenant_round,
                       per_tenant_cap=per_tenant_cap, lease_seconds=lease_seconds)
    if not rows:
        return 0
    if orphaned:
        rows = [replace(row, recovered=True) if row.id in orphaned else row for row in rows]
    # The Redis client blocks; in the embedded mode this event loop also serves the web app.
    sent, unsent = await asyncio.to_thread(_send_all, broker, rows)
    if unsent:
        await _retry_soon(database, unsent)
    metrics.RELAY_ROUND_SECONDS.observe(time.perf_counter() - started)
    metrics.RELAY_ROWS.inc(sent)
    return sent


async def keep_waiting(database: Database, broker: dramatiq.Broker, *, limit: int = 2000,
                       lease_seconds: float = HANDOVER_SECONDS) -> set[uuid.UUID]:
    """Rows handed over and never taken whose hand-over ran out: those whose message still waits in Redis get
    another hand-over lease instead of a second copy (``handover.py``); returns the ids of those a dead
    worker had fetched, for the claim that follows to send as recovered work. Everything else (a message
    lost, Redis unreachable) is left to the claim: handed out again."""
    if not handover.tracks(broker):
        return set()
    now = clock.now()
    async with database.system() as session:
        expired = (await session.execute(
            select(OutboxEntry.tenant_id, OutboxEntry.id)
            .where(OutboxEntry.completed_at.is_(None), OutboxEntry.lease_token.is_(None),
                   OutboxEntry.lease_until.is_not(None), OutboxEntry.lease_until < now)
            .order_by(OutboxEntry.lease_until).limit(limit)
        )).all()
    if not expired:
        return set()
    try:
        waiting, orphaned = await asyncio.to_thread(handover.look_up, broker, [row.id for row in expired],
                                                    alive_within=WORKER_SILENT_SECONDS)
    except Exception:  # Redis away: its messages are likely gone with it, and the claim hands the rows out
        log.warning("relay: cannot look up %d handed-over rows in Redis; handing them out again", len(expired),
                    exc_info=True)
        return set()
    if waiting:
        keys = [(row.tenant_id, row.id) for row in expired if row.id in waiting]
        async with database.system() as session:
            # Only while still untaken and expired: a job that took the row meanwhile, or another relay that
            # claimed it, keeps it.
            await session.execute(
                update(OutboxEntry)
                .where(tuple_(OutboxEntry.tenant_id, OutboxEntry.id).in_(keys), OutboxEntry.completed_at.is_(None),
                       OutboxEntry.lease_token.is_(None), OutboxEntry.lease_until < now)
                .values(lease_until=now + timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False)
            )
    return orphaned


def _messages(broker: dramatiq.Broker, rows: list[Claimed]) -> list[list[Claimed]]:
    """The round's rows as messages: one per row, except a batch job's rows, which go together per tenant
    (at most the job's batch size to a message) so its job reads and writes them set-based. Recovered rows
    go in messages of their own (on the queue of recovered work)."""
    messages: list[list[Claimed]] = []
    open_batches: dict[tuple[uuid.UUID, str, bool], list[Claimed]] = {}
    for row in rows:
        try:
            size = broker.get_actor(row.job).options.get("batch")
        except ActorNotFound:
            size = None
        if not size:
            messages.append([row])
            continue
        key = (row.tenant_id, row.job, row.recovered)
        group = open_batches.get(key)
        if group is None or len(group) >= size:
            group = open_batches[key] = []
            messages.append(group)
        group.append(row)
    return messages


def _send(broker: dramatiq.Broker, message: list[Claimed]) -> dramatiq.Message:
    first = message[0]
    options = broker.get_actor(first.job).options
    if options.get("batch"):
        batch = [{"outbox_id": str(row.id), "attempts": row.attempts, **row.payload} for row in message]
        built = job_message(broker, first.job, tenant_id=first.tenant_id, batch=batch)
    else:
        built = job_message(broker, first.job, tenant_id=first.tenant_id, outbox_id=str(first.id), **first.payload)
    if first.recovered:
        built = built.copy(queue_name=RECOVERED_QUEUE)
    return broker.enqueue(built)


def _send_all(broker: dramatiq.Broker, rows: list[Claimed]) -> tuple[int, dict[str, list[Claimed]]]:
    """Send every row; returns how many went and the rows that did not, by reason."""
    sent, unsent = 0, defaultdict(list)
    pointers: list[tuple[uuid.UUID, str, str]] = []
    tracked = handover.tracks(broker)
    messages = _messages(broker, rows)
    for index, message in enumerate(messages):
        try:
            enqueued = _send(broker, message)
            sent += len(message)
        except ActorNotFound as error:  # a job this process does not know (mid-deploy): the others still go
            log.error("relay: outbox %s names an unknown job: %s", message[0].id, error)
            unsent[f"unknown job: {error}"].extend(message)
            continue
        except Exception as error:  # the broker is unreachable: the rest of the round would fail too
            log.exception("relay: sending outbox %s (%s) failed", message[0].id, message[0].job)
            unsent[f"send failed: {error!r}"].extend(row for later in messages[index:] for row in later)
            break
        if tracked:
            pointers.extend((row.id, enqueued.queue_name, enqueued.options["redis_message_id"]) for row in message)
    if pointers:
        try:
            handover.remember(broker, pointers)
        except Exception:  # without its pointer a row is handed out again when its lease runs out: a copy, no loss
            log.warning("relay: could not keep the hand-over pointers of %d rows", len(pointers), exc_info=True)
    return sent, unsent


async def _retry_soon(database: Database, unsent: dict[str, list[Claimed]]) -> None:
    """Shorten the lease of rows that were never sent (a full lease would delay them for minutes) and
    keep the reason on the row for operators."""
    retry_at = clock.now() + timedelta(seconds=RETRY_SEND_SECONDS)
    async with database.system() as session:
        for reason, rows in unsent.items():
            keys = [(row.tenant_id, row.id) for row in rows]
            await session.execute(
                update(OutboxEntry)
                .where(tuple_(OutboxEntry.tenant_id, OutboxEntry.id).in_(keys), OutboxEntry.completed_at.is_(None))
                .values(lease_until=retry_at, last_error=reason[:2000])
                .execution_options(synchronize_session=False)
            )


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+asyncpg://...`` as asyncpg itself wants it."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Relay:
    """Rounds back to back while there is work; otherwise asleep until notified or polled."""

    def __init__(
        self, database: Database, broker: dramatiq.Broker, *, poll_interval: float = 0.5,
        relisten_interval: float = 5.0, linger: float = 0.1, trickle: int = 10, **round_options: Any,
    ) -> None:
        self.database = database
        # After a round of fewer than ``trickle`` rows, wait ``linger`` seconds before the next: rows that
        # arrive one at a time (webhooks, a trickle of API calls) then go out in batches instead of a job
        # each, whose fixed cost would otherwise bound the rate the workers keep up with. A larger round
        # (draining a backlog) goes on at once.
        self.linger = linger
        self.trickle = trickle
        self.broker = broker
        self.poll_interval = poll_interval
        self.relisten_interval = relisten_interval
        self.round_options = round_options
        self.stopping = asyncio.Event()
        self.listening = asyncio.Event()  # set while the LISTEN connection is up (tests wait on it)
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._next_listen = 0.0

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                await self._ensure_listener()
                # Cleared before the round: a notification that arrives during it wakes the next wait.
                self._wake.clear()
                try:
                    sent = await relay_once(self.database, self.broker, **self.round_options)
                except Exception:
                    log.exception("relay: round failed; retrying after the poll interval")
                    sent = 0
                if sent:
                    if sent < self.trickle and self.linger:
                        await asyncio.sleep(self.linger)
                    continue  # there may be more: no wait for a notification while draining
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass
        finally:
            await self._close_listener()

    async def _ensure_listener(self) -> None:
        if self.database.dialect != "postgresql":
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        self.listening.clear()
        if time.monotonic() < self._next_listen:
            return
        self._next_listen = time.monotonic() + self.relisten_interval
        try:
            self._listener = await asyncpg.connect(asyncpg_dsn(self.database.settings.system_database_url))
            await self._listener.add_listener(CHANNEL, self._notified)
            self.listening.set()
        except Exception:
            log.warning("relay: cannot LISTEN %s; polling every %.1fs", CHANNEL, self.poll_interval, exc_info=True)
            await self._close_listener()

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        self.listening.clear()
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=5)
            except Exception:
                listener.terminate()


_background: dict[tuple[int, int], tuple[Relay, asyncio.Task]] = {}


def ensure_background(database: Database, broker: dramatiq.Broker, **options: Any) -> Relay:
    """Start a relay task for this database and broker unless one is running; restart one that died.

    The task lives until :func:`stop_background` or until its event loop ends (``asyncio.run`` cancels it).
    """
    key = (id(database), id(broker))
    running = _background.get(key)
    if running is not None and not running[1].done():
        return running[0]
    relay = Relay(database, broker, **options)
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    _background[key] = (relay, task)
    return relay


async def stop_background() -> None:
    running = list(_background.values())
    _background.clear()
    for relay, _ in running:
        relay.stop()
    await asyncio.gather(*(task for _, task in running), return_exceptions=True)
