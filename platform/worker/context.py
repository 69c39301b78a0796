"""Per-message context: which tenant and which message, for the job and for every log line."""

from __future__ import annotations

import contextvars
import logging
import uuid

current_tenant: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar("current_tenant", default=None)
current_message_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_message_id", default=None)


class ContextFilter(logging.Filter):
    """Adds ``tenant`` and ``message`` to every record so logs of shared workers can be told apart."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant = str(current_tenant.get() or "-")
        record.message_id = current_message_id.get() or "-"
        return True
