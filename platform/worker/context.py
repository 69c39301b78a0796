"""Per-message context: which tenant and which message, for the job and for every log line."""

from __future__ import annotations

import contextvars
import uuid

current_tenant: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar("current_tenant", default=None)
current_message_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_message_id", default=None)
