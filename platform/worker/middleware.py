"""Cross-cutting concerns of every job, written once as dramatiq middlewares."""

from __future__ import annotations

import uuid

import dramatiq
from dramatiq.middleware import Middleware

from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.platform.worker.context import current_message_id, current_tenant


class MissingTenant(ValueError):
    """A tenant-scoped message arrived without a valid tenant_id: refused, never defaulted."""


class TenantContext(Middleware):
    """Reads ``tenant_id`` from every tenant-scoped message and sets it as the context of the job.

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
            raise MissingTenant(f"message {message.message_id} for {message.actor_name} has no valid tenant_id")

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
