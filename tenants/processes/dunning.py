"""Late payment (inadimplência): on overdue a grace deadline starts and the end customer is told it (and
reminded on the policy's schedule); when it passes unpaid the service is blocked automatically and the
responsible person is told what happened and why; a later payment unblocks and tells them too; optionally
the customer is terminated after N days blocked.

A case keeps the policy version it opened with: a policy change applies to new cases only.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


from backoffice.platform.db.base import new_id
from backoffice.platform.timers.service import cancel_timers, schedule_timer
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.billing.service import upsert_charge
from backoffice.tenants.customers.lifecycle import transition
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.processes.context import charge_view
from backoffice.tenants.processes.engine import Step, handles

OPEN = (CaseStatus.GRACE, CaseStatus.BLOCKED)


def deadline_for(opened_at: datetime, tz: str, grace_days: int) -> datetime:
    """End of the grace period: the last minute of the local day ``grace_days`` after the overdue day."""
    zone = ZoneInfo(tz)
    local_day = opened_at.astimezone(zone).date() + timedelta(days=grace_days)
    return datetime.combine(local_day, time(23, 59), zone).astimezone(ZoneInfo("UTC"))


def reminder_times(deadline: datetime, tz: str, policy: PolicyConfig, now: datetime) -> list[tuple[int, datetime]]:
    zone = ZoneInfo(tz)
    deadline_day = deadline.astimezone(zone).date()
    times = []
    for offset in sorted(set(policy.reminder_offsets_days), reverse=True):
        at = datetime.combine(deadline_day - timedelta(days=offset), time(policy.reminder_hour_local), zone)
        if at > now:
            times.append((offset, at.astimezone(ZoneInfo("UTC"))))
    return times


def timer_prefix(case: DunningCase) -> str:
    return f"case:{case.id}:"


async def _case(step: Step) -> DunningCase | None:
    case_id = uuid.UUID(step.data["case_id"])
    return await step.session.get(DunningCase, (step.tenant.id, case_id))


def _case_context(step: Step, case: DunningCase, charge: Charge, reason: str) -> dict:
    return {**step.base_context(), "charge": charge_view(charge), "deadline_at": case.deadline_at.isoformat(),
            "reason": reason}


@handles("payment.overdue")
async def on_payment_overdue(step: Step) -> None:
    charge = await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)
    if charge.status == ChargeStatus.PAID:
        step.effects.timeline("Overdue notice ignored: the charge is already paid", reason="payment already cleared")
        return
    charge.status = ChargeStatus.OVERDUE
    if step.customer.lifecycle in (Lifecycle.TERMINATED, Lifecycle.ONBOARDING):
        step.effects.timeline(f"Charge overdue; no grace period for a customer in {step.customer.lifecycle.value}",
                              reason="only started customers have a service to block")
        return
    if any(case.charge_id == charge.id for case in await step.known.cases(step.customer)):
        return
    now = step.now
    policy = step.policy
    case = DunningCase(id=new_id(), customer_id=step.customer.id, charge_id=charge.id, policy_version=step.policy_version,
                       status=CaseStatus.GRACE, deadline_at=deadline_for(now, step.tenant.timezone, policy.grace_days),
                       opened_at=now, opened_by_event_id=step.event.id)
    step.session.add(case)
    step.known.add(case)
    reason = (f"Charge of {charge.due_date.isoformat()} is overdue; policy v{step.policy_version} gives "
              f"{policy.grace_days} days of grace")
    if step.customer.lifecycle == Lifecycle.ACTIVE:
        await transition(step.session, step.customer, Lifecycle.IN_GRACE, reason=reason, event_id=step.event.id)
    context = {**_case_context(step, case, charge, reason), "grace_days": policy.grace_days,
               "auto_block": policy.auto_block}
    await step.effects.email_customer("dunning:notice", kind="dunning.notice",
                                      rendered=step.render("dunning.notice", context), reason=reason)
    for offset, at in reminder_times(case.deadline_at, step.tenant.timezone, policy, now):
        await schedule_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}reminder:{offset}",
                             event_type="dunning.reminder_due", due_at=at, customer_id=step.customer.id,
                             payload={"case_id": str(case.id), "reminder": offset})
    await schedule_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}deadline",
                         event_type="dunning.deadline_reached", due_at=case.deadline_at,
                         customer_id=step.customer.id, payload={"case_id": str(case.id)})
    await step.tell_responsible("dunning:grace", kind="dunning.grace_started", context=context, reason=reason)


@handles("dunning.reminder_due")
async def on_reminder_due(step: Step) -> None:
    case = await _case(step)
    if case is None or case.status != CaseStatus.GRACE:
        step.effects.timeline("Reminder not sent: the case is no longer in grace", reason="paid or closed")
        return
    charge = await step.session.get(Charge, (step.tenant.id, case.charge_id))
    policy = await step.policy_of(case.policy_version)
    reason = f"Reminder {step.data.get('reminder')} day(s) before the grace deadline"
    context = {**_case_context(step, case, charge, reason), "days_left": step.data.get("reminder"),
               "auto_block": policy.auto_block}
    await step.effects.email_customer("dunning:reminder", kind="dunning.reminder",
                                      rendered=step.render("dunning.reminder", context, policy), reason=reason)


@handles("dunning.deadline_reached")
async def on_deadline_reached(step: Step) -> None:
    case = await _case(step)
    if case is None or case.status != CaseStatus.GRACE:
        step.effects.timeline("Grace deadline passed with nothing to do", reason="the charge was paid in time")
        return
    charge = await step.session.get(Charge, (step.tenant.id, case.charge_id))
    policy = await step.policy_of(case.policy_version)
    if not policy.auto_block:
        reason = (f"The grace deadline passed unpaid; policy v{case.policy_version} does not block automatically:"
                  " decide with the customer")
        await step.tell_responsible("dunning:deadline", kind="dunning.blocked",
                                    context={**_case_context(step, case, charge, reason), "blocked": False},
                                    reason=reason, policy=policy)
        return
    case.status = CaseStatus.BLOCKED
    case.blocked_at = step.now
    reason = (f"Blocked automatically: the charge of {charge.due_date.isoformat()} was not paid by the grace "
              f"deadline (policy v{case.policy_version}: {policy.grace_days} days)")
    if step.customer.lifecycle == Lifecycle.IN_GRACE:
        await transition(step.session, step.customer, Lifecycle.BLOCKED, reason=reason, event_id=step.event.id)
    await step.effects.command("dunning:block", command="block", reason=reason,
                               data={"charge": charge_view(charge), "case_id": str(case.id)})
    terminate_at = step.now + timedelta(days=policy.terminate_after_days) if policy.terminate_after_days else None
    context = {**_case_context(step, case, charge, reason), "blocked": True, "blocked_at": case.blocked_at.isoformat(),
               "auto_unblock": policy.auto_unblock,
               "terminate_at": terminate_at.isoformat() if terminate_at else None}
    await step.effects.email_customer("dunning:blocked_notice", kind="dunning.blocked_notice",
                                      rendered=step.render("dunning.blocked_notice", context, policy), reason=reason)
    await step.tell_responsible("dunning:blocked", kind="dunning.blocked", context=context, reason=reason,
                                policy=policy)
    if policy.terminate_after_days:
        await schedule_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}terminate",
                             event_type="customer.termination_due", due_at=terminate_at,
                             customer_id=step.customer.id, payload={"case_id": str(case.id)})


async def resolve_after_payment(step: Step, charge: Charge) -> None:
    """A payment closes the charge's case: a pending block is called off, a block is lifted."""
    cases = await step.known.cases(step.customer)
    case = next((c for c in cases if c.charge_id == charge.id and c.status in OPEN), None)
    if case is None:
        return
    was_blocked = case.status == CaseStatus.BLOCKED
    case.status = CaseStatus.RESOLVED
    case.resolved_at = step.now
    await cancel_timers(step.session, step.tenant.id, key_prefix=timer_prefix(case))
    policy = await step.policy_of(case.policy_version)
    others_open = [c.status for c in cases if c.status in OPEN and c.id != case.id]
    context_reason = f"The overdue charge of {charge.due_date.isoformat()} was paid"
    if was_blocked:
        if not policy.auto_unblock:
            reason = f"{context_reason}; policy v{case.policy_version} does not unblock automatically: unblock by hand"
            await step.tell_responsible("dunning:unblock", kind="dunning.unblocked",
                                        context={**_case_context(step, case, charge, reason), "unblocked": False,
                                                 "payment": step.data.get("payment")},
                                        reason=reason, policy=policy)
            return
        reason = f"{context_reason} after the block: service unblocked automatically"
        if CaseStatus.BLOCKED not in others_open:
            await step.effects.command("dunning:unblock", command="unblock", reason=reason,
                                       data={"charge": charge_view(charge), "case_id": str(case.id)})
            if step.customer.lifecycle == Lifecycle.BLOCKED:
                # Another charge may still be in grace: its own deadline will block again if unpaid.
                await transition(step.session, step.customer, Lifecycle.ACTIVE, reason=reason, event_id=step.event.id)
        await step.tell_responsible("dunning:unblocked", kind="dunning.unblocked",
                                    context={**_case_context(step, case, charge, reason), "unblocked": True},
                                    reason=reason, policy=policy)
        return
    reason = f"{context_reason} within the grace period: the block is called off"
    if not others_open and step.customer.lifecycle == Lifecycle.IN_GRACE:
        await transition(step.session, step.customer, Lifecycle.ACTIVE, reason=reason, event_id=step.event.id)
    await step.tell_responsible("dunning:resolved", kind="dunning.resolved",
                                context={**_case_context(step, case, charge, reason), "payment": step.data.get("payment")},
                                reason=reason, policy=policy)


