"""The customer lifecycle as an explicit state machine, with its history.

onboarding -> active (started) | terminated
active     -> in_grace (a charge is overdue) | terminated
in_grace   -> active (paid) | blocked (deadline passed) | terminated
blocked    -> active (paid, unblocked) | terminated
terminated -> (final)
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.tenants.customers.models import Customer, Lifecycle, LifecycleTransition
from backoffice.tenants.timeline.models import TimelineEntry

ALLOWED: dict[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.ONBOARDING: frozenset({Lifecycle.ACTIVE, Lifecycle.TERMINATED}),
    Lifecycle.ACTIVE: frozenset({Lifecycle.IN_GRACE, Lifecycle.TERMINATED}),
    Lifecycle.IN_GRACE: frozenset({Lifecycle.ACTIVE, Lifecycle.BLOCKED, Lifecycle.TERMINATED}),
    Lifecycle.BLOCKED: frozenset({Lifecycle.ACTIVE, Lifecycle.TERMINATED}),
    Lifecycle.TERMINATED: frozenset(),
}

LABELS = {
    Lifecycle.ONBOARDING: "onboarding", Lifecycle.ACTIVE: "active", Lifecycle.IN_GRACE: "in grace",
    Lifecycle.BLOCKED: "blocked", Lifecycle.TERMINATED: "terminated",
}


class InvalidTransition(ValueError):
    def __init__(self, current: Lifecycle, target: Lifecycle) -> None:
        super().__init__(f"a customer cannot go from {current.value} to {target.value}")
        self.current, self.target = current, target


def can_transition(customer: Customer, target: Lifecycle) -> bool:
    return target in ALLOWED[customer.lifecycle]


async def transition(
    session: AsyncSession, customer: Customer, target: Lifecycle, *, reason: str, event_id: uuid.UUID | None
) -> LifecycleTransition:
    """Move the customer to ``target``, recording when, why and which event caused it."""
    if not can_transition(customer, target):
        raise InvalidTransition(customer.lifecycle, target)
    now = clock.now()
    record = LifecycleTransition(
        tenant_id=customer.tenant_id, customer_id=customer.id, from_state=customer.lifecycle.value,
        to_state=target.value, reason=reason, event_id=event_id, at=now,
    )
    customer.lifecycle = target
    customer.updated_at = now
    session.add(record)
    session.add(TimelineEntry(
        tenant_id=customer.tenant_id, customer_id=customer.id, at=now, kind="transition",
        title=f"Lifecycle: {LABELS[Lifecycle(record.from_state)]} → {LABELS[target]}", reason=reason,
        event_id=event_id, ref={"from": record.from_state, "to": target.value},
    ))
    return record
