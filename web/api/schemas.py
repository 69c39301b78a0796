"""What /api/v1 accepts and answers: the shapes the OpenAPI document publishes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from backoffice.tenants.apikeys.service import ALL_SCOPES

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class _ShownOnce:
    """Marks an answer's field that carries a secret shown once (see ``OneTimeSecret``)."""

    def __repr__(self) -> str:
        return "ShownOnce"


SHOWN_ONCE = _ShownOnce()
# A secret in an answer, shown once. The idempotency layer (web/api/idempotency.py) never stores it: a
# replay of the request (same key, same Idempotency-Key, same body) answers it as null, with the header
# ``Idempotent-Secret-Withheld`` naming the field. ``endpoint()`` finds these fields on the route's answer.
OneTimeSecret = Annotated[str | None, SHOWN_ONCE]


def one_time_secret_fields(model: Any) -> tuple[str, ...]:
    """The ``OneTimeSecret`` fields of an answer model (none for anything that is not a model)."""
    fields = getattr(model, "model_fields", None) if isinstance(model, type) else None
    return tuple(name for name, info in (fields or {}).items() if SHOWN_ONCE in info.metadata)


def replayed_secret(what: str, lost: str) -> str:
    return (f"{what} Shown only in this answer: store it now. `null` when this answer replays an earlier "
            "request (same key, same `Idempotency-Key`, same body; header `Idempotent-Secret-Withheld` names the "
            f"field): the request was done, but a secret is never shown twice nor stored. {lost}")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


# --- customers ------------------------------------------------------------------------------------

class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    tax_id: str = Field(max_length=32, description="CPF or CNPJ, with or without punctuation.")
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    account_manager_id: uuid.UUID | None = None
    external_ids: dict[str, str] | None = None


class CustomerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    account_manager_id: uuid.UUID | None = None
    external_ids: dict[str, str] | None = None


class CustomerOut(Out):
    id: uuid.UUID
    name: str
    tax_id_kind: Literal["cpf", "cnpj"]
    tax_id: str
    email: str | None
    phone: str | None
    account_manager_id: uuid.UUID | None
    lifecycle: Literal["onboarding", "active", "in_grace", "blocked", "terminated"]
    external_ids: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TimelineEntryOut(Out):
    id: uuid.UUID
    customer_id: uuid.UUID
    at: datetime
    kind: str
    title: str
    reason: str | None
    event_id: uuid.UUID | None
    ref: dict[str, Any]


# --- billing --------------------------------------------------------------------------------------

class ContractOut(Out):
    id: uuid.UUID
    customer_id: uuid.UUID
    plan_code: str
    plan_name: str
    price_cents: int
    currency: str
    billing_day: int
    status: Literal["pending", "active", "canceled"]
    source: str | None
    external_id: str | None
    started_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime


class ChargeOut(Out):
    id: uuid.UUID
    customer_id: uuid.UUID
    contract_id: uuid.UUID | None
    amount_cents: int
    currency: str
    due_date: date
    description: str | None
    status: Literal["pending", "overdue", "paid", "refunded", "canceled"]
    source: str
    external_id: str
    payment_url: str | None
    paid_at: datetime | None
    created_at: datetime


# --- events ---------------------------------------------------------------------------------------

class EventAccepted(BaseModel):
    event_id: uuid.UUID
    status: Literal["accepted", "duplicate"]


class BatchIn(BaseModel):
    events: list[dict[str, Any]] = Field(
        max_length=1000, description="Up to 1,000 events, each shaped as the single POST /events body.")


class BatchItem(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "invalid"]
    event_id: uuid.UUID | None = None
    errors: list[FieldProblem] | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicate: int
    invalid: int
    results: list[BatchItem]


class EventOut(Out):
    id: uuid.UUID
    type: str
    source: str
    external_id: str
    occurred_at: datetime
    received_at: datetime
    customer_id: uuid.UUID | None
    subject: dict[str, Any]
    data: dict[str, Any]
    status: Literal["pending", "processed", "unmatched", "failed"]
    processed_at: datetime | None
    error: str | None


# --- notifications and tasks ----------------------------------------------------------------------

class NotificationOut(Out):
    id: uuid.UUID
    recipient_id: uuid.UUID
    kind: str
    title: str
    body: str
    detail: dict[str, Any]
    customer_id: uuid.UUID | None
    event_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None


class ChecklistItem(BaseModel):
    item: str = Field(min_length=1, max_length=300)
    done: bool


class TaskOut(Out):
    id: uuid.UUID
    assignee_id: uuid.UUID
    kind: str
    title: str
    description: str
    checklist: list[ChecklistItem]
    status: Literal["open", "done", "canceled"]
    due_at: datetime | None
    customer_id: uuid.UUID | None
    event_id: uuid.UUID | None
    created_at: datetime
    completed_at: datetime | None


class TaskPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "done", "canceled"] | None = None
    checklist: list[ChecklistItem] | None = Field(default=None, max_length=100)
    unticked_confirmed: bool = Field(default=False, description=(
        "Complete (status done) even with checklist items unticked; without it that answers 409 naming them."))


# --- API keys -------------------------------------------------------------------------------------

class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    scopes: list[str] = Field(max_length=len(ALL_SCOPES), description="resource:read or resource:write.")
    mode: Literal["live"] = Field(default="live", description="Only live keys are issued.")
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyRoll(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_hours: int = Field(default=24, ge=0, le=168)


class ApiKeyOut(Out):
    id: uuid.UUID
    name: str
    mode: Literal["live", "test"] = Field(description="live; test only on a retired key, which is refused.")
    display_prefix: str
    scopes: list[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None
    replaced_by_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    last_used_ip: str | None


class ApiKeyCreated(ApiKeyOut):
    secret: OneTimeSecret = Field(description=replayed_secret(
        "The key itself (bo_live_...).", "If it was lost, roll the key (POST /api/v1/keys/{key_id}/roll)."))
