"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.datastructures import State

from backoffice.platform import metrics
from backoffice.platform.worker.broker import ping as ping_broker

CHECK_TIMEOUT = 2.0


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, object]]:
    """Ready when the database and the broker both answer; 503 naming what failed otherwise."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(state.database.ping(), CHECK_TIMEOUT)
        checks["database"] = "ok"
    except Exception as error:  # any failure means not ready; the reason is reported, not hidden
        checks["database"] = f"error: {type(error).__name__}: {error}"[:300]
    try:
        await asyncio.wait_for(asyncio.to_thread(ping_broker, state.broker), CHECK_TIMEOUT)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {type(error).__name__}: {error}"[:300]
    ready = all(value == "ok" for value in checks.values())
    return Response({"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics_endpoint() -> Response[bytes]:
    """Prometheus metrics of this process (or of every process, in multiprocess mode): no tenant data, only
    bounded labels (``platform/metrics.py``). Not under /api and not authenticated: expose it to the scraper's
    network only (the reverse proxy should not route it)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
