"""With Redis configured, sessions and log-in counters live there, under keys that carry the tenant."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from backoffice.platform.ratelimit import account_key
from backoffice.web.app import create_app
from tests.web.portal.conftest import Browser


@pytest.mark.postgres_only
async def test_sessions_and_rate_limits_in_redis_carry_the_tenant(database, tenants, redis_available):
    settings = database.settings.model_copy(update={"redis_url": redis_available})
    redis = Redis.from_url(redis_available)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            browser = Browser(client)
            assert (await browser.login("/alfa", "member@alfa.example", "wrong-password!")).status_code == 400
            # The account's failures, a sliding window in a sorted set, keyed by tenant and the hashed account.
            account = f"backoffice:attempts:{tenants.a.id}:login:account:{account_key('member@alfa.example')}"
            assert await redis.zcard(account) == 1
            assert await redis.zcard(f"backoffice:attempts:{tenants.a.id}:login:address:testclient") == 1
            assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
            assert not await redis.exists(account)  # a successful log-in forgets the account's failures
            session_id = client.cookies.get("bo_session")
            assert await redis.exists(f"backoffice:portal:sessions:alfa:{session_id}")
            assert not await redis.exists(f"backoffice:portal:sessions:beta:{session_id}")
            assert (await browser.get("/alfa/inbox")).status_code == 200
            assert (await browser.get("/beta/inbox")).status_code == 303
            await browser.post_form("/alfa/inbox", "/alfa/logout", {})
            assert not await redis.exists(f"backoffice:portal:sessions:alfa:{session_id}")
    finally:
        await redis.aclose()
