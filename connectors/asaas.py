"""Asaas (payments): https://docs.asaas.com

- API: ``{base_url}/v3/...`` with the ``access_token`` header.
- Webhooks: Asaas signs nothing; it sends the static token configured for the webhook in the
  ``asaas-access-token`` header. We compare it in constant time, and then trust only what we fetch back
  from the API (``GET /v3/payments/{id}``): the fetched status must confirm the event and the fetched
  value is what we record, so a leaked token alone cannot clear a payment.
- Events are deduplicated on the body's ``id`` (``evt_...``), which Asaas keeps across its retries.
- Outbound: Asaas has no idempotency key, so a create is sent once and never retried blindly; callers
  that must not create twice (the billing run) look their object up by ``externalReference`` first.
- Lists are paginated with ``offset``/``limit`` (at most 100) and answer ``hasMore``; ``each`` follows
  every page.
- A refusal is ``{"errors": [{"code": ..., "description": ...}]}``; errors carry Asaas's descriptions.
- Hosts: production ``api.asaas.com``, sandbox ``api-sandbox.asaas.com`` (and the older
  ``sandbox.asaas.com``, whose base URL is ``https://sandbox.asaas.com/api``); any other host only by a
  provider admin's override. Ids are prefixed (``pay_``, ``cus_``, ``sub_``) letters, digits and ``_``
  (Asaas's 2026 format adds ``_<digit>_`` after the prefix); an id that is not goes nowhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import brazil_day, cents, credential_matches, json_body, required_field, segment
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.kinds import (
    CheckResult, ConnectorKind, Context, InboundRequest, MalformedPayload, ProviderConfig, VerificationFailed,
)
from backoffice.connectors.service import record_failure, record_success
from backoffice.tenants.billing.ports import (
    OFFERS_BOLETO, OFFERS_PIX, BillingType, GatewayCharge, GatewayCustomer, PixCode,
)
from backoffice.tenants.connections import CallFailed, Connection

log = logging.getLogger(__name__)

EVENT_TYPES = {
    "PAYMENT_CREATED": "payment.created",
    "PAYMENT_CONFIRMED": "payment.cleared",
    "PAYMENT_RECEIVED": "payment.cleared",
    "PAYMENT_OVERDUE": "payment.overdue",
    "PAYMENT_REFUNDED": "payment.refunded",
    "PAYMENT_DELETED": "payment.canceled",
}
PAID = {"CONFIRMED", "RECEIVED", "RECEIVED_IN_CASH"}
PAGE = 100  # Asaas's largest page
BILLING_TYPES = frozenset(kind.value for kind in BillingType)
# The events that chase an open charge, whose e-mails say how to pay it.
TELLS_HOW_TO_PAY = frozenset({"payment.created", "payment.overdue"})
# The fetched status that confirms each event (None: any status; creation is a past fact).
CONFIRMS: dict[str, set[str] | None] = {
    "PAYMENT_CREATED": None,
    "PAYMENT_CONFIRMED": PAID | {"REFUNDED", "REFUND_REQUESTED", "REFUND_IN_PROGRESS"},
    "PAYMENT_RECEIVED": PAID | {"REFUNDED", "REFUND_REQUESTED", "REFUND_IN_PROGRESS"},
    "PAYMENT_OVERDUE": {"OVERDUE"},
    "PAYMENT_REFUNDED": {"REFUNDED"},
    "PAYMENT_DELETED": None,  # checked through the fetched object's ``deleted`` flag
}


HOSTS = frozenset({"api.asaas.com", "api-sandbox.asaas.com", "sandbox.asaas.com"})
PAYMENT_ID = re.compile(r"pay_[A-Za-z0-9_]{1,64}")
CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9_]{1,64}")
# Answers that say the connection itself is wrong (credentials, address), not the data sent.
CONNECTION_FAULTS = frozenset({401, 403, 404})


class AsaasConfig(ProviderConfig):
    base_url: HttpUrl = Field(default=HttpUrl("https://api.asaas.com"))
    api_key: SecretStr
    webhook_token: SecretStr


class Ignored(Exception):
    """The request is authentic but carries nothing to store (acknowledged so Asaas does not retry)."""


class Asaas(ConnectorKind):
    name = "asaas"
    title = "Asaas (payments)"
    config_model = AsaasConfig
    inbound = True
    hosts = HOSTS
    url_fields = ("base_url",)

    def _url(self, ctx: Context, path: str) -> str:
        return str(ctx.config.base_url).rstrip("/") + path

    def _headers(self, ctx: Context) -> dict[str, str]:
        return {"access_token": ctx.config.api_key.get_secret_value(), "Content-Type": "application/json"}

    async def check(self, ctx: Context) -> CheckResult:
        """Asaas's account data (GET /v3/myAccount/commercialInfo/): a read any valid key may make; the
        answer is the account's company name and document, as Asaas has them."""
        label = "GET asaas myAccount/commercialInfo"
        response = await ctx.http.request("GET", self._url(ctx, "/v3/myAccount/commercialInfo/"),
                                          headers=self._headers(ctx), label=label)
        body = json_of(response, label)
        name = body.get("companyName") or body.get("name") or "?"
        document = body.get("cpfCnpj")
        return CheckResult(True, str(response.status_code), name + (f" ({document})" if document else ""))

    async def fetch_payment(self, ctx: Context, payment_id: str) -> dict[str, Any] | None:
        """The payment as Asaas has it now; None when Asaas no longer knows it (404)."""
        path = "/v3/payments/" + segment(payment_id, PAYMENT_ID, "payment.id", "an Asaas payment id (pay_...)")
        try:
            response = await ctx.http.request("GET", self._url(ctx, path),
                                              headers=self._headers(ctx), label="GET asaas payment")
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        return json_of(response, "GET asaas payment")

    async def fetch_customer(self, ctx: Context, customer_id: str) -> dict[str, Any] | None:
        """``GET /v3/customers/{id}``: the customer as Asaas has it (name, cpfCnpj, email,
        externalReference, deleted); None when Asaas does not know it (404)."""
        path = "/v3/customers/" + segment(customer_id, CUSTOMER_ID, "customer.id", "an Asaas customer id (cus_...)")
        try:
            response = await self._request(ctx, "GET", path, "GET asaas customer")
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        return json_of(response, "GET asaas customer")

    async def delete_payment(self, ctx: Context, payment_id: str) -> bool:
        """``DELETE /v3/payments/{id}`` (Asaas's cancelation of an open charge); False when Asaas does not
        know it (404). Repeating it is harmless: a deleted payment stays deleted."""
        path = "/v3/payments/" + segment(payment_id, PAYMENT_ID, "payment.id", "an Asaas payment id (pay_...)")
        try:
            await self._request(ctx, "DELETE", path, "DELETE asaas payment")
        except ProviderError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def pix_qr_code(self, ctx: Context, payment_id: str) -> dict[str, Any] | None:
        """``GET /v3/payments/{id}/pixQrCode``: ``payload`` (copia-e-cola), ``encodedImage`` (base64 PNG),
        ``expirationDate``; None when Asaas does not know the payment (404)."""
        return await self._payment_read(ctx, payment_id, "/pixQrCode", "GET asaas pixQrCode")

    async def identification_field(self, ctx: Context, payment_id: str) -> dict[str, Any] | None:
        """``GET /v3/payments/{id}/identificationField``: the boleto's ``identificationField`` (linha
        digitável), ``nossoNumero``, ``barCode``; None when Asaas does not know the payment (404)."""
        return await self._payment_read(ctx, payment_id, "/identificationField", "GET asaas identificationField")

    async def _payment_read(self, ctx: Context, payment_id: str, suffix: str, label: str) -> dict[str, Any] | None:
        path = "/v3/payments/" + segment(payment_id, PAYMENT_ID, "payment.id", "an Asaas payment id (pay_...)") + suffix
        try:
            response = await self._request(ctx, "GET", path, label)
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        return json_of(response, label)

    async def create_customer(self, ctx: Context, *, name: str, tax_id: str, email: str | None = None,
                              external_reference: str | None = None) -> dict[str, Any]:
        """``POST /v3/customers``. Asaas has no idempotency key, so this is sent once, never retried."""
        body = {"name": name, "cpfCnpj": tax_id, "email": email, "externalReference": external_reference}
        response = await self._request(ctx, "POST", "/v3/customers", "POST asaas customer",
                                       json={k: v for k, v in body.items() if v is not None})
        return json_of(response, "POST asaas customer")

    async def create_charge(self, ctx: Context, *, customer: str, amount_cents: int, due_date: str,
                            billing_type: str = "UNDEFINED", description: str | None = None,
                            external_reference: str | None = None, fine_percent: Decimal | None = None,
                            interest_percent: Decimal | None = None) -> dict[str, Any]:
        """``POST /v3/payments``; the amount goes out as a decimal string built from integer cents. Fine
        (multa, once) and interest (juros, per month) are percentages: ``fine: {value}``,
        ``interest: {value}``."""
        value = f"{amount_cents // 100}.{amount_cents % 100:02d}"
        body: dict[str, Any] = {"customer": customer, "billingType": billing_type, "value": value,
                                "dueDate": due_date, "description": description,
                                "externalReference": external_reference}
        if fine_percent:
            body["fine"] = {"value": float(fine_percent), "type": "PERCENTAGE"}  # not FIXED (reais)
        if interest_percent:
            body["interest"] = {"value": float(interest_percent)}
        response = await self._request(ctx, "POST", "/v3/payments", "POST asaas payment",
                                       json={k: v for k, v in body.items() if v is not None})
        return json_of(response, "POST asaas payment")

    async def find_customer(self, ctx: Context, *, external_reference: str) -> dict[str, Any] | None:
        """The (not deleted) customer registered with our reference, if Asaas has one."""
        async for customer in self.each(ctx, "/v3/customers", {"externalReference": external_reference},
                                        "GET asaas customers"):
            if customer.get("externalReference") == external_reference and not customer.get("deleted"):
                return customer
        return None

    async def find_payment(self, ctx: Context, *, external_reference: str) -> dict[str, Any] | None:
        """The (not deleted) payment created with our reference, if Asaas has one."""
        async for payment in self.each(ctx, "/v3/payments", {"externalReference": external_reference},
                                       "GET asaas payments"):
            if payment.get("externalReference") == external_reference and not payment.get("deleted"):
                return payment
        return None

    async def received_on(self, ctx: Context, day: str) -> list[dict[str, Any]]:
        """Every payment Asaas received on ``day`` (its calendar, YYYY-MM-DD), in any received status: one
        listing per status (the filter takes one), every page followed, each payment once."""
        seen: dict[str, dict[str, Any]] = {}
        for status in sorted(PAID):
            filters = {"paymentDate[ge]": day, "paymentDate[le]": day, "status": status}
            async for payment in self.each(ctx, "/v3/payments", filters, "GET asaas payments"):
                if payment.get("deleted") or payment.get("status") not in PAID:
                    continue
                seen.setdefault(required_field(payment, "id"), payment)
        return list(seen.values())

    async def each(self, ctx: Context, path: str, filters: dict[str, str],
                   label: str) -> AsyncIterator[dict[str, Any]]:
        """Every entry of a paginated list, page after page until Asaas says there is no more."""
        offset = 0
        while True:
            response = await self._request(ctx, "GET", path, label, params={**filters, "offset": offset, "limit": PAGE})
            page = json_of(response, label)
            data = page.get("data")
            if not isinstance(data, list):
                raise ProviderError(f"{label}: the answer has no data list", retryable=True)
            for entry in data:
                if isinstance(entry, dict):
                    yield entry
            if not page.get("hasMore") or not data:
                return
            offset += len(data)

    async def _request(self, ctx: Context, method: str, path: str, label: str, **kwargs: Any):
        try:
            return await ctx.http.request(method, self._url(ctx, path), headers=self._headers(ctx), label=label,
                                          **kwargs)
        except ProviderError as error:
            words = refusal(error)
            if words is None:
                raise
            raise ProviderError(f"{label}: Asaas refused ({error.status}): {words}", retryable=error.retryable,
                                status=error.status) from None

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        if not credential_matches(request.header("asaas-access-token"), ctx.config.webhook_token.get_secret_value()):
            raise VerificationFailed("asaas-access-token does not match this connector's webhook token")
        body = json_body(request)
        name = body.get("event")
        if name not in EVENT_TYPES:
            log.debug("asaas event %r ignored: not one the platform uses", name)
            return []
        event_id = required_field(body, "id")
        payment_id = required_field(body, "payment", "id")
        fetched = await self.fetch_payment(ctx, payment_id)
        try:
            payment = self._confirmed(name, payment_id, fetched)
        except Ignored as why:
            log.info("asaas %s for %s not stored: %s", name, payment_id, why)
            return []
        event = self._event(EVENT_TYPES[name], event_id, payment)
        if event["type"] in TELLS_HOW_TO_PAY:
            event["data"]["charge"].update(await self.means(ctx, payment))
        return [event]

    async def means(self, ctx: Context, payment: dict[str, Any]) -> dict[str, str]:
        """How to pay an open payment created elsewhere (an Asaas subscription, by hand), for the e-mails
        that chase it: the Pix copia-e-cola and the boleto's linha digitável, each when the billing type
        offers it. A hiccup raises (the hook answers 503 and Asaas sends it again); a refusal (an account
        without a Pix key) leaves that one out, logged."""
        kind = payment.get("billingType")
        found: dict[str, str] = {}
        for offers, read, take, field in (
                (OFFERS_PIX, self.pix_qr_code, "payload", "pix_payload"),
                (OFFERS_BOLETO, self.identification_field, "identificationField", "boleto_line")):
            if kind not in offers:
                continue
            try:
                answer = await read(ctx, payment["id"])
            except ProviderError as error:
                if error.retryable:
                    raise
                log.info("asaas payment %s: no %s: %s", payment["id"], field, error)
                continue
            if answer and isinstance(answer.get(take), str) and answer[take]:
                found[field] = answer[take][:1000 if field == "pix_payload" else 64]
        return found

    def _confirmed(self, name: str, payment_id: str, fetched: dict[str, Any] | None) -> dict[str, Any]:
        if name == "PAYMENT_DELETED":
            if fetched is not None and not fetched.get("deleted"):
                raise Ignored("Asaas still has the payment (not deleted)")
            if fetched is None:
                raise Ignored("Asaas no longer returns the payment; nothing to describe it with")
            return fetched
        if fetched is None:
            raise Ignored("Asaas does not know the payment")
        if fetched.get("id") != payment_id:
            raise MalformedPayload("the fetched payment is another one")
        allowed = CONFIRMS[name]
        status = fetched.get("status")
        if allowed is not None and status not in allowed:
            raise Ignored(f"the payment's status at Asaas is {status}, which does not confirm {name}")
        return fetched

    def _event(self, event_type: str, event_id: str, payment: dict[str, Any]) -> dict[str, Any]:
        charge = {
            "external_id": payment["id"],
            "amount_cents": cents(required_field(payment, "value"), "payment.value"),
            "due_date": required_field(payment, "dueDate"),
        }
        if payment.get("description"):
            charge["description"] = payment["description"][:500]
        if payment.get("invoiceUrl"):
            charge["payment_url"] = payment["invoiceUrl"]
        if payment.get("billingType") in BILLING_TYPES:
            charge["billing_type"] = payment["billingType"]
        if payment.get("bankSlipUrl"):
            charge["boleto_url"] = payment["bankSlipUrl"]
        if payment.get("subscription"):  # a payment of a subscription (sub_...): the contract a late charge blocks
            charge["contract_external_id"] = str(payment["subscription"])[:500]
        data: dict[str, Any] = {"charge": charge}
        if event_type == "payment.cleared":
            paid_on = payment.get("clientPaymentDate") or payment.get("paymentDate") or payment.get("confirmedDate")
            data["payment"] = {
                "external_id": payment["id"],
                "amount_cents": charge["amount_cents"],
                "paid_at": _iso(brazil_day(paid_on)),
                "method": (payment.get("billingType") or "").lower()[:32] or None,
            }
            if data["payment"]["paid_at"] is None:
                raise MalformedPayload("missing field payment.paymentDate")
            data["payment"] = {k: v for k, v in data["payment"].items() if v is not None}
            if payment.get("bankSlipUrl"):
                data["documents"] = [{"kind": "boleto", "number": payment.get("nossoNumero"),
                                      "url": payment["bankSlipUrl"]}]
                data["documents"][0] = {k: v for k, v in data["documents"][0].items() if v is not None}
        if event_type == "payment.cleared":
            # A payment clears once: keyed on the payment, not on the hook's evt_ id, so CONFIRMED then
            # RECEIVED (cards) and a reconciliation repair of a lost hook are all the same event.
            event_id = cleared_key(payment["id"])
        return {
            "type": event_type, "source": self.source, "external_id": event_id,
            "customer": {"external_id": required_field(payment, "customer"), "source": self.source},
            "data": data,
        }


