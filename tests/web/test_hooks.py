"""Inbound webhooks through POST /hooks/{tenant}/{instance}, each provider played over loopback HTTP."""

from __future__ import annotations

import json
import logging
import time
import uuid

from sqlalchemy import select

from backoffice.connectors import clicksign, stripe
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.connectors.service import set_enabled
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant, TenantStatus
from tests.connectors.conftest import ACTOR, Answer, make_instance, provider, web  # noqa: F401  (fixtures)

TOKEN = "asaas-hook-token-Zq81"
API_KEY = "$aact_test_key_9f8e7d"


def asaas_hook(event: str = "PAYMENT_RECEIVED", *, evt: str = "evt_05b708f961d739ea7eba7e4db318f621&368604920",
               payment: str = "pay_080225913252", value: float = 1.0) -> dict:
    return {"id": evt, "event": event, "dateCreated": "2026-11-02 10:00:00",
            "payment": {"object": "payment", "id": payment, "customer": "cus_000005219613", "value": value,
                        "status": "RECEIVED", "dueDate": "2026-11-05"}}


def asaas_payment(payment: str = "pay_080225913252", *, status: str = "RECEIVED", value: float = 199.9) -> dict:
    return {"object": "payment", "id": payment, "customer": "cus_000005219613", "value": value, "netValue": 197.9,
            "status": status, "billingType": "PIX", "dueDate": "2026-11-05", "paymentDate": "2026-11-02",
            "clientPaymentDate": "2026-11-02", "description": "Mensalidade Plano Pro",
            "invoiceUrl": "https://www.asaas.com/i/080225913252", "deleted": False}


async def asaas(database, provider, tenant_id) -> uuid.UUID:
    return await make_instance(database, tenant_id, "asaas",
                               {"base_url": provider.url, "api_key": API_KEY, "webhook_token": TOKEN})


async def events(database, tenant_id) -> list[Event]:
    async with database.tenant(tenant_id) as session:
        return list((await session.execute(select(Event).order_by(Event.received_at))).scalars())


async def instance(database, tenant_id, instance_id) -> ConnectorInstance:
    async with database.tenant(tenant_id) as session:
        return await session.get(ConnectorInstance, (tenant_id, instance_id))


def post(web, slug, instance_id, body: bytes | dict, headers: dict | None = None):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return web.post(f"/hooks/{slug}/{instance_id}", content=content,
                    headers={"content-type": "application/json", **(headers or {})})


# --- Asaas -------------------------------------------------------------------------------------------

async def test_asaas_payment_received_is_stored_from_the_refetched_payment(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment(value=199.9)))
    response = await post(web, a.slug, hook_id, asaas_hook(value=1.0), {"asaas-access-token": TOKEN})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    [stored] = await events(database, a.id)
    assert (stored.type, stored.source) == ("payment.cleared", "asaas")
    # A payment clears once: keyed on the payment (a CONFIRMED then RECEIVED pair, or a reconciliation
    # repair of a lost hook, is the same event), not on the hook's evt_ id.
    assert stored.external_id == "pay_080225913252:cleared"
    assert stored.subject == {"external_id": "cus_000005219613", "source": "asaas"}
    # The body claimed R$ 1,00; Asaas's API says R$ 199,90: the API wins, in exact cents.
    assert stored.data["charge"]["amount_cents"] == 19990
    assert stored.data["payment"]["amount_cents"] == 19990
    assert stored.data["payment"]["method"] == "pix"
    [fetch] = provider.requests("GET", "/v3/payments/pay_080225913252")
    assert fetch.headers["access_token"] == API_KEY
    assert (await instance(database, a.id, hook_id)).health == Health.OK
    assert await events(database, tenants.b.id) == []


async def test_asaas_hook_with_a_path_in_the_payment_id_calls_nothing_and_says_why(database, tenants, provider, web):
    """The re-fetch builds its path from the hook's payment id: one shaped like a path must not make the
    platform call another Asaas endpoint with the tenant's key."""
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/customers", Answer(200, {"data": [{"id": "cus_secret"}], "hasMore": False}))
    for hostile in ("../../v3/customers?x=", "pay_1/../../customers", "..%2f..%2fv3%2fcustomers"):
        response = await post(web, a.slug, hook_id, asaas_hook(payment=hostile), {"asaas-access-token": TOKEN})
        assert response.status_code == 400, response.text
        assert "payment.id: expected an Asaas payment id" in response.json()["detail"]
    assert provider.seen == []  # no other path was called, nor any path at all
    assert await events(database, a.id) == []
    stored = await instance(database, a.id, hook_id)
    assert stored.health == Health.FAILING and "payment.id" in stored.last_error


