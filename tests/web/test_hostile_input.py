"""Hostile input at every door: each attempt that was a 500 is a 400 naming the field, and nothing is written.

The input rule (platform/input_rules.py) holds for the API (parameters and bodies), the webhook intake, the
portal (path and forms) and event intake itself; the fuzz test (tests/web/api/test_fuzz.py) walks the
whole OpenAPI document with the same kinds of strings.
"""

from __future__ import annotations

import json
import time

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from backoffice.connectors import clicksign, stripe
from backoffice.platform.audit.service import Actor
from backoffice.platform.errors import InputRefused
from backoffice.tenants.staff.service import create_staff
from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.events.intake import ingest, ingest_batch, validate
from backoffice.tenants.events.models import Event
from backoffice.tenants.webhooks.models import WebhookEndpoint
from backoffice.web.app import create_app
from tests.connectors.conftest import connector_settings, make_instance
from tests.web.api.conftest import bearer, event_data, make_key

pytestmark = pytest.mark.postgres_only  # NUL reaches PostgreSQL; the rule is the same on SQLite

NUL = "\x00"
DEEP = b"[" * 10_000 + b"]" * 10_000
HUGE = b"7" * 200_000


@pytest.fixture
async def client(database):
    async with AsyncTestClient(app=create_app(connector_settings(database))) as test_client:
        yield test_client


@pytest.fixture
async def key(database, tenants) -> dict[str, str]:
    return bearer(await make_key(database, tenants.a.id))


