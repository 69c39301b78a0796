"""Per-key rate limits (headers, 429, per tenant and key) and Stripe-style Idempotency-Key on POST."""

from __future__ import annotations

import asyncio

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from backoffice.tenants.apikeys.models import ApiKey, IdempotencyRecord
from backoffice.tenants.customers.models import Customer
from backoffice.web.app import create_app
from tests.web.api.conftest import bearer, make_key

LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                 "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


async def _limit_keys(database, tenant_id, per_minute: int) -> None:
    async with database.tenant(tenant_id) as session:
        await session.execute(update(ApiKey).values(rate_limit_per_minute=per_minute))


async def _exhaust_and_check(client, database, tenants, api_keys) -> None:
    await _limit_keys(database, tenants.a.id, 3)
    h = bearer(api_keys.a)
    answers = [await client.get("/api/v1/customers", headers=h) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers[name] for a in answers for name in LIMIT_HEADERS)
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    refused = await client.get("/api/v1/customers", headers=h)
    assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    # Errors count and carry the headers too; another key of the same tenant and the other tenant do not share
    # the budget.
    other_key = await make_key(database, tenants.a.id)
    assert (await client.get("/api/v1/customers", headers=bearer(other_key))).status_code == 200
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.b))).status_code == 200


async def test_rate_limit_in_process(client, database, tenants, api_keys):
    await _exhaust_and_check(client, database, tenants, api_keys)


@pytest.mark.postgres_only
async def test_rate_limit_in_redis_keys_carry_tenant_and_key(database, tenants, api_keys, redis_available):
    import redis.asyncio as redis

    settings = database.settings.model_copy(update={"redis_url": redis_available})
    async with AsyncTestClient(app=create_app(settings)) as client:
        await _exhaust_and_check(client, database, tenants, api_keys)
    connection = redis.Redis.from_url(redis_available)
    try:
        names = [k.decode() async for k in connection.scan_iter(match=f"backoffice:rl:{tenants.a.id}:key:*")]
    finally:
        await connection.aclose()
    async with database.tenant(tenants.a.id) as session:
        key_ids = {str(k) for k in (await session.execute(select(ApiKey.id))).scalars()}
    assert names and all(name.split(":")[4] in key_ids for name in names)


