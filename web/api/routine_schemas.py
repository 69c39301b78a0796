"""What the routine routes of /api/v1 (tenant keys) and /api/v1/staff accept and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backoffice.tenants.routines.queries import RunDetail
from backoffice.web.api.schemas import Out

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold a NUL: refused at the edge, naming the field
ROUTINE_NAME = r"^[a-z][a-z0-9_]{0,31}$"  # a query filter's shape; the catalogue says whether it exists
PERIOD = r"^\d{4}-\d{2}(-\d{2})?$"
RunStatusName = Literal["queued", "running", "paused", "succeeded", "partial", "failed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- answers --------------------------------------------------------------------------------------

class RunOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    routine: str = Field(description="The routine's name: see GET /routines.")
    title: str = Field(description="The routine's title in the company's language.")
    period: str = Field(description="YYYY-MM for a monthly routine, YYYY-MM-DD for a daily one.")
    trigger: Literal["schedule", "manual", "retry"]
    status: RunStatusName
    requested_by: str = Field(description="Who started it: system:scheduler, a staff e-mail, cli:<user>, ...")
    parent_run_id: uuid.UUID | None = Field(description="For a retry: the run whose failed items it takes.")
    items_total: int
    items_done: int
    items_failed: int
    items_pending: int
    progress: float = Field(ge=0, le=1, description="Settled items over all items, 0 to 1.")
    summary: dict[str, Any] = Field(description="What the routine reports (counts by outcome).")
    error: str | None = Field(description="Why the run failed as a whole (no connector configured, ...).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class StaffRunOut(RunOut):
    tenant_name: str


class ItemOut(BaseModel):
    id: uuid.UUID
    key: str = Field(description="What the item is about, unique in the run (contract:<id>).")
    label: str
    customer_id: uuid.UUID | None
    status: Literal["pending", "waiting", "done", "failed"]
    attempts: int
    result: dict[str, Any] = Field(description="What it produced (charge id, nota number).")
    error: str | None = Field(description="The provider's words when it failed (or the last retried failure).")
    next_attempt_at: datetime | None
    finished_at: datetime | None


class ItemCounts(BaseModel):
    pending: int
    waiting: int
    done: int
    failed: int


class FindingOut(Out):
    id: uuid.UUID
    day: str
    source: str
    kind: Literal["matched", "unrecorded", "missing", "unknown", "amount_mismatch"]
    reference: str
    charge_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    expected_cents: int | None
    received_cents: int | None
    detail: str | None


class RunDetailOut(RunOut):
    items: list[ItemOut] = Field(description="Failed first, then waiting, pending and done; capped by items_limit.")
    item_counts: ItemCounts = Field(description="Items by status, whatever the filter and the cap.")
    items_truncated: bool = Field(description="More items match than are listed: filter by status or raise the limit.")
    findings: list[FindingOut] = Field(description="A reconciliation run's report, discrepancies first; capped "
                                                   "like the items. Empty for other routines.")
    finding_counts: dict[str, int] = Field(description="Findings by kind.")


class StaffRunDetailOut(RunDetailOut):
    tenant_name: str


class RoutineOut(BaseModel):
    routine: str
    title: str
    item_noun: str = Field(description="What an item of this routine is, plural, in the company's language.")
    schedule: str = Field(description="In words, at the local hour of `timezone`.")
    schedule_kind: Literal["daily", "monthly"]
    hour: int = Field(description="Local hour of the scheduled run (0-23).")
    day: int | None = Field(description="Day of the month (1-28) of a monthly routine.")
    custom_schedule: bool = Field(description="The company's own hour or day instead of the catalogue's.")
    timezone: str
    configured: bool = Field(description="False while the company has no enabled connector of the kinds in "
                                         "`requires`: the schedule skips it and next_run_at is null.")
    requires: list[str] = Field(description="Connector kinds the routine works through (any one will do).")
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    pause_reason: str | None
    next_run_at: datetime | None = Field(description="The next scheduled run; null while paused or not configured.")
    last_run: RunOut | None


class TenantRoutinesOut(BaseModel):
    tenant_id: uuid.UUID
    tenant_name: str
    routines: list[RoutineOut]


# --- requests -------------------------------------------------------------------------------------

class ReasonIn(Strict):
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL,
                               description="Why; kept in the audit log.")


class ScheduleIn(Strict):
    hour: int | None = Field(default=None, description="Local hour, 0-23; null: back to the catalogue's. "
                                                       "Left out: unchanged.")
    day: int | None = Field(default=None, description="Day of the month, 1-28, monthly routines only; null: "
                                                      "back to the catalogue's. Left out: unchanged.")
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class StartRunIn(Strict):
    period: str | None = Field(default=None, max_length=10, pattern=NO_NUL,
                               description="YYYY-MM (monthly) or YYYY-MM-DD (daily); default: the current period.")
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


# --- shaping --------------------------------------------------------------------------------------

def run_out(view: dict[str, Any], tenant_name: str | None = None) -> RunOut:
    if tenant_name is not None:
        return StaffRunOut.model_validate({**view, "tenant_name": tenant_name})
    return RunOut.model_validate(view)


def detail_out(view: dict[str, Any], detail: RunDetail, item_views: list[dict[str, Any]],
               tenant_name: str | None = None) -> RunDetailOut:
    body = {**view, "items": item_views, "item_counts": detail.item_counts, "items_truncated": detail.items_truncated,
            "findings": [FindingOut.model_validate(f) for f in detail.findings],
            "finding_counts": detail.finding_counts}
    if tenant_name is not None:
        return StaffRunDetailOut.model_validate({**body, "tenant_name": tenant_name})
    return RunDetailOut.model_validate(body)