@handles("payment.refunded", "payment.canceled")
async def on_charge_withdrawn(step: Step) -> None:
    charge = await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)
    charge.status = ChargeStatus.REFUNDED if step.event.type == "payment.refunded" else ChargeStatus.CANCELED
    case = next((c for c in await step.known.cases(step.customer)
                 if c.charge_id == charge.id and c.status == CaseStatus.GRACE), None)
    reason = step.data.get("reason") or f"Charge {step.event.type.split('.')[1]} at {step.event.source}"
    if case is not None:
        case.status = CaseStatus.CANCELED
        await cancel_timers(step.session, step.tenant.id, key_prefix=timer_prefix(case))
        if step.customer.lifecycle == Lifecycle.IN_GRACE:
            await transition(step.session, step.customer, Lifecycle.ACTIVE,
                             reason=f"{reason}: the late-payment case is closed", event_id=step.event.id)
    step.effects.timeline(f"Charge of {charge.due_date.isoformat()}: {charge.status.value}", reason=reason)


@handles("customer.termination_due")
async def on_termination_due(step: Step) -> None:
    from backoffice.tenants.processes.termination import terminate

    case = await _case(step)
    if case is None or case.status != CaseStatus.BLOCKED:
        step.effects.timeline("Termination not needed: the case was resolved", reason="paid after the block")
        return
    policy = await step.policy_of(case.policy_version)
    case.status = CaseStatus.TERMINATED
    await terminate(step, reason=f"Blocked for {policy.terminate_after_days} days without payment "
                                 f"(policy v{case.policy_version})")
