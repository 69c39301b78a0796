"""What the fault scenario is made of: the two tenants and their stories (see ``scenario.py``), the
events as planned and sent, the faults, and the figures printed at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Issue 18's target: every effect of a crashed job done within 60 s of the crash, with a worker still
# running. The suite fails when the work in flight at a worker kill takes longer than that (plus a margin
# for the measurement itself: the snapshot of the rows in flight is taken just before the kill, and the
# completion times are the database's commit clock). Measured, 2026-12-07 on the 2-core development machine
# shared with other engineers' test runs (load average 6-16): a killed worker's rows done after 16-34 s
# in the CI run and three soak rounds (tests/perf/README.md, "Faults"): their 15 s lease, then the queue of
# recovered work; 60 s leaves room for a second hand-over without hiding a return of the old 60-90 s.
# The other faults are printed against the same target but bounded looser: their rows (lost with Redis,
# handed over by a relay that died, failed by a database restart) then wait behind the backlog the load
# built meanwhile, which on a machine this loaded is over a minute by itself; past 120 s they are stuck.
RECOVERY_TARGET_S = 60.0
RECOVERY_MARGIN_S = 3.0
RECOVERY_BOUND_S = {"worker": RECOVERY_TARGET_S + RECOVERY_MARGIN_S}
RECOVERY_BOUND_OTHER_S = 120.0


def recovery_bound(kind: str) -> float:
    return RECOVERY_BOUND_S.get(kind, RECOVERY_BOUND_OTHER_S)


PLAN_PRO = {"code": "pro", "name": "Plano Pro", "price_cents": 19990}
PLAN_MAX = {"code": "max", "name": "Plano Max", "price_cents": 39990}
BETA_WEBHOOK_TYPES = ["contract.signed", "payment.cleared", "payment.overdue", "subscription.changed",
                      "subscription.canceled", "dunning.deadline_reached"]
FAULTS = ("web", "worker", "scheduler", "redis", "postgres")
LEADER_LOCK = 0x6B6F_0001  # platform/scheduler/leader.py: LOCK_KEY

# Customers per story at scale 1 (about 1,100 events in all).
STORIES = {
    "alfa": {"start_api": 120, "start_asaas": 120, "light": 50, "change": 60, "cancel": 40, "notice": 60, "block": 30},
    "beta": {"start": 150, "cleared": 80, "light": 34, "change": 40, "cancel": 30, "notice": 40, "block": 20},
}
TENANTS = {
    "alfa": {"cnpj": "11.222.333/0001-81", "asaas": True, "start": "payment.cleared", "webhook_types": None,
             "email_channels": ()},
    "beta": {"cnpj": "34.028.316/0001-03", "asaas": False, "start": "contract.signed",
             "webhook_types": BETA_WEBHOOK_TYPES, "email_channels": ("customer.started", "dunning.blocked")},
}


@dataclass
class Customer:
    tenant: str
    n: int
    story: str
    id: uuid.UUID
    email: str
    asaas_id: str | None = None
    overdue_payment: str | None = None  # the Asaas payment of a block/notice story by hook


@dataclass
class Planned:
    tenant: str
    customer: Customer
    kind: str  # "api" | "asaas"
    type: str
    body: dict[str, Any]
    role: str = ""  # "block-overdue", "block-payment"
    acked: bool = False
    event_id: str | None = None
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    refused: str | None = None


@dataclass
class Fault:
    kind: str
    planned_at: float
    at: float | None = None  # monotonic, when it was injected
    db_at: datetime | None = None  # the database's clock at injection
    inflight: list[dict] = field(default_factory=list)  # outbox rows leased and not completed at injection
    detail: str = ""
    recovery_s: float | None = None
    unrecovered: int = 0


@dataclass
class TenantSetup:
    slug: str
    id: uuid.UUID
    admin_id: uuid.UUID
    admin_email: str
    api_key: str
    sender: str
    asaas_instance: uuid.UUID | None = None
    asaas_token: str | None = None
    hook_token: str | None = None


@dataclass
class Figures:
    values: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        width = max(len(k) for k in self.values)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in self.values.items())