def cleared_key(payment_id: str) -> str:
    """The external id of a payment's ``payment.cleared`` event, whoever tells of it (hook or repair)."""
    return f"{payment_id}:cleared"


class AsaasGateway:
    """The tenant's Asaas account as the domain's ``PaymentGateway`` (``tenants/billing/ports.py``)."""

    def __init__(self, ctx: Context, instance: ConnectorInstance, connection: Connection,
                 kind: Asaas | None = None) -> None:
        self.ctx, self.instance, self.connection = ctx, instance, connection
        self.kind = kind or Asaas()

    @property
    def source(self) -> str:
        return self.kind.source

    async def find_customer(self, *, external_reference: str) -> GatewayCustomer | None:
        found = await self.kind.find_customer(self.ctx, external_reference=external_reference)
        return customer_of(found) if found is not None else None

    async def fetch_customer(self, customer_id: str) -> GatewayCustomer | None:
        found = await self.kind.fetch_customer(self.ctx, customer_id)
        return customer_of(found) if found is not None else None

    async def create_customer(self, *, name: str, tax_id: str, email: str | None,
                              external_reference: str) -> GatewayCustomer:
        return customer_of(await self.kind.create_customer(self.ctx, name=name, tax_id=tax_id, email=email,
                                                           external_reference=external_reference))

    async def find_charge(self, *, external_reference: str) -> GatewayCharge | None:
        found = await self.kind.find_payment(self.ctx, external_reference=external_reference)
        return charge_of(found) if found is not None else None

    async def fetch_charge(self, charge_id: str) -> GatewayCharge | None:
        found = await self.kind.fetch_payment(self.ctx, charge_id)
        return charge_of(found) if found is not None else None

    async def create_charge(self, *, customer: str, amount_cents: int, due_date: date,
                            billing_type: BillingType = BillingType.UNDEFINED, description: str | None = None,
                            external_reference: str | None = None, fine_percent: Decimal | None = None,
                            interest_percent: Decimal | None = None) -> GatewayCharge:
        return charge_of(await self.kind.create_charge(
            self.ctx, customer=customer, amount_cents=amount_cents, due_date=due_date.isoformat(),
            billing_type=BillingType(billing_type).value, description=description,
            external_reference=external_reference, fine_percent=fine_percent, interest_percent=interest_percent))

    async def cancel_charge(self, charge_id: str) -> bool:
        return await self.kind.delete_payment(self.ctx, charge_id)

    async def pix_code(self, charge_id: str) -> PixCode | None:
        found = await self.kind.pix_qr_code(self.ctx, charge_id)
        if found is None:
            return None
        return PixCode(payload=str(required_field(found, "payload")), qr_png=str(required_field(found, "encodedImage")),
                       expires_at=found.get("expirationDate"))

    async def boleto_line(self, charge_id: str) -> str | None:
        found = await self.kind.identification_field(self.ctx, charge_id)
        return str(required_field(found, "identificationField")) if found is not None else None

    async def received_on(self, day: str) -> list[GatewayCharge]:
        return [charge_of(payment) for payment in await self.kind.received_on(self.ctx, day)]

    async def create_instalments(self, *, customer: str, total_cents: int, count: int, first_due: date,
                                 description: str, external_reference: str) -> tuple[str, list[GatewayCharge]]:
        """``POST /v3/payments`` with ``installmentCount`` and ``totalValue`` (Asaas splits the total into
        monthly payments from ``dueDate``), then the plan's payments (``GET /v3/payments?installment=``).
        A plan already created under ``external_reference`` (a retry after a lost answer) is adopted."""
        first = await self.kind.find_payment(self.ctx, external_reference=external_reference)
        if first is None:
            body = {"customer": customer, "billingType": BillingType.UNDEFINED.value, "installmentCount": count,
                    "totalValue": f"{total_cents // 100}.{total_cents % 100:02d}", "dueDate": first_due.isoformat(),
                    "description": description[:500], "externalReference": external_reference}
            first = json_of(await self.kind._request(self.ctx, "POST", "/v3/payments", "POST asaas installment",
                                                     json=body), "POST asaas installment")
        plan = first.get("installment")
        if not plan:
            raise MalformedPayload(f"payment {first.get('id')}: Asaas answered no installment id")
        payments = [p async for p in self.kind.each(self.ctx, "/v3/payments", {"installment": str(plan)},
                                                    "GET asaas installment payments") if not p.get("deleted")]
        payments.sort(key=lambda p: (p.get("installmentNumber") or 0, p.get("dueDate") or "", p.get("id") or ""))
        return str(plan), [charge_of(payment) for payment in payments]

    async def cleared_event(self, charge_id: str) -> dict[str, Any] | None:
        """The canonical ``payment.cleared`` event Asaas's PAYMENT_RECEIVED webhook would have produced for
        this payment, from the payment as Asaas has it now (the same external id: a webhook arriving later
        is a duplicate); None when Asaas does not have it as received."""
        payment = await self.kind.fetch_payment(self.ctx, charge_id)
        if payment is None or payment.get("deleted") or payment.get("status") not in PAID:
            return None
        return self.kind._event("payment.cleared", cleared_key(charge_id), payment)

    def record_outcome(self, error: CallFailed | None = None) -> None:
        if error is not None and error.status in CONNECTION_FAULTS:
            record_failure(self.instance, error)
        else:
            record_success(self.instance)


