"""The breaker's bookkeeping fails open (issue 18, finding 1): with its Redis gone, before or after the
provider answered, the call's outcome is the provider's answer, never a Redis error (which made the
delivery job send a delivered command again). A real Redis the test starts and kills, not a mock."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from backoffice.connectors.http import CircuitOpen, Http, ProviderError
from backoffice.platform.settings import get_settings
from tests.connectors.conftest import Answer
from tests.outages import ThrowawayRedis


@pytest.fixture
def redis_server():
    server = ThrowawayRedis().start()
    yield server
    server.stop()


def http_for(redis_url: str, tenant: uuid.UUID) -> Http:
    settings = get_settings().model_copy(update={"allow_private_targets": True, "redis_url": redis_url})
    return Http.for_instance(settings, tenant, uuid.uuid4(), kind="platform_http", timeout=2.0, retries=2,
                             backoff=0.01, threshold=2, cooldown=30.0)


async def test_redis_dying_while_the_provider_answers_does_not_undo_the_answer(provider, redis_server, caplog):
    provider.on("POST", "/commands", Answer(200, {"ok": True}, delay=0.6))
    tenant = uuid.uuid4()
    http = http_for(redis_server.url, tenant)
    call = asyncio.create_task(http.request("POST", provider.url + "/commands", idempotency_key="effect-1", json={}))
    await asyncio.sleep(0.3)  # the breaker was read; the provider is still answering
    await asyncio.to_thread(redis_server.stop)
    with caplog.at_level(logging.WARNING, logger="backoffice.connectors.http"):
        response = await call
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert len(provider.requests("POST", "/commands")) == 1
    logged = [r.getMessage() for r in caplog.records if "bookkeeping" in r.getMessage()]
    assert logged and f"tenant {tenant}" in logged[0] and "platform_http" in logged[0]
    assert provider.url not in logged[0]  # the label and kind, never the URL (a chat webhook's URL is its secret)


async def test_calls_go_through_while_redis_is_down_and_the_breaker_works_again_after(provider, redis_server):
    provider.on("GET", "/v3/payments/p1", Answer(200, {"id": "p1"}))
    provider.on("GET", "/down", Answer(503))
    http = http_for(redis_server.url, uuid.uuid4())
    await asyncio.to_thread(redis_server.stop)
    started = asyncio.get_running_loop().time()
    assert (await http.request("GET", provider.url + "/v3/payments/p1")).json() == {"id": "p1"}
    with pytest.raises(ProviderError) as failed:  # the provider's failure, not Redis's
        await http.request("GET", provider.url + "/down")
    assert failed.value.retryable and "provider answered 503" in str(failed.value)
    assert asyncio.get_running_loop().time() - started < 5.0  # no long retry loop per bookkeeping step

    await asyncio.to_thread(redis_server.start)  # back on the same port: the state is shared again
    await asyncio.sleep(1.1)  # the bookkeeping skips a Redis that just failed for a second
    for _ in range(2):
        with pytest.raises(ProviderError):
            await http.request("GET", provider.url + "/down")
    with pytest.raises(CircuitOpen):
        await http.request("GET", provider.url + "/v3/payments/p1")


async def test_an_asaas_hook_is_stored_while_the_breakers_redis_is_down(database, tenants, provider, redis_server):
    """The hook re-fetches the payment through the breaker: with its Redis down the re-fetch still happens
    and the event is stored (it answered 500 during a Redis restart)."""
    from litestar.testing import AsyncTestClient

    from backoffice.web.app import create_app
    from tests.connectors.conftest import FAST_HTTP, connector_settings
    from tests.web.test_hooks import TOKEN, asaas, asaas_hook, asaas_payment, events, post

    hook_id = await asaas(database, provider, tenants.a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment(value=199.9)))
    await asyncio.to_thread(redis_server.stop)
    app = create_app(connector_settings(database).model_copy(update={"redis_url": redis_server.url}))
    async with AsyncTestClient(app=app) as web:
        app.state.connector_http_options = FAST_HTTP
        response = await post(web, tenants.a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    [stored] = await events(database, tenants.a.id)
    assert stored.data["payment"]["amount_cents"] == 19990
    assert len(provider.requests("GET", "/v3/payments/pay_080225913252")) == 1
