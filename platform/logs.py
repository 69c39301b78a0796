"""Structured logs (structlog): one JSON object a line in production, readable lines in the demo.

Every line of a request or a job carries its context: ``request_id`` and ``tenant_id`` for a request
(``web/request_log.py``), ``job``, ``message_id``, ``tenant_id`` and ``event_id`` or ``run_id`` for a job
(``platform/worker/logcontext.py``). The standard library's loggers go through the same processors, so the
platform's existing ``log.warning(...)`` calls carry that context too.

Context lives in a per-request (per-message) dict held by a context variable: a value bound anywhere in the
request, even in a task Litestar or anyio started for a dependency, is seen by every later line.

No secrets: values under keys that name one (password, secret, token, authorization, api_key, ...) are
replaced by ``[redacted]`` in any line that carries them as fields; messages never format credentials
(the test in ``tests/platform/test_logs.py`` greps a whole scenario's logs for every secret it created).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from backoffice.platform.settings import Settings

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_context", default=None)
SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api_?key|cookie|credential", re.IGNORECASE)
REDACTED = "[redacted]"


@contextmanager
def scope(**values: Any) -> Iterator[dict[str, Any]]:
    """A fresh context for one request or one job message; ``bind`` adds to it until the block ends."""
    holder = {k: v for k, v in values.items() if v is not None}
    token = _context.set(holder)
    try:
        yield holder
    finally:
        _context.reset(token)


def bind(**values: Any) -> None:
    """Add to the current request's or job's context (nothing happens outside one)."""
    holder = _context.get()
    if holder is not None:
        holder.update({k: str(v) if not isinstance(v, (int, float, bool)) else v
                       for k, v in values.items() if v is not None})


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


def _add_context(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in (_context.get() or {}).items():
        event.setdefault(key, value)
    return event


def _redact(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key != "event" and SECRET_KEYS.search(key):
            event[key] = REDACTED
    return event


def _processors() -> list:
    return [
        structlog.stdlib.ExtraAdder(),  # a standard-library call's ``extra={...}`` fields
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_context,
        _redact,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure(*, level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> logging.Handler:
    """Route the standard library's logging and structlog's loggers through one handler on ``stream``
    (stderr), rendering JSON or readable text. Returns the handler (tests attach their own stream)."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info if json else _keep, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_processors(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler


def _keep(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    return event


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def configure_logging(settings: Settings) -> None:
    """Structured logs: JSON in production and staging, readable text in the demo,
    unless BACKOFFICE_LOG_FORMAT says otherwise."""
    log_format = settings.log_format or ("json" if settings.environment in ("production", "staging") else "text")
    configure(level=settings.log_level, json=log_format == "json")
