"""The authorisation matrix: every /api/v1 route, walked from the app's own route list (a route added
tomorrow is in it), against every way a caller can be wrong."""

from __future__ import annotations

import re

import pytest
from litestar.routes import HTTPRoute
from sqlalchemy import update

from backoffice.tenants.apikeys import keys
from backoffice.tenants.apikeys.service import ALL_SCOPES
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app
from tests.web.api.conftest import bearer, make_key, make_objects

PARAM = re.compile(r"\{(\w+):\w+\}")


def api_routes() -> list[tuple[str, str, str | None]]:
    """(method, path template, declared scope) of every tenant-API operation."""
    found = []
    for route in create_app().routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/v1"):
            continue
        if route.path.startswith(("/api/v1/schema", "/api/v1/staff")):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method in ("HEAD", "OPTIONS"):
                continue
            found.append((method, route.path, handler.opt.get("scope")))
    return sorted(found)


ROUTES = api_routes()


def test_the_matrix_sees_the_routes_and_each_declares_a_known_scope():
    assert len(ROUTES) >= 19
    for method, path, scope in ROUTES:
        assert scope in ALL_SCOPES, f"{method} {path} declares no known scope"
        expected = "read" if method == "GET" else "write"
        assert scope.endswith(f":{expected}"), f"{method} {path} should need a :{expected} scope"


def _path(template: str, objects: dict) -> str:
    return PARAM.sub(lambda m: str(objects[m.group(1)]), template)


def _wrong_checksum(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ("0" if last != "0" else "1")


async def test_every_route_refuses_every_wrong_caller(client, database, tenants, api_keys):
    """One test walks all routes (one app and one fixture set: the matrix stays a few seconds)."""
    theirs = await make_objects(database, tenants.b, api_keys.b)
    mine = await make_objects(database, tenants.a, await make_key(database, tenants.a.id))
    narrow = {resource: await make_key(database, tenants.a.id, scopes=[resource])
              for resource in ("webhooks:read", "customers:read")}
    wrong_callers = ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                     bearer(_wrong_checksum(api_keys.a)), bearer(api_keys.revoked), bearer(api_keys.expired),
                     bearer(keys.generate("live")))  # the last one well-formed but unknown
    first_refusal = None
    for method, template, scope in ROUTES:
        where = f"{method} {template}"
        if "{key_id" in template:  # a fresh target: an earlier route may have revoked or rolled the last one
            mine["key_id"] = (await make_objects(database, tenants.a, await make_key(database, tenants.a.id),
                                                 only_key=True))["key_id"]
        body = {} if method in ("POST", "PATCH", "PUT") else None

        async def call(path: str, headers: dict, method=method, body=body):
            return await client.request(method, path, headers=headers, json=body)

        for headers in wrong_callers:
            response = await call(_path(template, mine), headers)
            assert response.status_code == 401, (where, headers, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            first_refusal = first_refusal or response.json()
            assert response.json() == first_refusal, f"{where}: every 401 must look the same"

        # A key of the right company without this resource's scope: 403, naming the scope.
        unrelated = narrow["customers:read" if scope.startswith("webhooks") else "webhooks:read"]
        response = await call(_path(template, mine), bearer(unrelated))
        assert response.status_code == 403 and scope in response.text, where
        if scope.endswith(":write"):
            response = await call(_path(template, mine), bearer(api_keys.a_read))
            assert response.status_code == 403, where

        # The other company's objects through this company's key: not found, never forbidden.
        if PARAM.search(template):
            response = await call(_path(template, theirs), bearer(api_keys.a))
            assert response.status_code == 404, (where, response.text)
            assert response.json()["detail"] == "The resource does not exist."
            response = await call(_path(template, mine), bearer(api_keys.a))
            assert response.status_code < 300, (where, response.text)
        else:
            response = await call(template, bearer(api_keys.a))
            for value in theirs.values():
                assert str(value) not in response.text, where
    assert first_refusal == {"type": "about:blank", "title": "Invalid or expired API key", "status": 401}


async def test_a_suspended_company_is_refused_with_its_reason(client, database, tenants, api_keys):
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.a.id)
                              .values(status="suspended", suspended_reason="unpaid"))
    response = await client.get("/api/v1/customers", headers=bearer(api_keys.a))
    assert response.status_code == 403 and "suspended" in response.json()["detail"]
    assert (await client.get("/api/v1/customers", headers=bearer(api_keys.b))).status_code == 200


