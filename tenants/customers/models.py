"""The tenant's end customers, whose payments, invoices and contracts the back office handles."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKeyConstraint, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow


class Lifecycle(enum.StrEnum):
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    IN_GRACE = "in_grace"
    BLOCKED = "blocked"
    TERMINATED = "terminated"


class Customer(TenantOwned, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "tax_id"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        ForeignKeyConstraint(["tenant_id", "account_manager_id"], ["tenant_users.tenant_id", "tenant_users.id"]),
        Index("ix_customers_tenant_lifecycle", "tenant_id", "lifecycle"),
    )

    name: Mapped[str] = mapped_column(String(200))
    tax_id_kind: Mapped[str] = mapped_column(String(4))  # cpf | cnpj
    tax_id: Mapped[str] = mapped_column(String(14))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    account_manager_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    lifecycle: Mapped[Lifecycle] = mapped_column(
        Enum(Lifecycle, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=Lifecycle.ONBOARDING,
    )
    # The customer's id in each connector ({"asaas": "cus_...", "stripe": "cus_..."}).
    external_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LifecycleTransition(TenantOwned, Base):
    """The customer's lifecycle history: every change of state, when, why, and which event caused it.
    A row with ``contract_id`` is the stage change of that contract (subscription); without, the customer's own."""

    __tablename__ = "lifecycle_transitions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "contract_id"], ["contracts.tenant_id", "contracts.id"]),
        Index("ix_lifecycle_transitions_customer", "tenant_id", "customer_id", "at"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    contract_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerExternalId(TenantOwned, Base):
    """Which customer a provider's id names: ``customers.external_ids`` as rows, kept by database triggers
    (migration 0009) so every write of a customer keeps it true, whoever writes. An event names its customer
    by the provider's id; this table answers a batch of such names by index, where a lookup into the JSON
    column read every customer of the tenant. Two customers may claim one id (the earliest wins)."""

    __tablename__ = "customer_external_ids"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"],
                             ondelete="CASCADE"),
        Index("ix_customer_external_ids_lookup", "tenant_id", "source", "external_id"),
        Index("ix_customer_external_ids_customer", "tenant_id", "customer_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