async def test_asaas_duplicate_is_acknowledged_once(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment()))
    first = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    again = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicates"] == 1 and again.json()["accepted"] == 0
    assert again.json()["events"] == first.json()["events"]
    assert len(await events(database, a.id)) == 1


async def test_asaas_wrong_or_missing_token_is_401_and_nothing_stored(database, tenants, provider, web, caplog):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment()))
    caplog.set_level(logging.DEBUG)
    wrong = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN[:-1] + "x"})
    missing = await post(web, a.slug, hook_id, asaas_hook())
    assert wrong.status_code == missing.status_code == 401
    assert await events(database, a.id) == []
    assert provider.seen == []  # not even a re-fetch for an unauthenticated request
    stored = await instance(database, a.id, hook_id)
    assert stored.health == Health.FAILING and "asaas-access-token" in stored.last_error
    assert TOKEN not in caplog.text and API_KEY not in caplog.text


async def test_asaas_status_not_confirmed_by_the_api_is_acknowledged_but_not_stored(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment(status="PENDING")))
    response = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert await events(database, a.id) == []


async def test_asaas_overdue_refunded_deleted_map_to_canonical_types(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    cases = [("PAYMENT_OVERDUE", "pay_1", asaas_payment("pay_1", status="OVERDUE"), "payment.overdue"),
             ("PAYMENT_REFUNDED", "pay_2", asaas_payment("pay_2", status="REFUNDED"), "payment.refunded"),
             ("PAYMENT_DELETED", "pay_3", {**asaas_payment("pay_3", status="PENDING"), "deleted": True},
              "payment.canceled"),
             ("PAYMENT_CREATED", "pay_4", asaas_payment("pay_4", status="PENDING"), "payment.created")]
    for name, payment, fetched, _ in cases:
        provider.on("GET", f"/v3/payments/{payment}", Answer(200, fetched))
        response = await post(web, a.slug, hook_id, asaas_hook(name, evt=f"evt_{payment}", payment=payment),
                              {"asaas-access-token": TOKEN})
        assert response.status_code == 200, response.text
    assert [e.type for e in await events(database, a.id)] == [expected for *_, expected in cases]


async def test_asaas_unknown_event_is_acknowledged_and_ignored(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    response = await post(web, a.slug, hook_id, asaas_hook("PAYMENT_BANK_SLIP_VIEWED"), {"asaas-access-token": TOKEN})
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert await events(database, a.id) == [] and provider.seen == []


async def test_provider_500_or_slow_answer_is_503_and_nothing_stored(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(500, {"errors": [{"description": "boom"}]}))
    failed = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert failed.status_code == 503 and failed.headers["retry-after"] == "60"
    assert len(provider.requests("GET", "/v3/payments/pay_080225913252")) == 2  # one retry of an idempotent GET
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment(), delay=1.0))
    slow = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert slow.status_code == 503
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, "<html>em manutenção</html>"))
    not_json = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert not_json.status_code == 503
    assert await events(database, a.id) == []
    stored = await instance(database, a.id, hook_id)
    assert stored.health == Health.FAILING and "not a JSON object" in stored.last_error


async def test_oversized_and_malformed_bodies_store_nothing(database, tenants, provider, web):
    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    big = await post(web, a.slug, hook_id, b"{" + b" " * (256 * 1024) + b"}", {"asaas-access-token": TOKEN})
    broken = await post(web, a.slug, hook_id, b'{"id": "evt_1", "event": ', {"asaas-access-token": TOKEN})
    no_payment = await post(web, a.slug, hook_id, {"id": "evt_1", "event": "PAYMENT_RECEIVED"},
                            {"asaas-access-token": TOKEN})
    assert big.status_code == 413
    assert broken.status_code == 400
    assert no_payment.status_code == 400 and "payment" in no_payment.json()["detail"]
    assert await events(database, a.id) == []


