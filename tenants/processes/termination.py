"""End of the relationship: offboarding task, access revoked on the tenant's platform, open cases and
timers closed, the responsible person told.

A customer holds subscriptions: the end of one of them (its ``subscription.canceled``, or its own late-payment
case blocked for the policy's days) ends that contract only, while the customer keeps another active one;
the end of the last one ends the relationship."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from backoffice.platform import clock
from backoffice.platform.timers.service import cancel_timers
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.lifecycle import can_transition, transition
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.processes.context import plan_view
from backoffice.tenants.processes.late_payment import case_of, contract_view, follow_cases, timer_prefix
from backoffice.tenants.processes.engine import Step, handles
from backoffice.tenants.timeline.messages import Msg


@handles("subscription.canceled")
async def on_subscription_canceled(step: Step) -> None:
    reason = step.data.get("reason") or Msg("The subscription was canceled")
    named = step.data.get("subscription_external_id")
    contracts = await step.known.contracts(step.customer)
    contract = next((c for c in contracts if named and c.external_id == named), None)
    if contract is not None:
        if contract.status == ContractStatus.CANCELED:
            step.effects.timeline(Msg("Subscription {plan} already canceled", plan=contract.plan_name), reason=reason)
            return
        await terminate_contract(step, contract, reason=reason)
        return
    await terminate(step, reason=reason)


async def terminate_contract(step: Step, contract: Contract, *, reason: str) -> None:
    """End one subscription: its open cases and timers closed, its entitlement deprovisioned on the tenant's
    platform; the customer's stage follows its other contracts. The last active one ends the relationship."""
    contracts = await step.known.contracts(step.customer)
    others = [c for c in contracts if c.id != contract.id and c.status == ContractStatus.ACTIVE]
    if not others:
        await terminate(step, reason=reason)
        return
    contract.status = ContractStatus.CANCELED
    contract.canceled_at = clock.now()
    for case in await step.known.cases(step.customer):
        if case.contract_id == contract.id and case.status in (CaseStatus.GRACE, CaseStatus.BLOCKED):
            case.status = CaseStatus.TERMINATED
            await cancel_timers(step.session, step.tenant.id, key_prefix=timer_prefix(case))
    await step.effects.command("end:deprovision", command="deprovision", reason=reason,
                               data={"scope": "contract", "contract": contract_view(contract),
                                     "entitlement": contract.plan_code, "plans": [plan_view(contract)]})
    step.effects.timeline(Msg("Subscription {plan} ended", plan=contract.plan_name), reason=reason,
                          ref={"contract_id": str(contract.id)})
    await follow_cases(step, reason=Msg("Subscription {plan} ended: {reason}", plan=contract.plan_name, reason=reason))


async def terminate(step: Step, *, reason: str) -> None:
    customer = step.customer
    if not can_transition(customer, Lifecycle.TERMINATED):
        step.effects.timeline(Msg("Termination ignored: the customer is already terminated"), reason=reason)
        return
    now = clock.now()
    contracts = (await step.session.execute(select(Contract).where(
        Contract.customer_id == customer.id, Contract.status != ContractStatus.CANCELED))).scalars().all()
    for contract in contracts:
        contract.status = ContractStatus.CANCELED
        contract.canceled_at = now
    open_cases = (await step.session.execute(select(DunningCase).where(
        DunningCase.customer_id == customer.id, DunningCase.status.in_([CaseStatus.GRACE, CaseStatus.BLOCKED])
    ))).scalars().all()
    for case in open_cases:
        await cancel_timers(step.session, step.tenant.id, key_prefix=f"case:{case.id}:")
    await step.session.execute(update(DunningCase).where(
        DunningCase.customer_id == customer.id, DunningCase.status.in_([CaseStatus.GRACE, CaseStatus.BLOCKED])
    ).values(status=CaseStatus.TERMINATED))
    await transition(step.session, customer, Lifecycle.TERMINATED, reason=reason, event_id=step.event.id)
    await step.effects.command("end:deprovision", command="deprovision", reason=reason,
                               data={"plans": [plan_view(c) for c in contracts]})
    context = {**step.base_context(), "reason": reason, "plans": [plan_view(c) for c in contracts],
               "terminated_at": now.isoformat()}
    await step.tell_responsible("end:notify", kind="customer.terminated", context=context, reason=reason)
    people = await step.responsible()
    if people:
        await step.effects.task(
            "end:task", kind="offboarding", assignee=people[0], title=Msg("Offboarding: {customer}",
                                                                          customer=customer.name),
            description=reason, checklist=step.policy.offboarding_checklist, due_at=now + timedelta(days=2),
            reason=reason)


@handles("customer.termination_due")
async def on_termination_due(step: Step) -> None:
    case = await case_of(step)
    if case is None or case.status != CaseStatus.BLOCKED:
        step.effects.timeline(Msg("Termination not needed: the case was resolved"), reason=Msg("paid after the block"))
        return
    policy = await step.policy_of(case.policy_version)
    case.status = CaseStatus.TERMINATED
    reason = Msg("Blocked for {days} days without payment (policy v{version})", days=policy.terminate_after_days,
                 version=case.policy_version)
    contracts = await step.known.contracts(step.customer)
    contract = next((c for c in contracts if c.id == case.contract_id), None) if case.contract_id else None
    if contract is not None:
        await terminate_contract(step, contract, reason=reason)
    else:
        await terminate(step, reason=reason)
