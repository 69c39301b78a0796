"""Cross-cutting concerns of every job, written once as dramatiq middlewares."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware, SkipMessage

from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.platform.worker.context import current_message_id, current_tenant

log = logging.getLogger(__name__)


class MissingTenant(ValueError):
    """A tenant-scoped message arrived without a valid tenant_id: refused, never defaulted."""


class TenantContext(Middleware):
    """Reads ``tenant_id`` from every tenant-scoped message and sets it as the context of the job.

    A message without a valid one is failed and skipped: dead-lettered at once, never run, never
    retried. (Raising from ``before_process_message`` would not do: dramatiq logs any exception but
    a ``MiddlewareError`` there and runs the message anyway.)

    Context variables set here reach the job's coroutine: dramatiq hands the coroutine to its event
    loop thread with ``call_soon_threadsafe``, which copies the calling thread's context.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        current_message_id.set(message.message_id)
        actor = broker.get_actor(message.actor_name)
        if not actor.options.get("tenant_scoped", False):
            current_tenant.set(None)
            return
        raw = message.kwargs.get("tenant_id")
        try:
            current_tenant.set(uuid.UUID(str(raw)))
        except (TypeError, ValueError):
            current_tenant.set(None)
            log.error("refusing message %s for %s: no valid tenant_id (got %r); dead-lettered",
                      message.message_id, message.actor_name, raw)
            message.fail()
            raise SkipMessage(f"{message.actor_name}: message {message.message_id} has no valid tenant_id") from None

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        current_tenant.set(None)
        current_message_id.set(None)

    after_skip_message = after_process_message


class DatabaseSessions(Middleware):
    """One Database (engines and pools) per worker process, opened at boot and closed at shutdown;
    each message gets its own session from it (see ``broker._bind``)."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database

    def before_worker_boot(self, broker, worker) -> None:
        if self.database is None:
            self.database = Database(self.settings)

    def after_worker_shutdown(self, broker, worker) -> None:
        # Engines hold connections of the worker's event loop; dropping the reference closes them.
        self.database = None


# What jobs keep open on the worker's event loop from one job to the next (the webhook port's kept-alive
# clients), each an async function that closes this loop's share. Filled by the composition root.
_CLOSERS: list[Callable[[], Awaitable[None]]] = []


def close_at_worker_shutdown(closer: Callable[[], Awaitable[None]]) -> None:
    """Have ``closer`` run on the worker's event loop when the worker shuts down, before the loop stops."""
    if closer not in _CLOSERS:
        _CLOSERS.append(closer)


class LoopResources(Middleware):
    """Closes what the jobs kept open on the event loop, once the worker's threads have stopped and while the
    loop still runs (dramatiq calls ``after_*`` hooks in reverse order: this one before the AsyncIO
    middleware's, which stops the loop). Left to the garbage collector, each kept client logged an error
    at every worker shutdown."""

    def after_worker_shutdown(self, broker, worker) -> None:
        thread = get_event_loop_thread()
        if thread is None:
            return
        for closer in _CLOSERS:
            try:
                thread.run_coroutine(closer())
            except Exception:  # the next closer still runs; the process is stopping anyway
                log.exception("closing %s at worker shutdown failed", getattr(closer, "__qualname__", closer))
