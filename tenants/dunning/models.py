"""Late-payment cases: one per overdue charge, with the policy version it started under and the contract it blocks."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import customer_fk, str_enum


class CaseStatus(enum.StrEnum):
    GRACE = "grace"  # deadline running
    BLOCKED = "blocked"  # deadline passed unpaid, service blocked
    RESOLVED = "resolved"  # paid (before or after the block)
    TERMINATED = "terminated"
    CANCELED = "canceled"  # charge canceled or refunded
    AGREEMENT = "agreement"  # waiting on a renegotiation (tenants/agreements): no deadline runs


class DunningCase(TenantOwned, Base):
    __tablename__ = "dunning_cases"
    __table_args__ = (
        *customer_fk(),
        ForeignKeyConstraint(["tenant_id", "charge_id"], ["charges.tenant_id", "charges.id"]),
        ForeignKeyConstraint(["tenant_id", "contract_id"], ["contracts.tenant_id", "contracts.id"]),
        UniqueConstraint("tenant_id", "charge_id"),
        Index("ix_dunning_open", "tenant_id", "customer_id", "status"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    charge_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    # The contract (subscription) the late charge belongs to: what the case blocks. None: the whole customer
    # (a charge of no known contract, a policy with ``block_scope="customer"``, or a case from before 0020).
    contract_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    # A policy change applies to new cases: a running case keeps the version it opened with.
    policy_version: Mapped[int] = mapped_column()
    status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus, 16), default=CaseStatus.GRACE)
    deadline_at: Mapped[datetime] = mapped_column()
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    opened_by_event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