async def count(database, tenant_id, model) -> int:
    async with database.tenant(tenant_id) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def refused(response, field: str, words: str = "") -> None:
    """A 400 problem whose errors name ``field`` (and say ``words``)."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors


def event(external_id: str = "evt-1", **changes) -> dict:
    return {"type": "payment.cleared", "source": "api", "external_id": external_id,
            "customer": {"tax_id": "529.982.247-25"}, "data": event_data(), **changes}


# --- NUL in text fields and query parameters ----------------------------------------------------------

async def test_nul_in_customer_fields_is_refused_naming_the_field(client, database, tenants, key):
    before = await count(database, tenants.a.id, Customer)
    name = await client.post("/api/v1/customers", json={"name": f"Ana{NUL}", "tax_id": "390.533.447-05"}, headers=key)
    refused(name, "name", "NUL")
    email = await client.post("/api/v1/customers", json={"name": "Ana", "tax_id": "390.533.447-05",
                                                         "email": f"ana{NUL}@example.com"}, headers=key)
    refused(email, "email", "NUL")
    patch = await client.patch(f"/api/v1/customers/{tenants.a.customer_ids[0]}", json={"name": f"x{NUL}"},
                               headers=key)
    refused(patch, "name", "NUL")
    assert await count(database, tenants.a.id, Customer) == before
    async with database.tenant(tenants.a.id) as session:
        assert NUL not in (await session.get(Customer, (tenants.a.id, tenants.a.customer_ids[0]))).name


async def test_nul_in_a_query_parameter_is_refused_naming_it(client, key):
    refused(await client.get("/api/v1/customers", params={"q": f"Maria{NUL}"}, headers=key), "q", "NUL")
    refused(await client.get("/api/v1/events", params={"type": NUL}, headers=key), "type", "NUL")
    # Any parameter, declared or not, and its name as well as its value.
    refused(await client.get("/api/v1/customers", params={"sort": "name", "unused": NUL}, headers=key), "unused")
    assert (await client.get("/api/v1/customers", params={"q": "Maria"}, headers=key)).status_code == 200


async def test_nul_in_event_external_id_is_refused_and_nothing_stored(client, database, tenants, key):
    refused(await client.post("/api/v1/events", json=event(f"evt{NUL}1"), headers=key), "external_id", "NUL")
    batch = await client.post("/api/v1/events/batch", json={"events": [event("ok-1"), event(f"evt{NUL}2")]},
                              headers=key)
    refused(batch, "events[1].external_id", "NUL")
    assert await count(database, tenants.a.id, Event) == 0  # the valid item of the refused batch neither


async def test_event_with_nul_in_data_is_refused_at_intake_and_nothing_stored(client, database, tenants, key):
    poisoned = event("evt-nul")
    poisoned["data"]["charge"]["description"] = f"Mensalidade{NUL}"
    # Through the API: refused at the edge, and (JSON's own escape) however it is spelled.
    refused(await client.post("/api/v1/events", json=poisoned, headers=key), "data.charge.description", "NUL")
    escaped = json.dumps(poisoned).encode()
    assert b"\\u0000" in escaped
    refused(await client.post("/api/v1/events", content=escaped, headers=key | {"content-type": "application/json"}),
            "data.charge.description")
    # At intake itself, for every other source (webhooks' kinds, timers, routines): one event or a batch.
    deep_in_data = event("evt-nul-2")
    deep_in_data["data"]["documents"] = [{"kind": "boleto", "number": f"341{NUL}91"}]
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(InputRefused) as one:
            await ingest(session, tenants.a.id, poisoned)
        assert [e.field for e in one.value.errors] == ["data.charge.description"]
        with pytest.raises(InputRefused) as item:
            validate(deep_in_data, prefix="events[0].")
        assert [e.field for e in item.value.errors] == ["events[0].data.documents[0].number"]
        with pytest.raises(InputRefused):
            await ingest_batch(session, tenants.a.id, [validate(event("fine")), validate(deep_in_data)])
    assert await count(database, tenants.a.id, Event) == 0


async def test_nul_in_key_name_and_webhook_description_is_refused(client, database, tenants, key):
    keys_before = await count(database, tenants.a.id, ApiKey)
    refused(await client.post("/api/v1/keys", json={"name": f"ci{NUL}", "scopes": ["customers:read"]}, headers=key),
            "name", "NUL")
    assert await count(database, tenants.a.id, ApiKey) == keys_before
    hook = {"url": "https://hooks.example.com/in", "description": f"ERP{NUL}"}
    refused(await client.post("/api/v1/webhooks", json=hook, headers=key), "description", "NUL")
    assert await count(database, tenants.a.id, WebhookEndpoint) == 0


async def test_nul_in_staff_audit_filters_is_refused(client, database):
    async with database.system() as session:
        await create_staff(session, email="ada@provider.example", name="Ada", role="provider_admin",
                           password="a-long-enough-password", acting=Actor.system("tests"))
    token = (await client.post("/api/v1/staff/tokens", json={"email": "ada@provider.example",
                                                             "password": "a-long-enough-password"})).json()["token"]
    staff = {"Authorization": f"Bearer {token}"}
    refused(await client.get("/api/v1/staff/audit", params={"action": f"tenant.create{NUL}"}, headers=staff),
            "action", "NUL")
    refused(await client.get("/api/v1/staff/audit", params={"since": f"2026-01-01T00:00:00Z{NUL}"}, headers=staff),
            "since", "NUL")
    assert (await client.get("/api/v1/staff/audit", params={"action": "tenant.create"}, headers=staff)).status_code == 200


async def test_unpaired_surrogates_and_overlong_text_are_refused(client, database, tenants, key):
    lone = b'{"name": "Ana \\ud800", "tax_id": "390.533.447-05"}'
    refused(await client.post("/api/v1/customers", content=lone, headers=key | {"content-type": "application/json"}),
            "name", "surrogate")
    long_text = {"name": "a" * 70_000, "tax_id": "390.533.447-05"}
    refused(await client.post("/api/v1/customers", json=long_text, headers=key), "name", "longer than")
    assert await count(database, tenants.a.id, Customer) == len(tenants.a.customer_ids)


# --- deep nesting and huge numbers ------------------------------------------------------------------

def single(value: bytes) -> bytes:
    return b'{"type": "payment.cleared", "source": "api", "external_id": "e1", "data": {"charge": ' + value + b"}}"


@pytest.mark.parametrize("path, body, field, words", [
    ("/api/v1/events", DEEP, "body", "nested deeper"),
    ("/api/v1/events", single(DEEP), "data.charge", "nested deeper"),
    ("/api/v1/events", single(HUGE), "data.charge", "beyond 64 bits"),
    ("/api/v1/events/batch", b'{"events": ' + DEEP + b"}", "events", "nested deeper"),
    ("/api/v1/events/batch", b'{"events": [' + single(HUGE) + b"]}", "events[0].data.charge", "beyond 64 bits"),
    ("/api/v1/customers", b'{"name": "Ana", "tax_id": ' + HUGE + b"}", "tax_id", "beyond 64 bits"),
])
async def test_deep_json_and_huge_numbers_on_the_api_are_400_naming_the_field(client, database, tenants, key,
                                                                               path, body, field, words):
    response = await client.post(path, content=body, headers=key | {"content-type": "application/json"})
    if field == "body" or body.count(b"[") > 1000:
        # Too deep to walk to the end: the whole body, or the field it was found in, is named.
        assert response.status_code == 400, response.text
        assert any(words in e["message"] for e in response.json()["errors"]), response.text
    else:
        refused(response, field, words)
    assert await count(database, tenants.a.id, Event) == 0


ASAAS_TOKEN = "asaas-hook-token-Zq81"
STRIPE_SECRET = "whsec_test_5Ukq1PnW2eYvLk0aRrn"
CLICKSIGN_SECRET = "clicksign-hmac-7a1c0e"


def hook_case(kind: str, body: bytes) -> dict[str, str]:
    """The headers that make ``body`` authentic for ``kind``: the hostile body reaches the provider's parser."""
    if kind == "asaas":
        return {"asaas-access-token": ASAAS_TOKEN}
    if kind == "stripe":
        at = int(time.time())
        return {"stripe-signature": f"t={at},v1={stripe.sign(STRIPE_SECRET, at, body)}"}
    if kind == "clicksign":
        return {"content-hmac": clicksign.sign(CLICKSIGN_SECRET, body)}
    return {}


