"""Outages answer 503 with Retry-After, and the first requests after recovery succeed (issue 18, findings
1 and 2). The test runs its own PostgreSQL cluster and Redis on free ports and stops them for real (no
mock): PostgreSQL with ``pg_ctl stop -m immediate``, Redis killed; both come back on the same ports."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from litestar.testing import AsyncTestClient

from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.platform.ratelimit import SYNC_SECONDS
from backoffice.platform.settings import Settings
from backoffice.tenants.apikeys.service import ALL_SCOPES
from backoffice.web.app import create_app
from tests.conftest import APP_ROLE, SECRET, SECRETS_KEYS, SYSTEM_ROLE, make_tenant
from tests.outages import ThrowawayPostgres, ThrowawayRedis
from tests.web.api.conftest import bearer, make_key
from tests.web.portal.conftest import Browser



@pytest.fixture(scope="module")
def servers():
    postgres = ThrowawayPostgres().init()
    postgres.start()
    redis = ThrowawayRedis().start()
    yield postgres, redis
    redis.stop()
    try:
        postgres.stop()
    except RuntimeError:
        pass  # already stopped by a failed assertion midway
    postgres.remove()


def settings_for(postgres: ThrowawayPostgres, redis: ThrowawayRedis, tmp_path) -> Settings:
    return Settings(database_url=postgres.url("postgres", APP_ROLE), system_database_url=postgres.url("postgres", SYSTEM_ROLE),
                    migration_database_url=postgres.url("postgres", "postgres"), broker_url="memory://",
                    redis_url=redis.url, secret_key=SECRET, secrets_keys=SECRETS_KEYS, data_dir=tmp_path, db_pool_size=3)


def event(n: int) -> dict:
    return {"type": "payment.cleared", "source": "erp", "external_id": f"outage-{n}-{uuid.uuid4()}",
            "customer": {"tax_id": "45.723.174/0001-10"},
            "data": {"charge": {"external_id": f"ch-{n}", "amount_cents": 100, "due_date": "2026-05-10"},
                     "payment": {"amount_cents": 100, "paid_at": "2026-05-01T12:00:00Z"}}}


def assert_unavailable(response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0


async def test_postgres_and_redis_outages_answer_503_and_the_first_requests_after_recovery_succeed(servers, tmp_path):
    postgres, redis = servers
    settings = settings_for(postgres, redis, tmp_path)
    await asyncio.to_thread(upgrade, settings)
    database = Database(settings)
    try:
        tenant = await make_tenant(database, "alfa", "11.222.333/0001-81", [("Casa do Pão", "45.723.174/0001-10")])
        key = bearer(await make_key(database, tenant.id, scopes=ALL_SCOPES))
    finally:
        await database.dispose()
    hook = f"/hooks/alfa/{uuid.uuid4()}"
    async with AsyncTestClient(app=create_app(settings)) as client:
        warm = await client.post("/api/v1/staff/tokens", json={"email": "nobody@provider.example", "password": "y" * 12})
        assert warm.status_code == 401
        ok = await client.post("/api/v1/events", json=event(0), headers=key)
        assert ok.status_code == 202, ok.text  # every pooled connection and the key cache are warm
        assert (await client.post("/api/v1/events/batch", json={"events": [event(1)]}, headers=key)).status_code == 207

        # PostgreSQL goes away: intake and hooks say 503 with Retry-After, never 500.
        await asyncio.to_thread(postgres.stop)
        assert_unavailable(await client.post("/api/v1/events", json=event(2), headers=key))
        assert_unavailable(await client.post("/api/v1/events/batch", json={"events": [event(3)]}, headers=key))
        assert_unavailable(await client.post(hook, content=b"{}", headers={"content-type": "application/json"}))

        # Back on the same port: the pool's connections died with the server; the first requests succeed.
        await asyncio.to_thread(postgres.start)
        first = await client.post("/api/v1/events", json=event(4), headers=key)
        assert first.status_code == 202, first.text
        assert (await client.post("/api/v1/events/batch", json={"events": [event(5)]}, headers=key)).status_code == 207
        assert (await client.post(hook, content=b"{}", headers={"content-type": "application/json"})).status_code == 404
        # The staff log-in reads through the system role's engine, whose pooled connections died too.
        login = await client.post("/api/v1/staff/tokens", json={"email": "nobody@provider.example", "password": "x" * 12})
        assert login.status_code == 401, login.text

        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        assert (await browser.get("/alfa/inbox")).status_code == 200

        # Redis goes away: the API's rate limit fails open (intake goes on, logged, without RateLimit
        # headers); the staff log-in throttle fails closed with 503 (no password guessing uncounted).
        await asyncio.to_thread(redis.stop)
        # Past the in-process count's exchange period, so this request's hit asks Redis (within it, a large
        # budget is answered from the process's own count, headers included).
        await asyncio.sleep(SYNC_SECONDS + 0.05)
        during = await client.post("/api/v1/events", json=event(6), headers=key)
        assert during.status_code == 202, during.text
        assert "ratelimit-remaining" not in during.headers
        login = await client.post("/api/v1/staff/tokens", json={"email": "nobody@provider.example", "password": "x" * 12})
        assert_unavailable(login)
        # The portal keeps its sessions in Redis: a signed-in page answers 503 too.
        assert_unavailable(await client.get("/alfa/inbox"))

        # Redis back: the first requests count again and the throttle answers as usual.
        await asyncio.to_thread(redis.start)
        first = await client.post("/api/v1/events", json=event(7), headers=key)
        assert first.status_code == 202, first.text
        await asyncio.sleep(1.1)  # the rate limit skips a Redis that just failed for a second, then counts again
        after = await client.post("/api/v1/events", json=event(8), headers=key)
        assert after.status_code == 202 and "ratelimit-remaining" in after.headers
        login = await client.post("/api/v1/staff/tokens", json={"email": "nobody@provider.example", "password": "x" * 12})
        assert login.status_code == 401, login.text
        # The portal answers again at once, and signing in works.
        assert (await client.get("/alfa/inbox")).status_code < 500
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        assert (await browser.get("/alfa/inbox")).status_code == 200
