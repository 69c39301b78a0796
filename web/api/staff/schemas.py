"""What /api/v1/staff accepts and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backoffice.web.api.schemas import EventOut, Out


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenIn(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1000)


class TokenOut(BaseModel):
    token: str = Field(description="bo_staff_...; send as Authorization: Bearer. Shown once.")
    expires_at: datetime


class TenantIn(Strict):
    slug: str = Field(max_length=63)
    display_name: str = Field(max_length=200)
    legal_name: str = Field(max_length=200)
    cnpj: str = Field(max_length=32)
    timezone: str = Field(default="America/Sao_Paulo", max_length=64)
    locale: str = Field(default="pt-BR", max_length=16)
    branding: dict[str, str] | None = None
    reason: str | None = Field(default=None, max_length=1000)


class TenantOut(Out):
    id: uuid.UUID
    slug: str
    display_name: str
    legal_name: str
    cnpj: str
    status: Literal["active", "suspended"]
    suspended_reason: str | None
    timezone: str
    locale: str
    branding: dict[str, Any]
    api_key_max_days: int | None
    api_rate_limit_per_minute: int | None
    custom_host: str | None = Field(description="The host the portal is served on (verified).")
    pending_host: str | None = Field(description="A host waiting for its DNS TXT proof.")
    host_verification: dict[str, str] | None = Field(
        default=None, description="The TXT record the client publishes for the pending host (name, type, value).")
    created_at: datetime


class TenantSettingsPatch(Strict):
    timezone: str | None = Field(default=None, max_length=64, description="An IANA time zone.")
    locale: str | None = Field(default=None, max_length=16, description="pt-BR or en.")
    api_key_max_days: int | None = Field(default=None, description="Longest API key lifetime; null: no maximum.")
    api_rate_limit_per_minute: int | None = Field(
        default=None, description="Most requests a minute a key may be given (and a new key's rate); null: 600, no cap.")
    reason: str | None = Field(default=None, max_length=1000)


class CustomHostIn(Strict):
    host: str = Field(max_length=253, description="The host name; routing uses it once its DNS TXT proof is seen.")
    reason: str | None = Field(default=None, max_length=1000)


class ConnectionCheckOut(BaseModel):
    ok: bool | None = Field(description="null: the kind has nothing to call (it only receives webhooks).")
    status: str = Field(description="The provider's answer: an HTTP status, an SMTP reply code, or what failed.")
    message: str


class Reason(Strict):
    reason: str | None = Field(default=None, max_length=1000)


class SuspendIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class BrandingIn(Strict):
    colours: dict[str, str] = Field(description="Known keys only (primary, secondary, ...), each #rrggbb.")


class PolicyOut(BaseModel):
    version: int
    config: dict[str, Any]


class PolicyPatch(Strict):
    changes: dict[str, Any] = Field(description="Top-level policy keys to replace.")
    reason: str | None = Field(default=None, max_length=500)


class PolicyVersionOut(Out):
    version: int
    config: dict[str, Any]
    created_by: str
    reason: str | None
    created_at: datetime


class AssignmentIn(Strict):
    staff_email: str = Field(max_length=254)
    reason: str = Field(max_length=1000, description="Why; required, kept in the audit log.")
    hand_over_to: str | None = Field(default=None, max_length=254, description=(
        "Demobilise only: the e-mail of a staff member serving the tenant who takes the person's open routine "
        "work in the same action."))


class HandOverIn(Strict):
    from_staff_email: str = Field(max_length=254)
    to_staff_email: str = Field(max_length=254, description="Must serve the tenant (mobilised on it, or an admin).")
    reason: str = Field(max_length=1000, description="Why; required, kept in the audit log.")


class HandOverOut(BaseModel):
    moved: dict[str, list[uuid.UUID]] = Field(description="The ids moved, by kind of work (routine_runs).")


class AssignmentOut(Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    staff_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None


class DeadMessageOut(Out):
    id: uuid.UUID
    channel: str
    target: str | None
    status: str
    attempts: int
    last_error: str | None
    customer_id: uuid.UUID | None
    event_id: uuid.UUID | None
    created_at: datetime


class DeadLettersOut(BaseModel):
    events: list[EventOut] = Field(description="Events whose processing failed.")
    messages: list[DeadMessageOut] = Field(description="Outbound messages that are dead or failing.")


class AuditOut(Out):
    id: uuid.UUID
    occurred_at: datetime
    tenant_id: uuid.UUID | None
    actor_type: str
    actor_id: str | None
    actor_label: str
    action: str
    target_type: str
    target_id: str | None
    reason: str | None
    detail: dict[str, Any]


class ConnectorIn(Strict):
    kind: str = Field(max_length=64, description="A connector kind: see GET /staff/connector-kinds.")
    name: str = Field(max_length=200)
    config: dict[str, Any] = Field(description="The kind's settings; secret fields are encrypted at rest.")
    enabled: bool = True
    reason: str | None = Field(default=None, max_length=1000)
    host_override: str | None = Field(default=None, max_length=253, description=(
        "Provider admins only: one host outside the provider's documented ones this connector may call "
        "(audited)."))


class ConnectorPatch(Strict):
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = Field(default=None, description="Fields to change; a secret left out is kept.")
    enabled: bool | None = None
    reason: str | None = Field(default=None, max_length=1000)
    host_override: str | None = Field(default=None, max_length=253, description=(
        "Provider admins only: one host outside the provider's documented ones this connector may call, "
        "or null to withdraw it (audited)."))


class ConnectorOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    enabled: bool
    config: dict[str, Any] = Field(description="Secret fields are shown redacted, never in clear.")
    health: str
    last_error: str | None
    last_success_at: datetime | None
    last_error_at: datetime | None


class ConnectorKindOut(BaseModel):
    name: str
    title: str
    inbound: bool
    channel: str | None
    secret_fields: list[str]
    hosts: list[str] = Field(description="The provider's documented API hosts (empty: the tenant's own address).")
