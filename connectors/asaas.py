"""Asaas (payments): https://docs.asaas.com

- API: ``{base_url}/v3/...`` with the ``access_token`` header.
- Webhooks: Asaas signs nothing; it sends the static token configured for the webhook in the
  ``asaas-access-token`` header. We compare it in constant time, and then trust only what we fetch back
  from the API (``GET /v3/payments/{id}``): the fetched status must confirm the event and the fetched
  value is what we record, so a leaked token alone cannot clear a payment.
- Events are deduplicated on the body's ``id`` (``evt_...``), which Asaas keeps across its retries.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import brazil_day, cents, json_body, need, same
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.registry import (
    ConnectorKind, Context, InboundRequest, KindConfig, MalformedPayload, VerificationFailed, register,
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
# The fetched status that confirms each event (None: any status; creation is a past fact).
CONFIRMS: dict[str, set[str] | None] = {
    "PAYMENT_CREATED": None,
    "PAYMENT_CONFIRMED": PAID | {"REFUNDED", "REFUND_REQUESTED", "REFUND_IN_PROGRESS"},
    "PAYMENT_RECEIVED": PAID | {"REFUNDED", "REFUND_REQUESTED", "REFUND_IN_PROGRESS"},
    "PAYMENT_OVERDUE": {"OVERDUE"},
    "PAYMENT_REFUNDED": {"REFUNDED"},
    "PAYMENT_DELETED": None,  # checked through the fetched object's ``deleted`` flag
}


class AsaasConfig(KindConfig):
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

    def _url(self, ctx: Context, path: str) -> str:
        return str(ctx.config.base_url).rstrip("/") + path

    def _headers(self, ctx: Context) -> dict[str, str]:
        return {"access_token": ctx.config.api_key.get_secret_value(), "Content-Type": "application/json"}

    async def fetch_payment(self, ctx: Context, payment_id: str) -> dict[str, Any] | None:
        """The payment as Asaas has it now; None when Asaas no longer knows it (404)."""
        try:
            response = await ctx.http.request("GET", self._url(ctx, f"/v3/payments/{payment_id}"),
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
        response = await ctx.http.request("POST", self._url(ctx, "/v3/customers"), headers=self._headers(ctx),
                                          json={k: v for k, v in body.items() if v is not None},
                                          label="POST asaas customer")
        return json_of(response, "POST asaas customer")

    async def create_charge(self, ctx: Context, *, customer: str, amount_cents: int, due_date: str,
                            billing_type: str = "UNDEFINED", description: str | None = None,
                            external_reference: str | None = None) -> dict[str, Any]:
        """``POST /v3/payments``; the amount goes out as a decimal string built from integer cents."""
        value = f"{amount_cents // 100}.{amount_cents % 100:02d}"
        body = {"customer": customer, "billingType": billing_type, "value": value, "dueDate": due_date,
                "description": description, "externalReference": external_reference}
        response = await ctx.http.request("POST", self._url(ctx, "/v3/payments"), headers=self._headers(ctx),
                                          json={k: v for k, v in body.items() if v is not None},
                                          label="POST asaas payment")
        return json_of(response, "POST asaas payment")

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
