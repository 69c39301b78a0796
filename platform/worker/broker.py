"""The one place a broker is built: Redis in production, in-process in the embedded mode."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import Database, NotFound
from backoffice.platform.outbox.service import complete_outbox_entry, settle_outbox_entries
from backoffice.platform.settings import Settings
from backoffice.platform.worker.middleware import DatabaseSessions, MissingTenant, TenantContext
from backoffice.platform.worker.registry import REGISTRY, BatchItem, BatchOutcome, JobSpec

NAMESPACE = "backoffice"


def build_broker(
    settings: Settings, *, database: Database | None = None, namespace: str = NAMESPACE
) -> dramatiq.Broker:
    """Build the broker, its middlewares and every registered job; make it dramatiq's global broker.

    ``namespace`` prefixes every Redis key: processes that share one (web, workers, scheduler) share
    queues; a separate one (a test run, a staging copy on the same Redis) never sees their messages.
    """
    import backoffice.platform.worker.actors  # noqa: F401  (registers every job)

    if settings.broker_url.startswith("redis"):
        broker: dramatiq.Broker = RedisBroker(url=settings.broker_url, namespace=namespace)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    sessions = DatabaseSessions(settings, database)
    for middleware in (AsyncIO(), CurrentMessage(), TenantContext(), sessions):
        broker.add_middleware(middleware)
    for spec in REGISTRY.values():
        _declare(broker, spec, sessions)
    dramatiq.set_broker(broker)
    return broker


def _declare(broker: dramatiq.Broker, spec: JobSpec, sessions: DatabaseSessions) -> None:
    options: dict[str, Any] = {"tenant_scoped": spec.tenant_scoped, "max_retries": 20, "batch": spec.batch,
                               **spec.options}
    # A message with no tenant will never get one: retrying it would only delay the dead letter.
    # A row that is gone (a NotFound from the tenant door) will not come back by retrying either.
    options.setdefault("throws", (MissingTenant, NotFound))

    if spec.batch:

        async def run(*args: Any, tenant_id: str | None = None, batch: list[dict[str, Any]] | None = None,
                      **kwargs: Any) -> None:
            if args:
                raise TypeError(f"{spec.name} takes keyword arguments only (ids and tenant_id)")
            if tenant_id is None:
                raise MissingTenant(f"{spec.name} called without tenant_id")
            tenant = uuid.UUID(str(tenant_id))
            items = [_batch_item(entry) for entry in (batch if batch is not None else [kwargs])]
            async with _database(sessions).provider(tenant) as session:
                await run_batch(session, spec, tenant, items)

    elif spec.tenant_scoped:

        async def run(*args: Any, tenant_id: str | None = None, **kwargs: Any) -> None:
            if args:
                raise TypeError(f"{spec.name} takes keyword arguments only (ids and tenant_id)")
            if tenant_id is None:
                raise MissingTenant(f"{spec.name} called without tenant_id")
            tenant = uuid.UUID(str(tenant_id))
            # Work handed over by the relay carries its outbox row; completing it commits with the job.
            outbox_id = kwargs.pop("outbox_id", None)
            async with _database(sessions).provider(tenant) as session:
                await spec.fn(session, tenant_id=tenant, **kwargs)
                if outbox_id is not None:
                    await complete_outbox_entry(session, tenant, uuid.UUID(str(outbox_id)))

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


async def run_batch(session: AsyncSession, spec: JobSpec, tenant_id: uuid.UUID, items: list[BatchItem]) -> BatchOutcome:
    """A batch job's work in the caller's transaction: the job, then its outbox rows completed or deferred."""
    outcome: BatchOutcome = await spec.fn(session, tenant_id=tenant_id, items=items) or BatchOutcome()
    done = [item.outbox_id for item in items if item.outbox_id is not None and item.outbox_id not in outcome.deferred]
    await settle_outbox_entries(session, tenant_id, done, outcome.deferred)
    return outcome


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
    actor = broker.get_actor(name)
    if actor.options.get("tenant_scoped"):
        if tenant_id is None:
            raise MissingTenant(f"{name} needs tenant_id")
        kwargs["tenant_id"] = str(tenant_id)
    return actor.send_with_options(kwargs=kwargs)


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
