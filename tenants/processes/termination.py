"""End of the relationship: offboarding task, access revoked on the tenant's platform, open cases and
timers closed, the responsible person told."""

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
from backoffice.tenants.processes.engine import Step, handles


@handles("subscription.canceled")
async def on_subscription_canceled(step: Step) -> None:
    reason = step.data.get("reason") or "The subscription was canceled"
    await terminate(step, reason=reason)


async def terminate(step: Step, *, reason: str) -> None:
    customer = step.customer
    if not can_transition(customer, Lifecycle.TERMINATED):
        step.effects.timeline("Termination ignored: the customer is already terminated", reason=reason)
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
            "end:task", kind="offboarding", assignee=people[0], title=f"Offboarding: {customer.name}",
            description=reason, checklist=step.policy.offboarding_checklist, due_at=now + timedelta(days=2),
            reason=reason)
