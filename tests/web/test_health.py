"""Liveness and readiness as a load balancer sees them: ready only when the database and the broker
both answer, and a 503 that says which one does not (without echoing credentials).

The app builds its own Database in its lifespan, as in production: the test client serves it on
another event loop, where the test's pooled connections could not be used."""

from __future__ import annotations

import socket

import pytest
from litestar.testing import AsyncTestClient

from backoffice.platform.settings import Settings
from backoffice.web.app import create_app
from tests.conftest import SECRET, SECRETS_KEYS


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with_production_broker(database, request) -> Settings:
    """PostgreSQL goes with the Redis broker, SQLite with the in-process one, as in each mode."""
    if database.dialect != "postgresql":
        return database.settings
    return database.settings.model_copy(update={"broker_url": request.getfixturevalue("redis_available")})


async def test_healthz_answers_while_the_process_serves(database, request):
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ready_with_a_real_database_and_broker(database, tenants, request):
    settings = _with_production_broker(database, request)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_readyz_is_503_naming_the_database_when_it_is_down(redis_available, tmp_path):
    settings = Settings(
        database_url=f"postgresql+asyncpg://backoffice_app:hunter2@127.0.0.1:{_closed_port()}/backoffice",
        broker_url=redis_available, secret_key=SECRET, secrets_keys=SECRETS_KEYS, data_dir=tmp_path,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/readyz")
        alive = await client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error") and body["checks"]["broker"] == "ok"
    assert "hunter2" not in response.text
    assert alive.status_code == 200  # not ready is not dead: the orchestrator must not restart it


@pytest.mark.postgres_only
async def test_readyz_is_503_naming_the_broker_when_redis_is_down(database, tenants):
    settings = database.settings.model_copy(
        update={"broker_url": f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"})
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"].startswith("error") and body["checks"]["database"] == "ok"
    assert "hunter2" not in response.text