CONFIGS = {
    "asaas": {"base_url": "http://127.0.0.1:9", "api_key": "$aact_test_key", "webhook_token": ASAAS_TOKEN},
    "stripe": {"webhook_secret": STRIPE_SECRET},
    "clicksign": {"hmac_secret": CLICKSIGN_SECRET},
    "focusnfe": {"base_url": "http://127.0.0.1:9", "token": "focus-token"},
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_every_webhook_kind_refuses_deep_json_huge_numbers_and_nul(client, database, tenants, kind):
    a = tenants.a
    instance_id = await make_instance(database, a.id, kind, CONFIGS[kind])
    bodies = {
        "deep": (b'{"id": "evt_1", "event": "PAYMENT_RECEIVED", "payment": ' + DEEP + b"}", "body", "nested deeper"),
        "huge": (b'{"id": "evt_1", "ref": "r1", "payment": {"id": "pay_1", "value": ' + HUGE + b"}}",
                 "payment.value", "beyond 64 bits"),
        "nul": (b'{"id": "evt_\\u0000", "ref": "r1", "event": "PAYMENT_RECEIVED"}', "id", "NUL"),
        "not json": (b"\xff\xfe", "body", "not valid JSON"),
    }
    for name, (body, field, words) in bodies.items():
        response = await client.post(f"/hooks/{a.slug}/{instance_id}", content=body,
                                     headers={"content-type": "application/json", **hook_case(kind, body)})
        assert response.status_code == 400, (name, response.text)
        assert any(e["field"] == field and words in e["message"] for e in response.json()["errors"]), (name, response.text)
    assert await count(database, a.id, Event) == 0


# --- the portal -----------------------------------------------------------------------------------

async def test_nul_in_a_portal_path_is_400_not_500(client, tenants):
    problem = await client.get("/%00/login")
    assert problem.status_code == 400 and problem.json()["errors"][0]["field"] == "path"
    page = await client.get("/%00/login", headers={"accept": "text/html"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    inside = await client.get(f"/{tenants.a.slug}/customers/%00", headers={"accept": "text/html"})
    assert inside.status_code == 400
    assert (await client.get(f"/{tenants.a.slug}/login", headers={"accept": "text/html"})).status_code == 200


async def test_nul_in_a_portal_form_field_or_query_is_a_400_page_and_nothing_written(client, database, tenants):
    from tests.web.portal.conftest import Browser

    base = f"/{tenants.a.slug}"
    browser = Browser(client)
    assert (await browser.login(base, f"admin@{tenants.a.slug}.example")).status_code == 303
    keys_before = await count(database, tenants.a.id, ApiKey)
    created = await browser.post_form(f"{base}/admin/api-keys", f"{base}/admin/api-keys",
                                      {"name": f"erp{NUL}", "scopes": "customers:read"})
    assert created.status_code == 400, created.text
    assert created.headers["content-type"].startswith("text/html") and "name" in created.text
    assert await count(database, tenants.a.id, ApiKey) == keys_before
    search = await browser.get(f"{base}/customers?q=Maria%00")
    assert search.status_code == 400 and search.headers["content-type"].startswith("text/html")
    login = await Browser(client).login(base, f"admin@{tenants.a.slug}.example{NUL}")
    assert login.status_code == 400
