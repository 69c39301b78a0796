"""The one place a broker is built: Redis in production, in-process in the embedded mode."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage, TimeLimit
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import Database, NotFound
from backoffice.platform.outbox.lease import HEARTBEAT, LeaseLost, let_go, take, take_waiting
from backoffice.platform.outbox.service import complete_outbox_entry, settle_outbox_entries
from backoffice.platform.settings import Settings
from backoffice.platform.worker.logcontext import JobLogContext
from backoffice.platform.worker.metrics import JobMetrics
from backoffice.platform.worker.middleware import DatabaseSessions, LoopResources, MissingTenant, TenantContext
from backoffice.platform.worker.share import running, turn
from backoffice.platform.worker.jobs import REGISTRY, BatchItem, BatchOutcome, JobSpec

NAMESPACE = "backoffice"
# The queue of work a crashed job left (its rows came back from a dead worker: ``platform/outbox/relay.py``).
# Every worker consumes it beside the jobs' own queues, so that work does not wait behind the backlog again.
RECOVERED_QUEUE = "recovered"
log = logging.getLogger(__name__)


_time_limit: TimeLimit | None = None


def _boot_in_process(broker: StubBroker) -> None:
    """Boot an in-process broker as the dramatiq CLI boots a worker process, with one TimeLimit per process.

    Booting starts TimeLimit's watchdog, a thread dramatiq never stops. The embedded runtime builds one
    broker, but a web app built without one builds its own (the suite builds hundreds): every broker after
    the first takes the process's TimeLimit instead of booting its own. Each watchdog wakes every second and
    waits for the interpreter lock; six hundred of them slowed a test run by a third and failed its timing
    tests.
    """
    global _time_limit
    own = next(m for m in broker.middleware if isinstance(m, TimeLimit))
    if _time_limit is None:
        _time_limit = own
        broker.emit_after("process_boot")
    else:
        broker.middleware[broker.middleware.index(own)] = _time_limit


def build_broker(
    settings: Settings, *, database: Database | None = None, namespace: str = NAMESPACE
) -> dramatiq.Broker:
    """Build the broker, its middlewares and every registered job; make it dramatiq's global broker.

    ``namespace`` prefixes every Redis key: processes that share one (web, workers, scheduler) share
    queues; a separate one (a test run, a staging copy on the same Redis) never sees their messages.
    """
    if not REGISTRY:
        raise RuntimeError("no job is registered: the composition root (web/entry/wiring.py compose()) runs first")
    if settings.broker_url.startswith("redis"):
        broker: dramatiq.Broker = RedisBroker(url=settings.broker_url, namespace=namespace)
    else:
        broker = StubBroker()
        _boot_in_process(broker)
    sessions = DatabaseSessions(settings, database)
    for middleware in (AsyncIO(), LoopResources(), CurrentMessage(), JobLogContext(), TenantContext(), JobMetrics(),
                       sessions):
        broker.add_middleware(middleware)
    for spec in REGISTRY.values():
        _declare(broker, spec, sessions)
    broker.declare_queue(RECOVERED_QUEUE)
    dramatiq.set_broker(broker)
    return broker


def _declare(broker: dramatiq.Broker, spec: JobSpec, sessions: DatabaseSessions) -> None:
    options: dict[str, Any] = {"tenant_scoped": spec.tenant_scoped, "max_retries": 20, "batch": spec.batch,
                               **spec.options}
    # A message with no tenant will never get one: retrying it would only delay the dead letter.
    # A row that is gone (a NotFound from the tenant door) will not come back by retrying either.
    # A job that lost its rows to another job (its lease ran out) has nothing left to do: that job does it.
    options.setdefault("throws", (MissingTenant, NotFound, LeaseLost))

    if spec.batch:

        async def run(*args: Any, tenant_id: str | None = None, batch: list[dict[str, Any]] | None = None,
                      **kwargs: Any) -> None:
            if args:
                raise TypeError(f"{spec.name} takes keyword arguments only (ids and tenant_id)")
            if tenant_id is None:
                raise MissingTenant(f"{spec.name} called without tenant_id")
            tenant = uuid.UUID(str(tenant_id))
            items = [_batch_item(entry) for entry in (batch if batch is not None else [kwargs])]
            database = _database(sessions)
            async with running(tenant), holding(database, tenant, items, job=spec.name, batch=spec.batch) as (
                    token, mine):
                if not mine:
                    return
                await turn()  # a heavier tenant's batch starts after the lighter tenants' jobs here
                async with database.provider(tenant) as session:
                    await run_batch(session, spec, tenant, mine, token=token)

    elif spec.tenant_scoped:

        async def run(*args: Any, tenant_id: str | None = None, **kwargs: Any) -> None:
            if args:
                raise TypeError(f"{spec.name} takes keyword arguments only (ids and tenant_id)")
            if tenant_id is None:
                raise MissingTenant(f"{spec.name} called without tenant_id")
            tenant = uuid.UUID(str(tenant_id))
            # Work handed over by the relay carries its outbox row; completing it commits with the job.
            outbox_id = kwargs.pop("outbox_id", None)
            database = _database(sessions)
            item = BatchItem(payload=kwargs, outbox_id=uuid.UUID(str(outbox_id)) if outbox_id else None)
            async with running(tenant), holding(database, tenant, [item]) as (token, mine):
                if not mine:
                    return
                async with database.provider(tenant) as session:
                    await spec.fn(session, tenant_id=tenant, **kwargs)
                    if item.outbox_id is not None:
                        await complete_outbox_entry(session, tenant, item.outbox_id, token=token)

    else:

        async def run(*args: Any, **kwargs: Any) -> None:
            async with _database(sessions).system() as session:
                await spec.fn(session, *args, **kwargs)

    # The wrappers return nothing: there is no result backend (effects are rows), and dramatiq logs a
    # warning for every message whose actor returns a value it has nowhere to keep.
    run.__name__ = run.__qualname__ = spec.name.replace(".", "_")
    dramatiq.Actor(
        run, broker=broker, actor_name=spec.name, queue_name=spec.queue, priority=0, options=options
    )


async def run_batch(session: AsyncSession, spec: JobSpec, tenant_id: uuid.UUID, items: list[BatchItem], *,
                    token: uuid.UUID | None = None) -> BatchOutcome:
    """A batch job's work in the caller's transaction: the job, then its outbox rows completed or deferred
    (only while ``token`` still holds them, when given: see ``platform/outbox/lease.py``)."""
    outcome: BatchOutcome = await spec.fn(session, tenant_id=tenant_id, items=items) or BatchOutcome()
    done = [item.outbox_id for item in items if item.outbox_id is not None and item.outbox_id not in outcome.deferred]
    await settle_outbox_entries(session, tenant_id, done, outcome.deferred, token=token)
    return outcome


@asynccontextmanager
async def holding(database: Database, tenant_id: uuid.UUID, items: list[BatchItem], *, job: str | None = None,
                  batch: int = 0) -> AsyncIterator[tuple[uuid.UUID | None, list[BatchItem]]]:
    """Take the message's outbox rows under a new token and keep their lease renewed while the block runs;
    yields the token (None when no item came through the outbox) and the items this job may work: those
    sent directly, and the outbox rows it took (a row it could not take is a stale copy of a row another
    job holds or finished). A batch job (``job`` and its ``batch`` size given) fills its room with the
    tenant's rows of that job waiting in the queue (``take_waiting`` in ``platform/outbox/lease.py``)."""
    ids = [item.outbox_id for item in items if item.outbox_id is not None]
    if not ids:
        yield None, items
        return
    token = uuid.uuid4()
    HEARTBEAT.hold(database, token)
    try:
        if job is not None and batch:
            taken, waiting = await take_waiting(database, tenant_id, ids, token, job=job, limit=batch - len(items))
        else:
            taken, waiting = await take(database, tenant_id, ids, token), []
        if len(taken) < len(set(ids)):
            # Routine, not news: every message whose rows an earlier job took from the queue ends here.
            log.debug("outbox: %d of %d row(s) of this message are held or finished by another job; skipped",
                      len(set(ids)) - len(taken), len(set(ids)))
        mine = [item for item in items if item.outbox_id is None or item.outbox_id in taken]
        mine.extend(_batch_item({**row.payload, "outbox_id": row.id, "attempts": row.attempts}) for row in waiting)
        try:
            yield token, mine
        except Exception:
            try:
                await let_go(database, token)
            except Exception:  # the rows come back when their lease runs out all the same
                log.warning("outbox: could not let go of a failed job's rows", exc_info=True)
            raise
    finally:
        HEARTBEAT.release(database, token)


