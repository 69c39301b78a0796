"""What billing asks of a payment gateway (Asaas today), in the domain's words.

A gateway is one of the tenant's connections (``tenants/connections.py``) opened into this port: the
routines find the customer there by our reference, create customers and charges, read charges back and
list what the gateway received on a day. Money is integer cents; dates are the gateway's calendar days.
``connectors/`` implements it (``connectors/asaas.py``); a call that fails raises
``tenants.connections.CallFailed`` (a subclass), with ``retryable`` and the provider's ``status``.

The gateway has no idempotency key for creations: callers that must not create twice look their object
up by ``external_reference`` first (``find_customer``, ``find_charge``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from backoffice.tenants.connections import CallFailed, Connection

# Brazilian gateways date everything on São Paulo's calendar.
GATEWAY_CALENDAR = ZoneInfo("America/Sao_Paulo")


class BillingType(enum.StrEnum):
    """How the customer pays a charge; UNDEFINED lets the customer choose on the gateway's invoice page."""

    BOLETO = "BOLETO"
    PIX = "PIX"
    CREDIT_CARD = "CREDIT_CARD"
    UNDEFINED = "UNDEFINED"


@dataclass(frozen=True)
class GatewayCustomer:
    id: str
    name: str | None = None
    tax_id: str | None = None  # CPF or CNPJ digits as the gateway holds them (not yet validated)
    email: str | None = None
    external_reference: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class GatewayCharge:
    id: str
    customer: str  # the gateway's customer id
    amount_cents: int
    due_date: date | None
    status: str  # the gateway's own word (PENDING, RECEIVED, OVERDUE, ...)
    paid: bool  # the status says the money was received (or confirmed)
    paid_on: str | None = None  # YYYY-MM-DD, the gateway's calendar
    description: str | None = None
    payment_url: str | None = None  # the gateway's invoice page
    external_reference: str | None = None
    deleted: bool = False
    billing_type: str | None = None
    boleto_url: str | None = None


@dataclass(frozen=True)
class PixCode:
    payload: str  # the copia-e-cola (BR Code)
    qr_png: str  # the QR code, a base64 PNG
    expires_at: str | None = None


# Which billing types offer which means (Asaas: Pix is enabled for PIX, BOLETO and UNDEFINED charges; a boleto
# exists for BOLETO and UNDEFINED).
OFFERS_PIX = frozenset({BillingType.PIX, BillingType.BOLETO, BillingType.UNDEFINED})
OFFERS_BOLETO = frozenset({BillingType.BOLETO, BillingType.UNDEFINED})


class GatewayCustomers(Protocol):
    """What every gateway answers, even one the platform only receives payments from (Stripe): who one of
    its customers is (``tenants/billing/gateway_customers.py``)."""

    connection: Connection

    @property
    def source(self) -> str:
        """The ``source`` of its events and charges, and the key of ``Customer.external_ids``."""

    async def fetch_customer(self, customer_id: str) -> GatewayCustomer | None:
        """The gateway's record of a customer; None when it does not know it."""


class PaymentGateway(GatewayCustomers, Protocol):
    """A gateway the platform bills through (creates customers and charges at)."""

    async def find_customer(self, *, external_reference: str) -> GatewayCustomer | None: ...

    async def create_customer(self, *, name: str, tax_id: str, email: str | None,
                              external_reference: str) -> GatewayCustomer: ...

    async def find_charge(self, *, external_reference: str) -> GatewayCharge | None: ...

    async def fetch_charge(self, charge_id: str) -> GatewayCharge | None:
        """The charge as the gateway has it now; None when it no longer knows it."""

    async def create_charge(self, *, customer: str, amount_cents: int, due_date: date,
                            billing_type: BillingType = BillingType.UNDEFINED, description: str | None = None,
                            external_reference: str | None = None, fine_percent: Decimal | None = None,
                            interest_percent: Decimal | None = None) -> GatewayCharge: ...

    async def cancel_charge(self, charge_id: str) -> bool:
        """Cancel (delete) an open charge; False when the gateway no longer knows it."""

    async def pix_code(self, charge_id: str) -> PixCode | None:
        """The charge's Pix copia-e-cola and QR code; None when the gateway does not know the charge."""

    async def boleto_line(self, charge_id: str) -> str | None:
        """The charge's boleto linha digitável; None when the gateway does not know the charge."""

    async def received_on(self, day: str) -> list[GatewayCharge]:
        """Every charge the gateway received on ``day`` (YYYY-MM-DD), each once."""

    async def create_instalments(self, *, customer: str, total_cents: int, count: int, first_due: date,
                                 description: str, external_reference: str) -> tuple[str, list[GatewayCharge]]:
        """A renegotiation's plan (``tenants/agreements``): ``count`` monthly charges adding up to
        ``total_cents`` from ``first_due``; the plan's id and its charges in order. Looks up
        ``external_reference`` first: a plan created before a lost answer is adopted, not made twice."""

    async def cleared_event(self, charge_id: str) -> dict[str, Any] | None:
        """The canonical ``payment.cleared`` event the gateway's own webhook would have produced for this
        charge (same external id, so a late webhook is a duplicate): a reconciliation repair ingests it.
        None when the gateway does not have the charge as received."""

    def record_outcome(self, error: CallFailed | None = None) -> None:
        """Health bookkeeping on the connection after its calls: a success, or a failure that says the
        connection itself is wrong (credentials, address). A refusal of a customer's data is a success:
        the gateway answered."""
