"""API key authentication is cached per process for a few seconds: a cached key still acts only for its
own tenant, a revocation in this process is seen at once and one from elsewhere within the TTL, expiry is
checked on every request, and last use is written at most once a minute per key, not per request. A
connection the server dropped costs no request its answer (the pool does not ping)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine

from backoffice.platform import clock
from backoffice.platform.clock import FrozenClock
from backoffice.tenants.apikeys import keys
from backoffice.tenants.apikeys.cache import TTL_SECONDS, authenticated
from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.apikeys.service import find_by_secret, revoke_api_key
from backoffice.tenants.registry.models import Tenant
from tests.web.api.conftest import ADMIN, bearer, event_data, make_key

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def later(monkeypatch):
    """Move the cache's own clock forward (its TTL runs on the monotonic clock, not the frozen one)."""
    offset = [0.0]
    base = authenticated.monotonic
    monkeypatch.setattr(authenticated, "monotonic", lambda: base() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


async def _key_row(database, secret: str) -> ApiKey:
    async with database.system() as session:
        return await find_by_secret(session, secret)


async def test_a_cached_key_acts_only_for_its_own_tenant(client, database, tenants, api_keys):
    mine, theirs = tenants.a.customer_ids[0], tenants.b.customer_ids[0]
    assert authenticated.get(keys.hash_key(api_keys.b)) is None
    for _ in range(3):  # the first request fills the cache, the next ones are served from it
        response = await client.get(f"/api/v1/customers/{mine}", headers=bearer(api_keys.b))
        assert response.status_code == 404
        listed = await client.get("/api/v1/customers", headers=bearer(api_keys.b))
        assert listed.status_code == 200 and str(mine) not in listed.text and str(theirs) in listed.text
        assert (await client.get(f"/api/v1/customers/{theirs}", headers=bearer(api_keys.b))).status_code == 200
    cached = authenticated.get(keys.hash_key(api_keys.b))
    assert cached is not None and cached.tenant_id == tenants.b.id
    assert (await client.get(f"/api/v1/customers/{mine}", headers=bearer(api_keys.a))).status_code == 200
    assert authenticated.get(keys.hash_key(api_keys.a)).tenant_id == tenants.a.id


async def test_revoking_in_this_process_refuses_the_key_at_once(client, database, tenants, api_keys):
    secret = await make_key(database, tenants.a.id)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    assert authenticated.get(keys.hash_key(secret)) is not None
    async with database.tenant(tenants.a.id) as session:
        await revoke_api_key(session, (await _key_row(database, secret)).id, acting=ADMIN)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 401
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.a))).status_code == 200


async def test_a_revocation_elsewhere_is_seen_within_the_ttl(client, database, tenants, api_keys, later):
    secret = await make_key(database, tenants.a.id)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    # Another process revokes it: this one's cache does not know yet.
    async with database.system() as session:
        await session.execute(update(ApiKey).where(ApiKey.key_hash == keys.hash_key(secret))
                              .values(revoked_at=clock.now()))
    later(TTL_SECONDS / 2)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    later(TTL_SECONDS / 2)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 401


async def test_a_suspension_elsewhere_is_seen_within_the_ttl(client, database, tenants, api_keys, later):
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.a))).status_code == 200
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.a.id)
                              .values(status="suspended", suspended_reason="unpaid"))
    later(TTL_SECONDS)
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.a))).status_code == 403
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.b))).status_code == 200


async def test_expiry_is_checked_on_every_request_even_from_the_cache(client, database, tenants):
    frozen = FrozenClock(START)
    previous = clock.use(frozen)
    try:
        secret = await make_key(database, tenants.a.id, expires_days=1)
        assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
        frozen.advance(days=1)
        assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 401
    finally:
        clock.use(previous)


async def test_last_use_is_written_once_a_minute_per_key_not_per_request(client, database, tenants, later):
    secret = await make_key(database, tenants.a.id)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    assert (await _key_row(database, secret)).last_used_at is not None
    async with database.system() as session:  # forget it, to see whether the next requests write again
        await session.execute(update(ApiKey).where(ApiKey.key_hash == keys.hash_key(secret)).values(last_used_at=None))
    for _ in range(5):
        later(TTL_SECONDS)  # even when the key is read again from the database
        assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    assert (await _key_row(database, secret)).last_used_at is None
    later(60)
    assert (await client.get("/api/v1/customers", headers=bearer(secret))).status_code == 200
    assert (await _key_row(database, secret)).last_used_at is not None


async def _drop_backend_connections(database) -> int:
    """What a server restart or an idle timeout does to the pool's connections."""
    engine = create_async_engine(database.settings.migration_database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            return len((await connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'backoffice' AND pid <> pg_backend_pid()"))).all())
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.parametrize("cached", [True, False], ids=["key-cached", "key-looked-up"])
async def test_intake_succeeds_right_after_the_server_dropped_every_connection(client, database, tenants, api_keys,
                                                                                 cached):
    h = bearer(api_keys.a)
    for n in range(3):  # fill both pools (the tenant's and the system one used by the key lookup)
        body = {"type": "payment.cleared", "source": "erp", "external_id": f"warm-{n}",
                "customer": {"tax_id": "529.982.247-25"}, "data": event_data(n)}
        assert (await client.post("/api/v1/events", headers=h, json=body)).status_code == 202
    assert await _drop_backend_connections(database) >= 1
    if not cached:
        authenticated.forget(keys.hash_key(api_keys.a))
    body = {"type": "payment.cleared", "source": "erp", "external_id": "after-drop",
            "customer": {"tax_id": "529.982.247-25"}, "data": event_data(9)}
    response = await client.post("/api/v1/events", headers=h, json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    got = await client.get(f"/api/v1/events/{response.json()['event_id']}", headers=h)
    assert got.status_code == 200
