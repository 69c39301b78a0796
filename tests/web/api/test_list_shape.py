"""One shape for every list: ``{data, next_cursor}``, paginated by an opaque cursor (issue 15)."""

from __future__ import annotations

from tests.web.api.conftest import bearer, make_key


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_no_operation_answers_a_bare_list(client):
    document = (await client.get("/api/v1/schema/openapi.json")).json()
    bare = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema and _resolve(document, schema).get("type") == "array":
                bare.append(f"{method.upper()} {path}")
    assert bare == []


async def test_api_keys_list_in_pages_and_only_the_companys_own(client, database, tenants, api_keys):
    for _ in range(3):
        await make_key(database, tenants.a.id)
    h = bearer(api_keys.a)
    first = (await client.get("/api/v1/keys", params={"limit": 2}, headers=h)).json()
    rest = (await client.get("/api/v1/keys", params={"limit": 2, "cursor": first["next_cursor"]}, headers=h)).json()
    ids = [k["id"] for k in first["data"] + rest["data"]]
    assert len(first["data"]) == 2 and first["next_cursor"] and len(ids) == len(set(ids)) == 4
    theirs = (await client.get("/api/v1/keys", headers=bearer(api_keys.b))).json()
    assert not {k["id"] for k in theirs["data"]} & {k["id"] for k in first["data"] + rest["data"]}