async def test_another_tenants_instance_unknown_tenant_and_suspended_tenant(database, tenants, provider, web):
    a, b = tenants.a, tenants.b
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment()))
    crossed = await post(web, b.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    unknown_tenant = await post(web, "nobody", hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    unknown_instance = await post(web, a.slug, uuid.uuid4(), asaas_hook(), {"asaas-access-token": TOKEN})
    assert crossed.status_code == unknown_tenant.status_code == unknown_instance.status_code == 404
    outbound_only = await make_instance(database, a.id, "chat", {"webhook_url": "https://chat.example/hook"})
    assert (await post(web, a.slug, outbound_only, asaas_hook())).status_code == 404
    async with database.provider(a.id) as session:
        await set_enabled(session, hook_id, False, acting=ACTOR)
    disabled = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert disabled.status_code == 404
    async with database.system() as session:
        (await session.get(Tenant, a.id)).status = TenantStatus.SUSPENDED
    suspended = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert suspended.status_code == 403
    assert await events(database, a.id) == [] and await events(database, b.id) == []


# --- Stripe ------------------------------------------------------------------------------------------

WHSEC = "whsec_test_5Ukq1PnW2eYvLk0aRrn"


def stripe_headers(body: bytes, *, secret: str = WHSEC, at: int | None = None, extra_v1: str | None = None) -> dict:
    at = int(time.time()) if at is None else at
    signatures = ([f"v1={extra_v1}"] if extra_v1 else []) + [f"v1={stripe.sign(secret, at, body)}"]
    return {"stripe-signature": ",".join([f"t={at}", *signatures])}


def stripe_event(kind: str, obj: dict, previous: dict | None = None, evt: str = "evt_1QkH2") -> bytes:
    data = {"object": obj, **({"previous_attributes": previous} if previous else {})}
    return json.dumps({"id": evt, "object": "event", "type": kind, "created": int(time.time()), "data": data}).encode()


INVOICE = {"id": "in_1Q", "object": "invoice", "customer": "cus_Stripe1", "amount_due": 4990, "amount_paid": 4990,
           "due_date": None, "created": 1793000000, "subscription": "sub_1",
           "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test",
           "status_transitions": {"paid_at": 1793000100}}


def subscription(price: str, amount: int, nickname: str) -> dict:
    return {"id": "sub_1", "object": "subscription", "customer": "cus_Stripe1",
            "items": {"data": [{"price": {"id": price, "unit_amount": amount, "nickname": nickname}}]}}


async def test_stripe_signed_events_are_normalised(database, tenants, web):
    a = tenants.a
    hook_id = await make_instance(database, a.id, "stripe", {"webhook_secret": WHSEC})
    paid = stripe_event("invoice.paid", INVOICE, evt="evt_paid")
    changed = stripe_event("customer.subscription.updated", subscription("price_pro", 9990, "Pro"),
                           {"items": {"data": [{"price": {"id": "price_basic", "unit_amount": 4990,
                                                          "nickname": "Basic"}}]}}, evt="evt_changed")
    ended = stripe_event("customer.subscription.deleted",
                         {**subscription("price_pro", 9990, "Pro"), "ended_at": 1793000500,
                          "cancellation_details": {"reason": "cancellation_requested"}}, evt="evt_ended")
    failed = stripe_event("invoice.payment_failed", INVOICE, evt="evt_failed")
    for body in (paid, changed, ended, failed):
        response = await post(web, a.slug, hook_id, body, stripe_headers(body, extra_v1="0" * 64))
        assert response.status_code == 200, response.text
    stored = {e.external_id: e for e in await events(database, a.id)}
    assert stored["evt_paid"].type == "payment.cleared"
    assert stored["evt_paid"].data["payment"]["amount_cents"] == 4990
    assert stored["evt_paid"].subject == {"external_id": "cus_Stripe1", "source": "stripe"}
    assert stored["evt_changed"].type == "subscription.changed"
    assert stored["evt_changed"].data["before"] == {"code": "price_basic", "name": "Basic", "price_cents": 4990}
    assert stored["evt_changed"].data["after"] == {"code": "price_pro", "name": "Pro", "price_cents": 9990}
    assert stored["evt_ended"].type == "subscription.canceled"
    assert stored["evt_failed"].type == "payment.overdue"


async def test_stripe_bad_signature_wrong_secret_and_stale_timestamp_are_401(database, tenants, web):
    a = tenants.a
    hook_id = await make_instance(database, a.id, "stripe", {"webhook_secret": WHSEC})
    body = stripe_event("invoice.paid", INVOICE)
    tampered = body.replace(b"4990", b"4991")
    cases = [
        (tampered, stripe_headers(body)),  # signed, then altered
        (body, stripe_headers(body, secret="whsec_other")),
        (body, stripe_headers(body, at=int(time.time()) - 301)),  # replayed after the tolerance
        (body, {"stripe-signature": "garbage"}),
        (body, {}),
    ]
    for content, headers in cases:
        response = await post(web, a.slug, hook_id, content, headers)
        assert response.status_code == 401, response.text
    assert await events(database, a.id) == []
    fresh = await post(web, a.slug, hook_id, body, stripe_headers(body, at=int(time.time()) - 200))
    assert fresh.status_code == 200


# --- Focus NFe ---------------------------------------------------------------------------------------

FOCUS_TOKEN = "focus-token-ABC123xyz"


async def test_focusnfe_hook_trusts_only_the_refetched_nota(database, tenants, provider, web):
    a = tenants.a
    customer = a.customer_ids[0]
    hook_id = await make_instance(database, a.id, "focusnfe", {"base_url": provider.url, "token": FOCUS_TOKEN})
    ok_ref, bad_ref = f"{customer.hex}-1", f"{customer.hex}-2"
    provider.on("GET", f"/v2/nfse/{ok_ref}", Answer(200, {
        "ref": ok_ref, "status": "autorizado", "numero": "4521", "codigo_verificacao": "X1Y2",
        "data_emissao": "2026-11-02T10:00:00-03:00", "url": "https://nfse.prefeitura.example/nota/4521",
        "caminho_xml_nota_fiscal": "/arquivos/nfse/4521.xml"}))
    provider.on("GET", f"/v2/nfse/{bad_ref}", Answer(200, {
        "ref": bad_ref, "status": "erro_autorizacao",
        "erros": [{"codigo": "E10", "mensagem": "Código de serviço inválido"}]}))
    # The hook body claims success for the rejected one: only the API's answer counts.
    for ref in (ok_ref, bad_ref):
        response = await post(web, a.slug, hook_id, {"ref": ref, "status": "autorizado", "numero": "9999"})
        assert response.status_code == 200, response.text
    issued, rejected = await events(database, a.id)
    assert issued.type == "invoice.issued" and issued.data["document"]["number"] == "4521"
    assert issued.data["document"]["xml_url"] == f"{provider.url}/arquivos/nfse/4521.xml"
    assert issued.subject == {"id": str(customer)}
    assert rejected.type == "invoice.rejected" and rejected.data["message"] == "Código de serviço inválido"
    fetch = provider.requests("GET", f"/v2/nfse/{ok_ref}")[0]
    import base64
    assert fetch.headers["authorization"] == "Basic " + base64.b64encode(f"{FOCUS_TOKEN}:".encode()).decode()


# --- Clicksign ---------------------------------------------------------------------------------------

HMAC_SECRET = "clicksign-hmac-7a1c0e"


def envelope(status: str = "closed", event: str = "auto_close") -> bytes:
    return json.dumps({"event": {"name": event, "occurred_at": "2026-11-02T12:00:00-03:00"},
                       "document": {"key": "env-1a2b", "status": status,
                                    "downloads": {"signed_file_url": "https://app.clicksign.com/signed/env-1a2b.pdf"},
                                    "signers": [{"email": "maria@example.com", "documentation": "529.982.247-25"}]}
                       }).encode()


async def test_clicksign_closed_envelope_with_valid_hmac_becomes_contract_signed(database, tenants, web):
    a = tenants.a
    hook_id = await make_instance(database, a.id, "clicksign", {"hmac_secret": HMAC_SECRET})
    body = envelope()
    bad = await post(web, a.slug, hook_id, body, {"content-hmac": clicksign.sign("other", body)})
    assert bad.status_code == 401
    good = await post(web, a.slug, hook_id, body, {"content-hmac": clicksign.sign(HMAC_SECRET, body)})
    viewed = envelope("running", "sign")
    ignored = await post(web, a.slug, hook_id, viewed, {"content-hmac": clicksign.sign(HMAC_SECRET, viewed)})
    assert good.status_code == ignored.status_code == 200
    [stored] = await events(database, a.id)
    assert stored.type == "contract.signed" and stored.data["envelope_id"] == "env-1a2b"
    assert stored.data["document_url"] == "https://app.clicksign.com/signed/env-1a2b.pdf"
    assert stored.subject == {"tax_id": "529.982.247-25"}


async def test_repeated_provider_failures_open_the_instances_circuit_then_it_recovers(database, tenants, provider, web):
    import asyncio

    a = tenants.a
    hook_id = await asaas(database, provider, a.id)
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(500))
    for _ in range(3):  # FAST_HTTP: threshold 3, cool-down 0.4 s
        assert (await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})).status_code == 503
    calls = len(provider.seen)
    refused = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert refused.status_code == 503 and len(provider.seen) == calls  # open: the provider is spared
    assert "circuit open" in (await instance(database, a.id, hook_id)).last_error
    provider.on("GET", "/v3/payments/pay_080225913252", Answer(200, asaas_payment()))
    await asyncio.sleep(0.45)
    recovered = await post(web, a.slug, hook_id, asaas_hook(), {"asaas-access-token": TOKEN})
    assert recovered.status_code == 200 and len(await events(database, a.id)) == 1
