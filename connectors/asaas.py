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
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import brazil_day, cents, json_body, need, same, segment
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.registry import (
    CheckResult, ConnectorKind, Context, InboundRequest, MalformedPayload, ProviderConfig, VerificationFailed,
    register,
)

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


class AsaasConfig(ProviderConfig):
    base_url: HttpUrl = Field(default=HttpUrl("https://api.asaas.com"))
    api_key: SecretStr
    webhook_token: SecretStr


class Ignored(Exception):
    """The request is authentic but carries nothing to store (acknowledged so Asaas does not retry)."""


@register
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

    async def create_customer(self, ctx: Context, *, name: str, tax_id: str, email: str | None = None,
                              external_reference: str | None = None) -> dict[str, Any]:
        """``POST /v3/customers``. Asaas has no idempotency key, so this is sent once, never retried."""
        body = {"name": name, "cpfCnpj": tax_id, "email": email, "externalReference": external_reference}
        response = await self._request(ctx, "POST", "/v3/customers", "POST asaas customer",
                                       json={k: v for k, v in body.items() if v is not None})
        return json_of(response, "POST asaas customer")

    async def create_charge(self, ctx: Context, *, customer: str, amount_cents: int, due_date: str,
                            billing_type: str = "UNDEFINED", description: str | None = None,
                            external_reference: str | None = None) -> dict[str, Any]:
        """``POST /v3/payments``; the amount goes out as a decimal string built from integer cents."""
        value = f"{amount_cents // 100}.{amount_cents % 100:02d}"
        body = {"customer": customer, "billingType": billing_type, "value": value, "dueDate": due_date,
                "description": description, "externalReference": external_reference}
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
                seen.setdefault(need(payment, "id"), payment)
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
        if not same(request.header("asaas-access-token"), ctx.config.webhook_token.get_secret_value()):
            raise VerificationFailed("asaas-access-token does not match this connector's webhook token")
        body = json_body(request)
        name = body.get("event")
        if name not in EVENT_TYPES:
            log.debug("asaas event %r ignored: not one the platform uses", name)
            return []
        event_id = need(body, "id")
        payment_id = need(body, "payment", "id")
        fetched = await self.fetch_payment(ctx, payment_id)
        try:
            payment = self._confirmed(name, payment_id, fetched)
        except Ignored as why:
            log.info("asaas %s for %s not stored: %s", name, payment_id, why)
            return []
        return [self._event(EVENT_TYPES[name], event_id, payment)]

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
            "amount_cents": cents(need(payment, "value"), "payment.value"),
            "due_date": need(payment, "dueDate"),
        }
        if payment.get("description"):
            charge["description"] = payment["description"][:500]
        if payment.get("invoiceUrl"):
            charge["payment_url"] = payment["invoiceUrl"]
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
        return {
            "type": event_type, "source": self.source, "external_id": event_id,
            "customer": {"external_id": need(payment, "customer"), "source": self.source},
            "data": data,
        }


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
