"""The customer lifecycle as an explicit state machine, with its history.

onboarding -> active (started) | terminated
active     -> in_grace (a charge is overdue) | terminated
in_grace   -> active (paid) | blocked (deadline passed) | terminated
blocked    -> active (paid, unblocked) | in_grace (one contract unblocked, another still late) | terminated
terminated -> (final)

A contract (subscription) has a stage of its own (``Contract.lifecycle``: active, in grace, blocked): a late
charge of one subscription puts that subscription in grace and blocks it, not the others. The customer's
stage, while started, summarises its active contracts: blocked only when every one of them is blocked, in
grace when any is in grace or blocked, active otherwise (:func:`summarise`). A customer with no active
contract (charges of no subscription) is summarised from its open cases directly.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from collections.abc import Iterable

from backoffice.platform import clock
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Customer, Lifecycle, LifecycleTransition
from backoffice.tenants.timeline.messages import Msg, Stage, stored_message
from backoffice.tenants.timeline.models import TimelineEntry

ALLOWED: dict[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.ONBOARDING: frozenset({Lifecycle.ACTIVE, Lifecycle.TERMINATED}),
    # active -> blocked: the summary of a customer whose contracts were all blocked at once (a customer-wide case).
    Lifecycle.ACTIVE: frozenset({Lifecycle.IN_GRACE, Lifecycle.BLOCKED, Lifecycle.TERMINATED}),
    Lifecycle.IN_GRACE: frozenset({Lifecycle.ACTIVE, Lifecycle.BLOCKED, Lifecycle.TERMINATED}),
    Lifecycle.BLOCKED: frozenset({Lifecycle.ACTIVE, Lifecycle.IN_GRACE, Lifecycle.TERMINATED}),
    Lifecycle.TERMINATED: frozenset(),
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
        to_state=target.value, reason=str(reason), event_id=event_id, at=now,
    )
    customer.lifecycle = target
    customer.updated_at = now
    session.add(record)
    title = Msg("Lifecycle: {before} → {after}", before=Stage(record.from_state), after=Stage(target.value))
    session.add(TimelineEntry(
        tenant_id=customer.tenant_id, customer_id=customer.id, at=now, kind="transition", title=str(title),
        reason=str(reason), message=stored_message(title, reason), event_id=event_id,
        ref={"from": record.from_state, "to": target.value},
    ))
    return record


# --- contracts (subscriptions) --------------------------------------------------------------------------

SERVICE_STAGES = (Lifecycle.ACTIVE, Lifecycle.IN_GRACE, Lifecycle.BLOCKED)  # where a started customer's stage moves


def stage_from(reaching: Iterable[bool]) -> Lifecycle:
    """The stage open late-payment cases give what they reach: ``reaching`` says, per open case, whether it is
    blocked (True) or still in grace (False)."""
    states = list(reaching)
    if any(states):
        return Lifecycle.BLOCKED
    return Lifecycle.IN_GRACE if states else Lifecycle.ACTIVE


def summarise(contracts: Iterable[Contract], customer_wide: Lifecycle = Lifecycle.ACTIVE) -> Lifecycle:
    """The customer's stage from its contracts: blocked only when every active contract is blocked, in grace when
    any is in grace or blocked. ``customer_wide`` is the stage of the customer's cases that reach no contract,
    what counts when the customer has no active contract."""
    stages = [c.lifecycle for c in contracts if c.status == ContractStatus.ACTIVE]
    if not stages:
        return customer_wide
    if all(stage == Lifecycle.BLOCKED for stage in stages):
        return Lifecycle.BLOCKED
    if any(stage != Lifecycle.ACTIVE for stage in stages):
        return Lifecycle.IN_GRACE
    return Lifecycle.ACTIVE


def contract_transition(
    session: AsyncSession, customer: Customer, contract: Contract, target: Lifecycle, *, reason: str,
    event_id: uuid.UUID | None,
) -> LifecycleTransition | None:
    """Move one contract to ``target`` (active, in grace, blocked), recorded in the customer's lifecycle history
    with the contract's id and on the timeline. Nothing when it is there already."""
    if target not in SERVICE_STAGES:
        raise InvalidTransition(contract.lifecycle, target)
    current = contract.lifecycle or Lifecycle.ACTIVE
    if current == target:
        return None
    now = clock.now()
    record = LifecycleTransition(
        tenant_id=customer.tenant_id, customer_id=customer.id, contract_id=contract.id, from_state=current.value,
        to_state=target.value, reason=str(reason), event_id=event_id, at=now,
    )
    contract.lifecycle = target
    contract.updated_at = now
    session.add(record)
    title = Msg("Subscription {plan}: {before} → {after}", plan=contract.plan_name, before=Stage(current.value),
                after=Stage(target.value))
    session.add(TimelineEntry(
        tenant_id=customer.tenant_id, customer_id=customer.id, at=now, kind="transition", title=str(title)[:300],
        reason=str(reason), message=stored_message(title, reason), event_id=event_id,
        ref={"from": current.value, "to": target.value, "contract_id": str(contract.id)},
    ))
    return record