async def test_same_key_same_body_replays_the_first_answer(client, database, tenants, api_keys):
    h = bearer(api_keys.a) | {"Idempotency-Key": "create-padaria-1"}
    body = {"name": "Padaria", "tax_id": "11.444.777/0001-61"}
    first = await client.post("/api/v1/customers", headers=h, json=body)
    again = await client.post("/api/v1/customers", headers=h, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    async with database.tenant(tenants.a.id) as session:
        assert (await session.execute(select(func.count()).select_from(Customer)
                                      .where(Customer.name == "Padaria"))).scalar_one() == 1
    different = await client.post("/api/v1/customers", headers=h, json=body | {"name": "Other"})
    assert different.status_code == 422 and different.json()["errors"][0]["field"] == "Idempotency-Key"
    # The key is the tenant's own: the other tenant may use the same string for its own request.
    other = await client.post("/api/v1/customers", headers=bearer(api_keys.b) | {"Idempotency-Key": "create-padaria-1"},
                              json=body)
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in other.headers


async def test_a_refused_request_is_replayed_and_a_server_error_is_not_kept(client, database, tenants, api_keys):
    h = bearer(api_keys.a) | {"Idempotency-Key": "bad-1"}
    first = await client.post("/api/v1/customers", headers=h, json={"name": "", "tax_id": "1"})
    again = await client.post("/api/v1/customers", headers=h, json={"name": "", "tax_id": "1"})
    assert first.status_code == again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    async with database.tenant(tenants.b.id) as session:  # tenant b's session cannot see a's records
        assert (await session.execute(select(func.count()).select_from(IdempotencyRecord))).scalar_one() == 0


async def test_a_concurrent_request_with_the_same_key_is_a_conflict(client, database, tenants, api_keys):
    # The first request holds its reservation while the second arrives: simulate the in-flight one by
    # reserving the key as the middleware does, then asking again.
    from backoffice.tenants.apikeys.service import find_by_secret
    from backoffice.web.api.idempotency import _reserve

    async with database.system() as session:
        key_id = (await find_by_secret(session, api_keys.a)).id

    class Principal:  # the reservation is the key's own: it is made by (and only blocks) that key
        tenant_id = tenants.a.id

    Principal.key_id = key_id

    scope = {"method": "POST", "path": "/api/v1/customers"}
    assert await _reserve(database, Principal, "in-flight", "hash", scope) is None
    response = await client.post("/api/v1/customers", headers=bearer(api_keys.a) | {"Idempotency-Key": "in-flight"},
                                 json={"name": "X", "tax_id": "11.444.777/0001-61"})
    assert response.status_code == 409 and response.json()["errors"][0]["field"] == "Idempotency-Key"
    body = {"name": "Y", "tax_id": "11.444.777/0001-61"}
    racers = await asyncio.gather(*(client.post("/api/v1/customers", json=body, headers=bearer(api_keys.a)
                                                | {"Idempotency-Key": "race"}) for _ in range(3)))
    statuses = sorted(r.status_code for r in racers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    replayed = [r for r in racers if r.status_code == 201 and r.headers.get("Idempotent-Replayed")]
    created = [r for r in racers if r.status_code == 201]
    assert all(r.json() == created[0].json() for r in created) and len(replayed) == len(created) - 1
    async with database.tenant(tenants.a.id) as session:
        assert (await session.execute(select(func.count()).select_from(Customer)
                                      .where(Customer.name == "Y"))).scalar_one() == 1


async def test_body_size_is_limited(client, api_keys):
    big = {"name": "x" * (2 * 1024 * 1024), "tax_id": "1"}
    response = await client.post("/api/v1/customers", headers=bearer(api_keys.a) | {"Idempotency-Key": "big"},
                                 json=big)
    assert response.status_code == 413
    response = await client.post("/api/v1/customers", headers=bearer(api_keys.a), json=big)
    assert response.status_code == 413


async def test_records_expire_after_a_day(client, database, tenants, api_keys):
    from datetime import timedelta

    from backoffice.platform import clock
    from backoffice.platform.clock import FrozenClock

    h = bearer(api_keys.a) | {"Idempotency-Key": "daily"}
    first = await client.post("/api/v1/customers", headers=h, json={"name": "A", "tax_id": "11.444.777/0001-61"})
    assert first.status_code == 201
    previous = clock.use(FrozenClock(clock.now() + timedelta(hours=24, seconds=1)))
    try:
        # A day later the key is free again: a new request with it runs (and is refused as a duplicate CNPJ).
        later = await client.post("/api/v1/customers", headers=h, json={"name": "B", "tax_id": "11.444.777/0001-61"})
    finally:
        clock.use(previous)
    assert later.status_code == 409 and "Idempotent-Replayed" not in later.headers
    async with database.tenant(tenants.a.id) as session:
        rows = (await session.execute(select(IdempotencyRecord))).scalars().all()
    assert [r.request_hash != "" and r.response_status for r in rows] == [409]


async def test_a_stored_answer_is_replayed_only_to_its_own_key_and_within_its_scopes(client, database, tenants,
                                                                                      api_keys):
    """Another key of the same company repeating a request (same Idempotency-Key, same body) never gets the
    first key's answer: without the route's scope it is refused before any replay; with it, its own request
    runs."""
    body = {"name": "ERP", "scopes": ["customers:read"]}
    first = await client.post("/api/v1/keys", headers=bearer(api_keys.a) | {"Idempotency-Key": "mint-1"}, json=body)
    assert first.status_code == 201, first.text
    reader = await make_key(database, tenants.a.id, scopes=["customers:read"])
    stolen = await client.post("/api/v1/keys", headers=bearer(reader) | {"Idempotency-Key": "mint-1"}, json=body)
    assert stolen.status_code == 403 and "keys:write" in stolen.json()["title"], stolen.text
    assert "Idempotent-Replayed" not in stolen.headers and first.json()["id"] not in stolen.text
    colleague = await make_key(database, tenants.a.id, scopes=["keys:write", "customers:write"])
    own = await client.post("/api/v1/keys", headers=bearer(colleague) | {"Idempotency-Key": "mint-1"}, json=body)
    assert own.status_code == 201 and "Idempotent-Replayed" not in own.headers, own.text
    assert own.json()["id"] != first.json()["id"] and own.json()["secret"].startswith("bo_live_")


async def test_one_time_secrets_are_not_stored_and_a_replay_says_they_were_withheld(client, database, tenants,
                                                                                     api_keys):
    from backoffice.tenants.webhooks import service as webhooks
    from tests.web.api.conftest import ADMIN

    h = bearer(api_keys.a) | {"Idempotency-Key": "mint-2"}
    body = {"name": "ERP", "scopes": ["customers:read"]}
    first = await client.post("/api/v1/keys", headers=h, json=body)
    again = await client.post("/api/v1/keys", headers=h, json=body)
    assert first.status_code == again.status_code == 201
    secret = first.json()["secret"]
    assert secret.startswith("bo_live_") and "Idempotent-Secret-Withheld" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Idempotent-Secret-Withheld"] == "secret"
    assert again.json() == first.json() | {"secret": None}
    assert (await client.get(f"/api/v1/keys/{first.json()['id']}", headers=bearer(api_keys.a))).status_code == 200

    async with database.tenant(tenants.a.id) as session:
        hook, _ = await webhooks.create_endpoint(
            session, url="http://127.0.0.1:9/hook", acting=ADMIN,
            settings=database.settings.model_copy(update={"allow_private_targets": True}))
    rotate = bearer(api_keys.a) | {"Idempotency-Key": "rotate-1"}
    rotated = await client.post(f"/api/v1/webhooks/{hook.id}/rotate-secret", headers=rotate, json={})
    replayed = await client.post(f"/api/v1/webhooks/{hook.id}/rotate-secret", headers=rotate, json={})
    assert rotated.status_code == replayed.status_code == 201, rotated.text
    whsec = rotated.json()["secret"]
    assert whsec.startswith("whsec_") and replayed.json() == {"secret": None}
    assert replayed.headers["Idempotent-Secret-Withheld"] == "secret"
    async with database.tenant(tenants.a.id) as session:
        stored = " ".join(f"{r.response_body} {r.response_headers}"
                          for r in (await session.execute(select(IdempotencyRecord))).scalars())
    assert first.json()["id"] in stored and secret not in stored and whsec not in stored
    assert secret[8:20] not in stored and whsec[6:20] not in stored


def test_every_answer_with_a_secret_declares_it_one_time():
    """A route added tomorrow that returns a secret is covered: its model's field is marked, and the
    idempotency layer reads the mark from the route."""
    from litestar.routes import HTTPRoute

    from backoffice.web.api.schemas import one_time_secret_fields

    found = {}
    for route in create_app().routes:
        # The staff API is outside the idempotency layer (its one secret, a staff token, is never replayed).
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/v1") or "/staff" in route.path:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            model = handler.parsed_fn_signature.return_type.annotation
            fields = getattr(model, "model_fields", {})
            if any(name == "secret" or name.endswith("_secret") for name in fields):
                found[(method, route.path)] = handler.opt.get("one_time_secrets")
                assert handler.opt.get("one_time_secrets") == one_time_secret_fields(model) != (), (method, route.path)
    assert {("POST", "/api/v1/keys"), ("POST", "/api/v1/webhooks"),
            ("POST", "/api/v1/webhooks/{endpoint_id:uuid}/rotate-secret")} <= set(found)
