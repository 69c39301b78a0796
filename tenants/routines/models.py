"""Back-office routines as records: each run of a routine for a tenant and period, its items, and the
tenant's settings for each routine (paused, schedule).

A run's work is split into items (one contract to bill, one payment to invoice, one gateway account to
reconcile), each handed to the shared workers through the outbox, so a large tenant's run spreads over
every worker, the relay's per-tenant cap keeps it fair, and a crash resumes at the items not yet done.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKeyConstraint, Index, Integer, SmallInteger, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.types import str_enum


class Trigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"  # created; its items are being listed
    RUNNING = "running"
    PAUSED = "paused"  # the routine is paused for the tenant: pending items wait for the resume
    SUCCEEDED = "succeeded"  # every item done
    PARTIAL = "partial"  # finished, some items failed
    FAILED = "failed"  # finished, nothing done: every item failed, or the run could not be planned


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


class ItemStatus(enum.StrEnum):
    PENDING = "pending"  # queued for a worker (or waiting for a retry after a provider hiccup)
    WAITING = "waiting"  # handed to the provider, following its status (a nota being authorised)
    DONE = "done"
    FAILED = "failed"


class RoutineRun(TenantOwned, Base):
    __tablename__ = "routine_runs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        ForeignKeyConstraint(["tenant_id", "parent_run_id"], ["routine_runs.tenant_id", "routine_runs.id"]),
        # One run per routine, tenant and period at a time.
        Index("uq_routine_runs_active", "tenant_id", "routine", "period", unique=True,
              postgresql_where=text("status IN ('queued', 'running', 'paused')"),
              sqlite_where=text("status IN ('queued', 'running', 'paused')")),
        # The schedule starts a period once, whatever happens to that run afterwards.
        Index("uq_routine_runs_scheduled", "tenant_id", "routine", "period", unique=True,
              postgresql_where=text("\"trigger\" = 'schedule'"), sqlite_where=text("\"trigger\" = 'schedule'")),
        Index("ix_routine_runs_recent", "tenant_id", "routine", "created_at"),
        Index("ix_routine_runs_status", "status", "created_at"),
        Index("ix_routine_runs_handler", "handled_by", "tenant_id", postgresql_where=text("handled_by IS NOT NULL"),
              sqlite_where=text("handled_by IS NOT NULL")),
    )

    routine: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(10))  # 2026-11 (monthly) or 2026-11-23 (daily)
    trigger: Mapped[Trigger] = mapped_column(str_enum(Trigger, 16))
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 16), default=RunStatus.QUEUED)
    parent_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # the run whose failed items a retry takes
    requested_by: Mapped[str] = mapped_column(String(200))  # actor label: system:scheduler, staff:ana@...
    # The staff member who follows the run up (its progress, its failed items): who started it, until a
    # hand-over moves it (tenants/staff/service.py hand_over). None for the scheduler's and the CLI's runs.
    handled_by: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    items_done: Mapped[int] = mapped_column(Integer, default=0)
    items_failed: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the routine reports (reconciliation counts)
    error: Mapped[str | None] = mapped_column(String(2000))  # why a run failed as a whole
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RunItem(TenantOwned, Base):
    __tablename__ = "routine_run_items"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "run_id"], ["routine_runs.tenant_id", "routine_runs.id"]),
        UniqueConstraint("tenant_id", "run_id", "key"),
        Index("ix_routine_run_items_status", "tenant_id", "run_id", "status"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    key: Mapped[str] = mapped_column(String(128))  # what the item is about, unique in the run (contract:<id>)
    label: Mapped[str] = mapped_column(String(300))  # what a person reads: "ACME Ltda — Plano Pro, 2026-11"
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # whose item it is, for the front office
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the routine's input for the item
    status: Mapped[ItemStatus] = mapped_column(str_enum(ItemStatus, 16), default=ItemStatus.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what it produced (charge id, nota number)
    error: Mapped[str | None] = mapped_column(String(2000))  # the provider's words when it failed
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RoutineSetting(TenantOwned, Base):
    """A tenant's own settings for one routine; no row means the catalogue's defaults, running."""

    __tablename__ = "routine_settings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        UniqueConstraint("tenant_id", "routine"),
    )

    routine: Mapped[str] = mapped_column(String(32))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column()
    paused_by: Mapped[str | None] = mapped_column(String(200))
    pause_reason: Mapped[str | None] = mapped_column(String(500))
    hour: Mapped[int | None] = mapped_column(SmallInteger)  # local hour; None: the catalogue's
    day: Mapped[int | None] = mapped_column(SmallInteger)  # day of the month (monthly routines); None: the catalogue's
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FindingKind(enum.StrEnum):
    MATCHED = "matched"  # the gateway received it, the platform has the charge paid, same amount
    UNRECORDED = "unrecorded"  # the gateway received it, the platform's charge is still open
    MISSING = "missing"  # the platform recorded a payment that day the gateway does not list
    UNKNOWN = "unknown"  # the gateway received a payment the platform has no charge for
    AMOUNT_MISMATCH = "amount_mismatch"  # the gateway received a different amount than the charge's


class ReconciliationFinding(TenantOwned, Base):
    """One line of a reconciliation run's report. Each run keeps its own report: a re-run of a day writes
    its own lines and leaves the earlier run's as they were; the day's answer is its latest run's."""

    __tablename__ = "reconciliation_findings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "run_id"], ["routine_runs.tenant_id", "routine_runs.id"]),
        UniqueConstraint("tenant_id", "run_id", "source", "kind", "reference"),
        Index("ix_reconciliation_findings_day", "tenant_id", "day", "kind"),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    day: Mapped[str] = mapped_column(String(10))  # the reconciled day, YYYY-MM-DD
    source: Mapped[str] = mapped_column(String(32))  # the gateway connector's kind (asaas)
    connector_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())  # the gateway account it came from
    kind: Mapped[FindingKind] = mapped_column(str_enum(FindingKind, 24))
    reference: Mapped[str] = mapped_column(String(128))  # the gateway's payment id, or the charge's
    charge_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    expected_cents: Mapped[int | None] = mapped_column(BigInteger)  # what the platform says
    received_cents: Mapped[int | None] = mapped_column(BigInteger)  # what the gateway says
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
