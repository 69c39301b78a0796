"""Stripe (card payments): https://docs.stripe.com/webhooks#verify-manually

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``: HMAC-SHA256 with the endpoint's ``whsec_``
secret over ``f"{t}.{raw body}"``; any v1 may match (Stripe sends several while a secret rolls);
a timestamp more than 300 s from now is refused (replay protection). Events are deduplicated on their
``evt_`` id. Amounts are already integer cents.

Receiving needs only the endpoint secret. An optional ``api_key`` (a restricted key that may read the
balance) lets the console test the connection: ``GET /v1/balance`` (https://docs.stripe.com/api/balance),
the cheapest authenticated read; without a key there is nothing to call and no address to check.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import from_unix, json_body, required_field, segment
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.kinds import (
    CheckResult, ConnectorKind, Context, InboundRequest, MalformedPayload, ProviderConfig, VerificationFailed,
)
from backoffice.platform import clock
from backoffice.tenants.billing.ports import GatewayCustomer
from backoffice.tenants.connections import Connection

log = logging.getLogger(__name__)
TOLERANCE = 300


class StripeConfig(ProviderConfig):
    webhook_secret: SecretStr
    tolerance_seconds: int = Field(default=TOLERANCE, ge=1, le=3600)
    api_key: SecretStr | None = None  # only for the connection test (rk_... with Balance read)
    base_url: HttpUrl = Field(default=HttpUrl("https://api.stripe.com"))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, secret: str, *, tolerance: int = TOLERANCE, now: float | None = None) -> int:
    """Check a Stripe-Signature header; returns its timestamp or raises VerificationFailed."""
    if not header:
        raise VerificationFailed("missing Stripe-Signature header")
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        raise VerificationFailed("Stripe-Signature lacks t= or v1=")
    expected = sign(secret, int(timestamp), body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise VerificationFailed("no v1 signature matches this connector's endpoint secret")
    current = clock.now().timestamp() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise VerificationFailed(f"signature timestamp outside the {tolerance} s tolerance (replayed or stale)")
    return int(timestamp)


class Stripe(ConnectorKind):
    name = "stripe"
    title = "Stripe (card payments)"
    config_model = StripeConfig
    inbound = True
    hosts = frozenset({"api.stripe.com"})  # receiving needs no call; the connection test reaches only this
    url_fields = ("base_url",)

    def targets(self, config: StripeConfig) -> dict[str, tuple[str, int]]:
        return super().targets(config) if config.api_key is not None else {}  # no key: nothing is called

    async def check(self, ctx: Context) -> CheckResult:
        if ctx.config.api_key is None:
            return await super().check(ctx)
        label = "GET stripe balance"
        response = await ctx.http.request(
            "GET", str(ctx.config.base_url).rstrip("/") + "/v1/balance", label=label,
            headers={"Authorization": f"Bearer {ctx.config.api_key.get_secret_value()}"})
        body = json_of(response, label)
        mode = "livemode" if body.get("livemode") else "testmode"
        currencies = ", ".join(sorted({str(item.get("currency", "?")).upper() for item in body.get("available") or []}))
        return CheckResult(True, str(response.status_code), f"balance ({mode}{', ' + currencies if currencies else ''})")

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        verify(request.header("stripe-signature"), request.body, ctx.config.webhook_secret.get_secret_value(),
               tolerance=ctx.config.tolerance_seconds)
        body = json_body(request)
        event_id, event_type = required_field(body, "id"), required_field(body, "type")
        obj = required_field(body, "data", "object")
        handler = {
            "invoice.paid": self._invoice_paid,
            "invoice.payment_failed": self._invoice_failed,
            "customer.subscription.updated": self._subscription_updated,
            "customer.subscription.deleted": self._subscription_deleted,
        }.get(event_type)
        if handler is None:
            log.debug("stripe event %s ignored: not one the platform uses", event_type)
            return []
        made = handler(body, obj)
        if made is None:
            return []
        made_type, data = made
        return [{"type": made_type, "source": self.source, "external_id": event_id,
                 "occurred_at": _iso(from_unix(body.get("created"))),
                 "customer": {"external_id": required_field(obj, "customer"), "source": self.source}, "data": data}]

    def _charge(self, invoice: dict[str, Any]) -> dict[str, Any]:
        due = from_unix(invoice.get("due_date")) or from_unix(required_field(invoice, "created"))
        charge = {"external_id": required_field(invoice, "id"), "amount_cents": int(invoice.get("amount_due") or 0),
                  "due_date": due.date().isoformat()}
        if invoice.get("hosted_invoice_url"):
            charge["payment_url"] = invoice["hosted_invoice_url"]
        if invoice.get("description"):
            charge["description"] = invoice["description"][:500]
        if invoice.get("subscription"):
            charge["contract_external_id"] = str(invoice["subscription"])
        return charge

    def _invoice_paid(self, body: dict[str, Any], invoice: dict[str, Any]):
        paid_at = from_unix((invoice.get("status_transitions") or {}).get("paid_at")) or from_unix(body.get("created"))
        if paid_at is None:
            raise MalformedPayload("missing field data.object.status_transitions.paid_at")
        data: dict[str, Any] = {"charge": self._charge(invoice), "payment": {
            "external_id": str(invoice.get("payment_intent") or invoice["id"]),
            "amount_cents": int(invoice.get("amount_paid") or 0), "paid_at": paid_at.isoformat(), "method": "card"}}
        if invoice.get("invoice_pdf"):
            data["documents"] = [{"kind": "invoice", "number": invoice.get("number"), "url": invoice["invoice_pdf"]}]
            data["documents"][0] = {k: v for k, v in data["documents"][0].items() if v is not None}
        return "payment.cleared", data

    def _invoice_failed(self, body: dict[str, Any], invoice: dict[str, Any]):
        return "payment.overdue", {"charge": self._charge(invoice)}

    def _subscription_updated(self, body: dict[str, Any], subscription: dict[str, Any]):
        previous = (body.get("data") or {}).get("previous_attributes") or {}
        if "items" not in previous and "plan" not in previous:
            log.debug("stripe subscription update without a plan change ignored")
            return None
        before = _plan(previous, subscription)
        after = _plan(subscription, subscription)
        return "subscription.changed", {
            "subscription_external_id": required_field(subscription, "id"), "before": before, "after": after,
            "effective_at": _iso(from_unix(body.get("created")))}

    def _subscription_deleted(self, body: dict[str, Any], subscription: dict[str, Any]):
        details = subscription.get("cancellation_details") or {}
        ended = from_unix(subscription.get("ended_at")) or from_unix(subscription.get("canceled_at"))
        data = {"subscription_external_id": required_field(subscription, "id"),
                "reason": details.get("reason") or details.get("comment"), "effective_at": _iso(ended)}
        return "subscription.canceled", {k: v for k, v in data.items() if v is not None}


CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,64}")
BRAZILIAN_TAX_IDS = ("br_cnpj", "br_cpf")


class StripeCustomers:
    """The tenant's Stripe account as the domain's ``GatewayCustomers`` (``tenants/billing/ports.py``): who
    one of its customers is, so a payment of a customer born at Stripe's checkout can start its process.
    Reading needs the connector's ``api_key`` (a restricted key with Customers read)."""

    def __init__(self, ctx: Context, instance: ConnectorInstance, connection: Connection,
                 kind: Stripe | None = None) -> None:
        self.ctx, self.instance, self.connection = ctx, instance, connection
        self.kind = kind or Stripe()

    @property
    def source(self) -> str:
        return self.kind.source

    async def fetch_customer(self, customer_id: str) -> GatewayCustomer | None:
        """``GET /v1/customers/{id}?expand[]=tax_ids`` (https://docs.stripe.com/api/customers/retrieve): name,
        email, and the customer's Brazilian tax id (``tax_ids`` of type ``br_cnpj`` or ``br_cpf``); None when
        Stripe does not know the customer. A deleted customer answers ``{"id", "deleted": true}``."""
        key = self.ctx.config.api_key
        if key is None:
            raise ProviderError(f"Stripe connector {self.connection.name!r} has no api_key to read customers with",
                                retryable=False)
        path = "/v1/customers/" + segment(customer_id, CUSTOMER_ID, "customer", "a Stripe customer id (cus_...)")
        label = "GET stripe customer"
        try:
            response = await self.ctx.http.request(
                "GET", str(self.ctx.config.base_url).rstrip("/") + path, params={"expand[]": "tax_ids"},
                headers={"Authorization": f"Bearer {key.get_secret_value()}"}, label=label)
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        body = json_of(response, label)
        tax_ids = [t for t in ((body.get("tax_ids") or {}).get("data") or []) if isinstance(t, dict)]
        tax_id = next((str(t.get("value")) for kind in BRAZILIAN_TAX_IDS for t in tax_ids
                       if t.get("type") == kind and t.get("value")), None)
        return GatewayCustomer(id=required_field(body, "id"), name=body.get("name"), tax_id=tax_id,
                               email=body.get("email"), deleted=bool(body.get("deleted")))


def _plan(holder: dict[str, Any], subscription: dict[str, Any]) -> dict[str, Any]:
    """A plan from a subscription (or its previous attributes): the first item's price, or legacy ``plan``."""
    items = ((holder.get("items") or {}).get("data") or [])
    price = (items[0].get("price") or items[0].get("plan")) if items else holder.get("plan")
    if not isinstance(price, dict):
        raise MalformedPayload("missing field items.data[0].price")
    amount = price.get("unit_amount", price.get("amount"))
    if amount is None:
        raise MalformedPayload("missing field price.unit_amount")
    code = str(price.get("lookup_key") or required_field(price, "id"))[:64]
    return {"code": code, "name": str(price.get("nickname") or code)[:500], "price_cents": int(amount)}


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None
