"""Customers through the API: create with CPF/CNPJ validation, update, search, filter, paginate; the other
tenant never sees them."""

from __future__ import annotations

from tests.web.api.conftest import bearer


def cpf(base: int) -> str:
    """A valid CPF from 9 digits (the two check digits computed)."""
    digits = [int(c) for c in f"{base:09d}"]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(size + 1, 1, -1)))
        digits.append(total * 10 % 11 % 10)
    return "".join(map(str, digits))


async def test_create_get_update_and_search(client, api_keys, tenants):
    h = bearer(api_keys.a)
    created = await client.post("/api/v1/customers", headers=h, json={
        "name": "Padaria Central", "tax_id": "11.444.777/0001-61", "email": "Fin@Padaria.example",
        "account_manager_id": str(tenants.a.member_id)})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tax_id"] == "11444777000161" and body["tax_id_kind"] == "cnpj" and body["lifecycle"] == "onboarding"
    assert body["email"] == "fin@padaria.example"
    got = await client.get(f"/api/v1/customers/{body['id']}", headers=h)
    assert got.json() == body
    patched = await client.patch(f"/api/v1/customers/{body['id']}", headers=h, json={"phone": "+55 11 99999-0000"})
    assert patched.status_code == 200 and patched.json()["phone"] == "+55 11 99999-0000"
    for q in ("padaria", "11.444", "fin@"):
        found = await client.get("/api/v1/customers", headers=h, params={"q": q})
        assert [c["id"] for c in found.json()["data"]] == [body["id"]], q
    onboarding = await client.get("/api/v1/customers", headers=h, params={"lifecycle": "onboarding"})
    assert len(onboarding.json()["data"]) == 3
    assert (await client.get("/api/v1/customers", headers=h, params={"lifecycle": "blocked"})).json()["data"] == []
    # Tenant b: neither the list nor the id shows it.
    other = await client.get("/api/v1/customers", headers=bearer(api_keys.b), params={"q": "padaria"})
    assert other.json()["data"] == []
    assert (await client.get(f"/api/v1/customers/{body['id']}", headers=bearer(api_keys.b))).status_code == 404


async def test_invalid_input_names_every_field(client, api_keys, tenants):
    response = await client.post("/api/v1/customers", headers=bearer(api_keys.a), json={
        "name": "", "tax_id": "123.456.789-00", "email": "nope", "account_manager_id": str(tenants.b.admin_id)})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in response.json()["errors"]} == {"name", "tax_id", "email", "account_manager_id"}
    duplicate = await client.post("/api/v1/customers", headers=bearer(api_keys.a),
                                  json={"name": "Again", "tax_id": "529.982.247-25"})
    assert duplicate.status_code == 409 and duplicate.json()["errors"][0]["field"] == "tax_id"
    # The same CPF is free in the other tenant: uniqueness is per tenant.
    other = await client.post("/api/v1/customers", headers=bearer(api_keys.b),
                              json={"name": "Cliente", "tax_id": "45.723.174/0001-10"})
    assert other.status_code == 201


async def test_pagination_is_stable_while_rows_are_added(client, api_keys):
    h = bearer(api_keys.a)
    cpfs = [cpf(100_000_000 + i) for i in range(6)]
    for i, number in enumerate(cpfs[:5]):
        assert (await client.post("/api/v1/customers", headers=h,
                                  json={"name": f"Cliente {i}", "tax_id": number})).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "sort": "name"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/customers", headers=h, params=params)).json()
        seen += [c["name"] for c in page["data"]]
        if len(seen) == 2:  # a row added behind the cursor neither repeats nor shifts the pages
            await client.post("/api/v1/customers", headers=h, json={"name": "AAA first", "tax_id": cpfs[5]})
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7
    bad = await client.get("/api/v1/customers", headers=h, params={"cursor": cursor or "x", "sort": "-name"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    mixed_page = (await client.get("/api/v1/customers", headers=h, params={"limit": 1, "sort": "name"})).json()
    mixed = await client.get("/api/v1/customers", headers=h, params={"cursor": mixed_page["next_cursor"],
                                                                     "sort": "-created_at"})
    assert mixed.status_code == 422
    assert (await client.get("/api/v1/customers", headers=h, params={"sort": "tax_id"})).status_code == 422
    assert (await client.get("/api/v1/customers", headers=h, params={"limit": 201})).status_code == 400
