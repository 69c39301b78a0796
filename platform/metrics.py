"""Every Prometheus metric of the platform, in one place, and the ways they are served.

Label sets are bounded: a source, an outcome, a job name, a channel, a connector kind, a routine, a status;
never a tenant, an id or a URL, so the series count does not grow with the number of companies. The one
exception is the pair of "worst tenants" gauges, which hold at most ``WORST_TENANTS`` tenants at a time.

Serving: the web app answers ``/metrics`` (``web/app.py``); a scheduler serves its own port
(``BACKOFFICE_METRICS_PORT``); the worker command runs dramatiq's processes in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``web/entry/runtime.py``) and one extra process
(dramatiq's ``--fork-function``) serves the sum of all of them on that port.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

log = logging.getLogger(__name__)

WORST_TENANTS = 20
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):  # multiprocess mode writes a file per metric type and process: the directory must exist
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# --- intake ---------------------------------------------------------------------------------------------
# source: api (one event), api_batch, provider_webhook (web/hooks.py); outcome: accepted, duplicate, refused
# (a 4xx: the event was invalid), error (the request failed: a 5xx).
INTAKE_SOURCES = ("api", "api_batch", "provider_webhook")
INTAKE_OUTCOMES = ("accepted", "duplicate", "refused", "error")
INTAKE_EVENTS = Counter("backoffice_intake_events_total", "Events received, by source and outcome.",
                        ["source", "outcome"])
INTAKE_SECONDS = Histogram(
    "backoffice_intake_seconds",
    "Time to store one intake request, by source and the request's outcome (accepted: it stored at least one "
    "new event; duplicate: only known events; refused: invalid; error: failed).",
    ["source", "outcome"], buckets=LATENCY_BUCKETS)

# Every HTTP request the app routed: route is the handler's path template (bounded by the code), status the code.
HTTP_REQUESTS = Counter("backoffice_http_requests_total", "HTTP requests answered, by method, route template and "
                        "status.", ["method", "route", "status"])

# --- outbox and relay -----------------------------------------------------------------------------------
OUTBOX_BACKLOG = Gauge("backoffice_outbox_backlog", "Outbox rows due and not completed (all tenants).",
                       multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge("backoffice_outbox_oldest_age_seconds",
                          "Seconds since the oldest due, uncompleted outbox row became due (0: none).",
                          multiprocess_mode="max")
OUTBOX_TENANT_BACKLOG = Gauge(
    "backoffice_outbox_tenant_backlog",
    f"Due, uncompleted outbox rows of the {WORST_TENANTS} tenants with the most (only those tenants).",
    ["tenant_id"], multiprocess_mode="max")
OUTBOX_TENANT_OLDEST_AGE = Gauge(
    "backoffice_outbox_tenant_oldest_age_seconds",
    f"Age of the oldest due outbox row of the {WORST_TENANTS} tenants waiting longest (only those tenants).",
    ["tenant_id"], multiprocess_mode="max")
OUTBOX_SAMPLED_AT = Gauge("backoffice_outbox_sampled_timestamp_seconds",
                          "When the leading scheduler last measured the outbox (Unix time).", multiprocess_mode="max")
RELAY_ROUND_SECONDS = Histogram("backoffice_relay_round_seconds",
                                "Time of one relay round that found work (claim, commit, send).",
                                buckets=LATENCY_BUCKETS)
RELAY_ROWS = Counter("backoffice_relay_rows_total", "Outbox rows the relay handed to the broker.")

# --- jobs -----------------------------------------------------------------------------------------------
JOB_SECONDS = Histogram("backoffice_job_seconds", "Time a job message took, by job name.", ["job"],
                        buckets=JOB_BUCKETS)
JOB_FAILURES = Counter("backoffice_job_failures_total", "Job messages that raised, by job name.", ["job"])

# --- deliveries and dead letters ------------------------------------------------------------------------
# channel: the outbound channel (email, sms, whatsapp, chat, ...) or "webhook"; outcome: sent, failed (will be
# retried), dead (given up).
DELIVERIES = Counter("backoffice_deliveries_total", "Delivery attempts, by channel and outcome.",
                     ["channel", "outcome"])
DEAD_LETTERS = Counter("backoffice_dead_letters_total",
                       "Work given up and left for staff: kind is message, webhook or outbox.", ["kind"])

# --- connectors -----------------------------------------------------------------------------------------
# outcome: ok, refused (the provider answered 4xx), failed (no usable answer after the retries),
# circuit_open (not attempted: the instance's circuit is open).
CONNECTOR_CALLS = Counter("backoffice_connector_calls_total", "Calls to providers, by connector kind and outcome.",
                          ["kind", "outcome"])
CIRCUIT_TRANSITIONS = Counter(
    "backoffice_connector_circuit_transitions_total",
    "Circuit breakers of connector instances changing state, by connector kind and new state (open, closed).",
    ["kind", "state"])

# --- routines, scheduler, database ----------------------------------------------------------------------
ROUTINE_RUNS = Counter("backoffice_routine_runs_total", "Routine runs finished, by routine and status.",
                       ["routine", "status"])
SCHEDULER_LEADER = Gauge("backoffice_scheduler_leader", "1 while this scheduler process leads, else 0.",
                         multiprocess_mode="max")
DB_POOL_IN_USE = Gauge("backoffice_db_pool_in_use", "Database connections checked out, by engine.",
                       ["engine"], multiprocess_mode="livesum")


# --- recording helpers ----------------------------------------------------------------------------------

@contextmanager
def intake(source: str) -> Iterator[dict[str, int]]:
    """Time one intake request and count its events. The block adds to ``counts`` (accepted, duplicate,
    refused). An exception that is the client's fault (a 4xx: ``status`` or ``status_code`` below 500) refuses
    the request, which stored nothing (the transaction rolls back); any other is an error (a 5xx)."""
    counts = {"accepted": 0, "duplicate": 0, "refused": 0}
    started = time.perf_counter()
    outcome = "error"
    try:
        yield counts
        outcome = next((o for o in ("accepted", "duplicate", "refused") if counts[o]), "accepted")
    except Exception as error:
        status = getattr(error, "status", None) or getattr(error, "status_code", None) or 500
        if 400 <= int(status) < 500:
            outcome = "refused"
            counts.update(accepted=0, duplicate=0, refused=max(1, counts["refused"]))
        raise
    finally:
        INTAKE_SECONDS.labels(source, outcome).observe(time.perf_counter() - started)
        if outcome == "error":
            INTAKE_EVENTS.labels(source, "error").inc()
        else:
            for name, number in counts.items():
                if number:
                    INTAKE_EVENTS.labels(source, name).inc(number)


def set_outbox(total: int, oldest: datetime | None, worst_backlog: dict[str, int],
               worst_age: dict[str, float], now: datetime) -> None:
    """Publish one measurement of the outbox; tenants that left the worst list lose their series."""
    OUTBOX_BACKLOG.set(total)
    OUTBOX_OLDEST_AGE.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    for gauge, values in ((OUTBOX_TENANT_BACKLOG, worst_backlog), (OUTBOX_TENANT_OLDEST_AGE, worst_age)):
        gauge.clear()
        for tenant, value in values.items():
            gauge.labels(tenant).set(value)
    OUTBOX_SAMPLED_AT.set(now.timestamp())


def forget_outbox() -> None:
    """A scheduler that does not lead measures nothing: it publishes no stale outbox figures."""
    for gauge in (OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_SAMPLED_AT):
        gauge.set(0)
    OUTBOX_TENANT_BACKLOG.clear()
    OUTBOX_TENANT_OLDEST_AGE.clear()


def instrument_pool(engine, name: str) -> None:
    """Count an engine's checked-out connections (pool events on the engine, so a pool rebuilt by
    ``dispose()`` is counted too; a NullPool checks out a connection per use, counted the same)."""
    from sqlalchemy import event

    gauge = DB_POOL_IN_USE.labels(name)
    event.listen(engine.sync_engine, "checkout", lambda *_: gauge.inc())
    event.listen(engine.sync_engine, "checkin", lambda *_: gauge.dec())


# --- serving --------------------------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: this process's registry, or the sum of every process in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve this process's metrics on ``port`` (a thread; the scheduler)."""
    start_http_server(port, addr=host)
    log.info("metrics served on port %d", port)


def serve_worker_metrics() -> int:
    """dramatiq ``--fork-function``: one process that serves the sum of every worker process's metrics."""
    port = int(os.environ["BACKOFFICE_METRICS_PORT"])
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=os.environ.get("BACKOFFICE_METRICS_HOST", "0.0.0.0"), registry=registry)
    log.info("worker metrics served on port %d", port)
    while True:
        time.sleep(3600)


def process_exited(pid: int) -> None:
    """A worker process is gone: its live gauges stop counting."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