def _batch_item(entry: dict[str, Any]) -> BatchItem:
    payload = dict(entry)
    outbox_id = payload.pop("outbox_id", None)
    attempts = int(payload.pop("attempts", 1) or 1)
    return BatchItem(payload=payload, outbox_id=uuid.UUID(str(outbox_id)) if outbox_id else None, attempts=attempts)


def _database(sessions: DatabaseSessions) -> Database:
    if sessions.database is None:
        raise RuntimeError("the worker has not booted: no database")
    return sessions.database


def enqueue(
    broker: dramatiq.Broker, name: str, /, *, tenant_id: uuid.UUID | None, **kwargs: Any
) -> dramatiq.Message:
    """Send a registered job by name; tenant jobs must be given their tenant explicitly.

    ``broker`` and ``name`` are positional-only so a job may itself take ``name=`` or ``broker=``."""
    return broker.enqueue(job_message(broker, name, tenant_id=tenant_id, **kwargs))


def job_message(
    broker: dramatiq.Broker, name: str, /, *, tenant_id: uuid.UUID | None, **kwargs: Any
) -> dramatiq.Message:
    """The message :func:`enqueue` sends, not yet sent (the relay may put it on another queue)."""
    actor = broker.get_actor(name)
    if actor.options.get("tenant_scoped"):
        if tenant_id is None:
            raise MissingTenant(f"{name} needs tenant_id")
        kwargs["tenant_id"] = str(tenant_id)
    return actor.message_with_options(kwargs=kwargs)


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
