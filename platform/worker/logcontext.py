"""Every log line of a job carries the job's name, its message, tenant and what it works on
(``platform/logs.py``), as a dramatiq middleware."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import dramatiq
from dramatiq.middleware import Middleware

from backoffice.platform import logs

log = logging.getLogger(__name__)
SUBJECTS = ("event_id", "run_id", "item_id", "message_id", "delivery_id")


class JobLogContext(Middleware):
    """Opens a log context per message in the worker thread; the job's coroutine inherits it (dramatiq hands
    the coroutine to its event loop with the calling thread's context, see ``TenantContext``)."""

    def __init__(self) -> None:
        self._open: dict[str, ExitStack] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        kwargs = message.kwargs or {}
        batch = kwargs.get("batch") or []
        # A batch of one names its subject like a single message does.
        source = batch[0] if len(batch) == 1 and isinstance(batch[0], dict) else kwargs
        subjects = {key: source.get(key) for key in SUBJECTS if key != "message_id"}
        if source.get("message_id"):  # the effects job's outbound message, not dramatiq's
            subjects["outbound_message_id"] = source["message_id"]
        stack = ExitStack()
        stack.enter_context(logs.scope(job=message.actor_name, message=message.message_id,
                                       tenant_id=kwargs.get("tenant_id"), batch=len(batch) or None,
                                       **{k: str(v) for k, v in subjects.items() if v}))
        self._open[message.message_id] = stack

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        stack = self._open.pop(message.message_id, None)
        if stack is not None:
            log.debug("job finished", extra={"outcome": "failed" if exception is not None else "done"})
            stack.close()

    def after_skip_message(self, broker, message) -> None:
        stack = self._open.pop(message.message_id, None)
        if stack is not None:
            log.debug("job skipped", extra={"outcome": "skipped"})
            stack.close()
