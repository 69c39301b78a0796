"""Job duration and failures by job name, as a dramatiq middleware (``platform/metrics.py`` holds the metrics)."""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.middleware import Middleware

from backoffice.platform import metrics


class JobMetrics(Middleware):
    """Times every message of every job and counts the ones that raised. A skipped message (refused by
    ``TenantContext``) counts as failed: it was dead-lettered without running."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        started = self._started.pop(message.message_id, None)
        if started is not None:
            metrics.JOB_SECONDS.labels(message.actor_name).observe(time.perf_counter() - started)
        if exception is not None:
            metrics.JOB_FAILURES.labels(message.actor_name).inc()

    def after_skip_message(self, broker, message) -> None:
        self._started.pop(message.message_id, None)
        metrics.JOB_FAILURES.labels(message.actor_name).inc()

    def after_worker_shutdown(self, broker, worker) -> None:
        metrics.process_exited(os.getpid())