async def test_openapi_document_and_docs_page_are_public(client):
    schema = await client.get("/api/v1/schema/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.1")
    operations = [op for item in schema.json()["paths"].values() for op in item.values()]
    assert all(op.get("operationId") and "401" in op["responses"] and "429" in op["responses"] for op in operations)
    docs = await client.get("/api/v1/schema")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]


async def test_a_key_never_grants_more_than_it_has(client, database, tenants, api_keys):
    minter = await make_key(database, tenants.a.id, scopes=["keys:write"])
    h = bearer(minter)
    wider = await client.post("/api/v1/keys", headers=h, json={"name": "x", "scopes": ["customers:write", "keys:read"]})
    assert wider.status_code == 422, wider.text
    assert [e["field"] for e in wider.json()["errors"]] == ["scopes"] and "customers:write" in wider.text
    assert "keys:read" not in wider.json()["errors"][0]["message"].split(":", 1)[0]
    # Rolling a key with more scopes than the caller's would hand over its powers under a new secret.
    admin_id = (await make_objects(database, tenants.a, api_keys.a, only_key=True))["key_id"]
    rolled = await client.post(f"/api/v1/keys/{admin_id}/roll", headers=h, json={})
    assert rolled.status_code == 422 and rolled.json()["errors"][0]["field"] == "scopes", rolled.text
    # Within its own scopes (write includes read) it may mint and roll.
    narrower = await client.post("/api/v1/keys", headers=h, json={"name": "y", "scopes": ["keys:read", "keys:write"]})
    assert narrower.status_code == 201, narrower.text
    assert (await client.post(f"/api/v1/keys/{narrower.json()['id']}/roll", headers=h, json={})).status_code == 201
    # A full key still mints any scope; the portal admin and the CLI are not keys and are not limited.
    full = await client.post("/api/v1/keys", headers=bearer(api_keys.a), json={"name": "z", "scopes": list(ALL_SCOPES)})
    assert full.status_code == 201


def _test_mode_secret() -> str:
    """A well-formed ``bo_test_`` key, as one issued before test keys were retired."""
    import secrets as random

    head = "bo_test_" + keys.base62(int.from_bytes(random.token_bytes(32), "big"), keys.BODY_LEN)
    return head + keys.checksum(head)


async def test_test_mode_keys_are_not_issued_and_old_ones_reach_nothing(client, database, tenants, api_keys):
    """bo_test_ keys had no data of their own: they read and wrote live data. They are retired until a
    real test mode exists."""
    from backoffice.tenants.apikeys.models import ApiKey

    secret = _test_mode_secret()
    async with database.tenant(tenants.a.id) as session:
        session.add(ApiKey(name="old test key", mode="test", key_hash=keys.hash_key(secret),
                           display_prefix=keys.display_prefix(secret), scopes=list(ALL_SCOPES), created_by="admin"))
    for method, path in (("GET", "/api/v1/customers"), ("POST", "/api/v1/customers")):
        response = await client.request(method, path, headers=bearer(secret),
                                        json={"name": "Test", "tax_id": "11.444.777/0001-61"})
        assert response.status_code == 401, response.text
        assert "bo_test_" in response.json()["title"] and "bo_live_" in response.json()["title"]
        assert secret not in response.text
    asked = await client.post("/api/v1/keys", headers=bearer(api_keys.a),
                              json={"name": "t", "scopes": ["customers:read"], "mode": "test"})
    assert asked.status_code in (400, 422) and "mode" in asked.text and "bo_test_" not in asked.text
    schema = (await client.get("/api/v1/schema/openapi.json")).text
    assert "bo_test_" not in schema


async def test_a_key_in_the_query_string_is_refused_without_echoing_it(client, database, tenants, api_keys):
    for query, name in ((f"api_key={api_keys.a}", "api_key"), (f"limit=5&token={api_keys.a}", "token"),
                        ("access_token=abc", "access_token")):
        for headers in ({}, bearer(api_keys.a)):
            response = await client.get(f"/api/v1/customers?{query}", headers=headers)
            assert response.status_code == 400, (query, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [name]
            assert "Authorization" in response.text and api_keys.a not in response.text
    staff = await client.get(f"/api/v1/staff/tenants?api_key={api_keys.a}")
    assert staff.status_code == 400 and api_keys.a not in staff.text
    assert (await client.get("/api/v1/customers?limit=5", headers=bearer(api_keys.a))).status_code == 200
