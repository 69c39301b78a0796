"""The catalogue of canonical events: every source (connector webhooks, the API, the scheduler) speaks
these types. Each entry is a pydantic model of the event's ``data``; the README lists them.

Money is integer cents (``*_cents``), currency BRL unless said otherwise; dates are ISO 8601.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

Cents = Annotated[int, Field(ge=0, le=10**13)]
Text = Annotated[str, Field(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerRef(_Strict):
    """How a source names the customer: our id, its own id for the customer, or the CPF/CNPJ."""

    id: uuid.UUID | None = None
    external_id: Text | None = None
    source: Text | None = None  # whose external id; defaults to the event's source
    tax_id: Annotated[str, Field(min_length=11, max_length=18)] | None = None

    @model_validator(mode="after")
    def _one_key(self) -> CustomerRef:
        if not (self.id or self.external_id or self.tax_id):
            raise ValueError("expected one of id, external_id or tax_id")
        return self


class Plan(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Text
    price_cents: Cents
    billing_day: Annotated[int, Field(ge=1, le=28)] | None = None


class ChargeData(_Strict):
    external_id: Text
    # The system that issued the charge when it is not the event's own source: the overdue sweep reports a
    # gateway's charge, which is found by (its source, its id), not by ("sweep", id).
    source: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    amount_cents: Cents
    due_date: date
    description: Text | None = None
    payment_url: HttpUrl | None = None
    contract_external_id: Text | None = None
    # How the customer pays it at the gateway, and the boleto's PDF when there is one.
    billing_type: Literal["BOLETO", "PIX", "CREDIT_CARD", "UNDEFINED"] | None = None
    boleto_url: HttpUrl | None = None
    pix_payload: Annotated[str, Field(min_length=1, max_length=1000)] | None = None  # Pix copia e cola
    boleto_line: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # linha digitável


class ChargeSummary(_Strict):
    """A charge as a routine describes it before (or without) the gateway's id."""

    amount_cents: Cents
    due_date: date
    description: Text | None = None


class PaymentData(_Strict):
    external_id: Text | None = None
    amount_cents: Cents
    paid_at: datetime
    method: Annotated[str, Field(max_length=32)] | None = None


class DocumentLink(_Strict):
    kind: Annotated[str, Field(max_length=32)]
    number: Annotated[str, Field(max_length=64)] | None = None
    url: HttpUrl


class FiscalData(_Strict):
    external_id: Text
    number: Annotated[str, Field(max_length=32)] | None = None
    series: Annotated[str, Field(max_length=16)] | None = None
    verification_code: Annotated[str, Field(max_length=64)] | None = None
    amount_cents: Cents | None = None
    pdf_url: HttpUrl | None = None
    xml_url: HttpUrl | None = None
    issued_at: datetime | None = None
    charge_external_id: Text | None = None


class PaymentCreated(_Strict):
    charge: ChargeData
    plan: Plan | None = None


class PaymentCleared(_Strict):
    charge: ChargeData
    payment: PaymentData
    plan: Plan | None = None
    documents: list[DocumentLink] = Field(default_factory=list, max_length=20)


class PaymentOverdue(_Strict):
    charge: ChargeData


class PaymentRefunded(_Strict):
    charge: ChargeData
    reason: Text | None = None


class PaymentCanceled(_Strict):
    charge: ChargeData
    reason: Text | None = None


class InvoiceIssued(_Strict):
    document: FiscalData
    plan: Plan | None = None


class InvoiceRejected(_Strict):
    document: FiscalData
    message: Annotated[str, Field(min_length=1, max_length=1000)]


class ContractSigned(_Strict):
    envelope_id: Text
    document_url: HttpUrl | None = None
    signed_at: datetime | None = None
    plan: Plan | None = None


class SubscriptionChanged(_Strict):
    subscription_external_id: Text | None = None
    before: Plan
    after: Plan
    effective_at: datetime | None = None


class SubscriptionChangeCanceled(_Strict):
    """A scheduled change of plan (a ``subscription.changed`` with a future ``effective_at``) was called off."""

    subscription_external_id: Text | None = None
    reason: Text | None = None


class SubscriptionChangeDue(_Strict):
    """Emitted by the timer of a scheduled change of plan when its date comes."""

    contract_id: uuid.UUID
    change_event_id: uuid.UUID
    before: Plan
    after: Plan
    effective_at: datetime


class SubscriptionCanceled(_Strict):
    subscription_external_id: Text | None = None
    reason: Text | None = None
    effective_at: datetime | None = None


class RoutineItemFailed(_Strict):
    """Emitted by a back-office routine run when one of its items fails for a customer."""

    routine: Annotated[str, Field(min_length=1, max_length=32)]
    routine_title: Text
    period: Annotated[str, Field(min_length=7, max_length=10)]
    run_id: uuid.UUID
    item: Annotated[str, Field(min_length=1, max_length=300)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    charge: ChargeSummary | None = None


class CaseTimer(_Strict):
    """Emitted by the durable timers of a late-payment case."""

    case_id: uuid.UUID
    reminder: Annotated[int, Field(ge=0, le=60)] | None = None


class AgreementMade(_Strict):
    """Emitted when staff or the front office record a renegotiation (tenants/agreements)."""

    agreement_id: uuid.UUID


CATALOGUE: dict[str, tuple[type[BaseModel], str]] = {
    "payment.created": (PaymentCreated, "A charge was created at the gateway."),
    "payment.cleared": (PaymentCleared, "A payment cleared (received/confirmed); may start the customer."),
    "payment.overdue": (PaymentOverdue, "A charge passed its due date unpaid; starts the grace period."),
    "payment.refunded": (PaymentRefunded, "A payment was refunded."),
    "payment.canceled": (PaymentCanceled, "A charge was canceled or deleted at the gateway."),
    "invoice.issued": (InvoiceIssued, "A nota fiscal was authorised; may start the customer."),
    "invoice.rejected": (InvoiceRejected, "The fiscal issuer (city hall) rejected a nota fiscal."),
    "contract.signed": (ContractSigned, "The customer signed the contract; may start the customer."),
    "subscription.changed": (SubscriptionChanged, "Upgrade, downgrade or add-on: before and after."),
    "subscription.change_canceled": (SubscriptionChangeCanceled, "A scheduled change of plan was called off."),
    "subscription.change_due": (SubscriptionChangeDue, "Timer: a scheduled change of plan takes effect."),
    "subscription.canceled": (SubscriptionCanceled, "The relationship ends: offboarding."),
    "agreement.made": (AgreementMade, "A renegotiation replaced overdue charges by instalments; the case waits on it."),
    "dunning.reminder_due": (CaseTimer, "Timer: remind the end customer of the grace deadline."),
    "dunning.deadline_reached": (CaseTimer, "Timer: the grace deadline passed; block if still unpaid."),
    "customer.termination_due": (CaseTimer, "Timer: blocked for the policy's days; terminate."),
    "routine.item_failed": (RoutineItemFailed, "A back-office routine (billing, invoices) failed an item of the customer."),
}

EVENT_TYPES = tuple(CATALOGUE)
Source = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]


class EventIn(_Strict):
    """One event as a source submits it."""

    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    source: Source
    external_id: Annotated[str, Field(min_length=1, max_length=200)]
    occurred_at: datetime | None = None
    customer: CustomerRef | None = None
    data: dict[str, Any] = Field(default_factory=dict)