def customer_of(customer: dict[str, Any]) -> GatewayCustomer:
    return GatewayCustomer(id=required_field(customer, "id"), name=customer.get("name"), tax_id=customer.get("cpfCnpj"),
                           email=customer.get("email"), external_reference=customer.get("externalReference"),
                           deleted=bool(customer.get("deleted")))


def charge_of(payment: dict[str, Any]) -> GatewayCharge:
    payment_id = required_field(payment, "id")
    due = payment.get("dueDate")
    try:
        due_date = date.fromisoformat(due) if due else None
    except (TypeError, ValueError):
        raise MalformedPayload(f"payment {payment_id}: dueDate {due!r} is not a date") from None
    status = str(payment.get("status") or "")
    return GatewayCharge(
        id=payment_id, customer=str(payment.get("customer") or ""),
        amount_cents=cents(required_field(payment, "value"), f"payment {payment_id}: value"), due_date=due_date,
        status=status, paid=status in PAID, paid_on=payment.get("paymentDate"),
        description=payment.get("description"), payment_url=payment.get("invoiceUrl"),
        external_reference=payment.get("externalReference"), deleted=bool(payment.get("deleted")),
        billing_type=payment.get("billingType"), boleto_url=payment.get("bankSlipUrl"))


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


_REFUSED = re.compile(r"provider refused with \d{3}: (.*)$", re.DOTALL)
_DESCRIPTION = re.compile(r'"description"\s*:\s*"((?:[^"\\]|\\.)*)"')


def refusal(error: ProviderError) -> str | None:
    """Asaas's own words in a refusal (``{"errors": [{"code": ..., "description": ...}]}``), from the
    answer's excerpt the HTTP helper keeps in the error; None when the answer is not in that shape."""
    match = _REFUSED.search(str(error))
    if not match:
        return None
    excerpt = match.group(1)
    try:
        errors = json.loads(excerpt).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list):
        words = [f"{e['description']} ({e['code']})" if e.get("code") else str(e["description"])
                 for e in errors if isinstance(e, dict) and e.get("description")]
        return "; ".join(words) or None
    cut = [_unescape(m) for m in _DESCRIPTION.findall(excerpt)]  # the excerpt may stop mid-JSON
    return "; ".join(cut) or None


def _unescape(fragment: str) -> str:
    try:
        return json.loads(f'"{fragment}"')
    except ValueError:
        return fragment
