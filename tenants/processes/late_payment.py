"""Late payment (inadimplência): on overdue a grace deadline starts and the end customer is told it (and
reminded on the policy's schedule); when it passes unpaid the service is blocked automatically and the
responsible person is told what happened and why; a later payment unblocks and tells them too; optionally
the customer is terminated after N days blocked.

A case keeps the policy version it opened with: a policy change applies to new cases only.

A case follows the contract (subscription) its charge belongs to (``DunningCase.contract_id``): the grace and
the block are that contract's, the platform's block command names the contract and its entitlement, and the
customer's other subscriptions go on. The customer's own stage summarises its contracts (blocked only when
every active contract is). With the policy's ``block_scope="customer"``, or for a charge of no known contract,
the case reaches every contract of the customer. :func:`follow_cases` derives every stage from the open cases
after each change, in memory (the batch read the customer's contracts and cases once).
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


from backoffice.platform.db.base import new_id
from backoffice.platform.timers.service import cancel_timers, defer_timer
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.billing.service import upsert_charge
from backoffice.tenants.customers.lifecycle import (
    SERVICE_STAGES, contract_transition, stage_from, summarise, transition,
)
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.processes.context import charge_view, plan_view
from backoffice.tenants.processes.engine import Step, handles
from backoffice.tenants.timeline.messages import Day, Msg, Stage

OPEN = (CaseStatus.GRACE, CaseStatus.BLOCKED)
WAITING_ON_AGREEMENT = "agreement"  # CaseStatus.AGREEMENT, the renegotiation's (compared by value)


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


async def case_of(step: Step) -> DunningCase | None:
    case_id = uuid.UUID(step.data["case_id"])
    return await step.session.get(DunningCase, (step.tenant.id, case_id))


def _case_context(step: Step, case: DunningCase, charge: Charge, reason: str) -> dict:
    return {**step.base_context(), "charge": charge_view(charge), "deadline_at": case.deadline_at.isoformat(),
            "reason": reason}


def contract_view(contract: Contract) -> dict:
    """A contract as the tenant's platform and the notifications see it: which subscription, which entitlement."""
    return {"id": str(contract.id), "external_id": contract.external_id, "source": contract.source,
            "plan": plan_view(contract), "status": contract.status.value,
            "lifecycle": (contract.lifecycle or Lifecycle.ACTIVE).value}


def _contract_of(contracts: list[Contract], contract_id) -> Contract | None:
    return next((c for c in contracts if c.id == contract_id), None)


async def late_contract(step: Step, charge: Charge) -> Contract | None:
    """The contract a late charge blocks: the charge's own (by our id, or by the gateway's subscription id, which
    is then written on the charge), or None for the whole customer (policy ``block_scope="customer"``, or a
    charge of no contract the platform knows)."""
    contracts = await step.known.contracts(step.customer)
    contract = _contract_of(contracts, charge.contract_id) if charge.contract_id else None
    if contract is None:
        named = (step.data.get("charge") or {}).get("contract_external_id")
        source = charge.source
        contract = next((c for c in contracts if named and c.external_id == named and c.source in (None, source)),
                        None)
        if contract is not None:
            charge.contract_id = contract.id
    if step.policy.block_scope == "customer":
        return None
    return contract


def scope_of(case: DunningCase, contracts: list[Contract]) -> dict:
    """What a block or unblock command reaches: one contract and its entitlement, or the whole customer."""
    contract = _contract_of(contracts, case.contract_id) if case.contract_id else None
    if contract is not None:
        return {"scope": "contract", "contract": contract_view(contract), "entitlement": contract.plan_code}
    live = [c for c in contracts if c.status == ContractStatus.ACTIVE]
    return {"scope": "customer", "contracts": [contract_view(c) for c in live],
            "entitlements": [c.plan_code for c in live]}


async def follow_cases(step: Step, *, reason: str) -> dict:
    """Derive every active contract's stage, and the customer's, from the customer's open cases; record each
    change. A case reaches its contract, or every contract when it has none. Returns what changed: the
    contracts that left ``blocked`` (``unblocked``) and the customer-wide stage."""
    customer = step.customer
    contracts = await step.known.contracts(customer)
    cases = await step.known.cases(customer)
    open_cases = [c for c in cases if c.status in OPEN]
    wide = [c.status == CaseStatus.BLOCKED for c in open_cases if c.contract_id is None]
    # A case waiting on a renegotiation (tenants/dunning/agreements.py) holds what it reaches where it is:
    # the agreement's own steps move the customer until the case reopens or resolves.
    waiting = [c for c in cases if c.status == WAITING_ON_AGREEMENT]
    held = {c.contract_id for c in waiting}
    unblocked: list[Contract] = []
    for contract in contracts:
        if contract.status != ContractStatus.ACTIVE or None in held or contract.id in held:
            continue
        own = [c.status == CaseStatus.BLOCKED for c in open_cases if c.contract_id == contract.id]
        before = contract.lifecycle or Lifecycle.ACTIVE
        target = stage_from(wide + own)
        if contract_transition(step.session, customer, contract, target, reason=reason, event_id=step.event.id):
            if before == Lifecycle.BLOCKED:
                unblocked.append(contract)
    customer_wide = stage_from(wide)
    if customer.lifecycle in SERVICE_STAGES and not waiting:
        target = summarise(contracts, customer_wide)
        if target != customer.lifecycle:
            await transition(step.session, customer, target, reason=reason, event_id=step.event.id)
    return {"unblocked": unblocked, "customer_wide": customer_wide,
            "still_blocked": [c for c in contracts if c.status == ContractStatus.ACTIVE
                              and c.lifecycle == Lifecycle.BLOCKED]}


@handles("payment.overdue")
async def on_payment_overdue(step: Step) -> None:
    charge = await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)
    if charge.status == ChargeStatus.PAID:
        step.effects.timeline(Msg("Overdue notice ignored: the charge is already paid"),
                              reason=Msg("payment already cleared"))
        return
    charge.status = ChargeStatus.OVERDUE
    if step.customer.lifecycle in (Lifecycle.TERMINATED, Lifecycle.ONBOARDING):
        step.effects.timeline(Msg("Charge overdue; no grace period for a customer in {stage}",
                                  stage=Stage(step.customer.lifecycle.value)),
                              reason=Msg("only started customers have a service to block"))
        return
    if any(case.charge_id == charge.id for case in await step.known.cases(step.customer)):
        return
    now = step.now
    policy = step.policy
    contract = await late_contract(step, charge)
    case = DunningCase(id=new_id(), customer_id=step.customer.id, charge_id=charge.id,
                       contract_id=contract.id if contract else None, policy_version=step.policy_version,
                       status=CaseStatus.GRACE, deadline_at=deadline_for(now, step.tenant.timezone, policy.grace_days),
                       opened_at=now, opened_by_event_id=step.event.id)
    step.session.add(case)
    step.known.add(case)
    reach = (Msg("subscription {plan}", plan=contract.plan_name) if contract
             else Msg("every subscription of the customer"))
    reason = Msg("Charge of {due} is overdue; policy v{version} gives {days} days of grace ({reach})",
                 due=Day(charge.due_date), version=step.policy_version, days=policy.grace_days, reach=reach)
    await follow_cases(step, reason=reason)
    context = {**_case_context(step, case, charge, reason), "grace_days": policy.grace_days,
               "auto_block": policy.auto_block, "plan": plan_view(contract)}
    await step.effects.email_customer("dunning:notice", kind="dunning.notice",
                                      rendered=step.render("dunning.notice", context), reason=reason)
    for offset, at in reminder_times(case.deadline_at, step.tenant.timezone, policy, now):
        defer_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}reminder:{offset}",
                    event_type="dunning.reminder_due", due_at=at, customer_id=step.customer.id,
                    payload={"case_id": str(case.id), "reminder": offset})
    defer_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}deadline",
                event_type="dunning.deadline_reached", due_at=case.deadline_at,
                customer_id=step.customer.id, payload={"case_id": str(case.id)})
    await step.tell_responsible("dunning:grace", kind="dunning.grace_started", context=context, reason=reason)


@handles("dunning.reminder_due")
async def on_reminder_due(step: Step) -> None:
    case = await case_of(step)
    if case is None or case.status != CaseStatus.GRACE:
        step.effects.timeline(Msg("Reminder not sent: the case is no longer in grace"), reason=Msg("paid or closed"))
        return
    charge = await step.session.get(Charge, (step.tenant.id, case.charge_id))
    policy = await step.policy_of(case.policy_version)
    reason = Msg("Reminder {days} day(s) before the grace deadline", days=step.data.get("reminder"))
    context = {**_case_context(step, case, charge, reason), "days_left": step.data.get("reminder"),
               "auto_block": policy.auto_block}
    await step.effects.email_customer("dunning:reminder", kind="dunning.reminder",
                                      rendered=step.render("dunning.reminder", context, policy), reason=reason)


@handles("dunning.deadline_reached")
async def on_deadline_reached(step: Step) -> None:
    case = await case_of(step)
    if case is None or case.status != CaseStatus.GRACE:
        step.effects.timeline(Msg("Grace deadline passed with nothing to do"),
                              reason=Msg("the charge was paid in time"))
        return
    charge = await step.session.get(Charge, (step.tenant.id, case.charge_id))
    policy = await step.policy_of(case.policy_version)
    contracts = await step.known.contracts(step.customer)
    contract = _contract_of(contracts, case.contract_id) if case.contract_id else None
    if not policy.auto_block:
        reason = Msg("The grace deadline passed unpaid; policy v{version} does not block automatically: decide "
                     "with the customer", version=case.policy_version)
        await step.tell_responsible("dunning:deadline", kind="dunning.blocked",
                                    context={**_case_context(step, case, charge, reason), "blocked": False,
                                             "plan": plan_view(contract)},
                                    reason=reason, policy=policy)
        return
    case.status = CaseStatus.BLOCKED
    case.blocked_at = step.now
    reach = (Msg("subscription {plan} blocked", plan=contract.plan_name) if contract
             else Msg("every subscription blocked"))
    reason = Msg("Blocked automatically: the charge of {due} was not paid by the grace deadline (policy v{version}: "
                 "{days} days; {reach})", due=Day(charge.due_date), version=case.policy_version, days=policy.grace_days,
                 reach=reach)
    await follow_cases(step, reason=reason)
    await step.effects.command("dunning:block", command="block", reason=reason,
                               data={"charge": charge_view(charge), "case_id": str(case.id),
                                     **scope_of(case, contracts)})
    terminate_at = step.now + timedelta(days=policy.terminate_after_days) if policy.terminate_after_days else None
    context = {**_case_context(step, case, charge, reason), "blocked": True, "blocked_at": case.blocked_at.isoformat(),
               "auto_unblock": policy.auto_unblock, "plan": plan_view(contract),
               "terminate_at": terminate_at.isoformat() if terminate_at else None}
    await step.effects.email_customer("dunning:blocked_notice", kind="dunning.blocked_notice",
                                      rendered=step.render("dunning.blocked_notice", context, policy), reason=reason)
    await step.tell_responsible("dunning:blocked", kind="dunning.blocked", context=context, reason=reason,
                                policy=policy)
    if policy.terminate_after_days:
        defer_timer(step.session, step.tenant.id, key=f"{timer_prefix(case)}terminate",
                    event_type="customer.termination_due", due_at=terminate_at,
                    customer_id=step.customer.id, payload={"case_id": str(case.id)})


async def resolve_after_payment(step: Step, charge: Charge) -> None:
    """A payment closes the charge's case: a pending block is called off, a block is lifted (the case's
    contract, or every contract no other case keeps blocked)."""
    cases = await step.known.cases(step.customer)
    case = next((c for c in cases if c.charge_id == charge.id and c.status in OPEN), None)
    if case is None:
        return
    was_blocked = case.status == CaseStatus.BLOCKED
    case.status = CaseStatus.RESOLVED
    case.resolved_at = step.now
    await cancel_timers(step.session, step.tenant.id, key_prefix=timer_prefix(case))
    policy = await step.policy_of(case.policy_version)
    contracts = await step.known.contracts(step.customer)
    contract = _contract_of(contracts, case.contract_id) if case.contract_id else None
    due = Day(charge.due_date)
    if was_blocked:
        if not policy.auto_unblock:
            # The service stays blocked (and the stages with it) until someone unblocks it by hand.
            reason = Msg("The overdue charge of {due} was paid; policy v{version} does not unblock automatically: "
                         "unblock by hand", due=due, version=case.policy_version)
            await step.tell_responsible("dunning:unblock", kind="dunning.unblocked",
                                        context={**_case_context(step, case, charge, reason), "unblocked": False,
                                                 "payment": step.data.get("payment"), "plan": plan_view(contract)},
                                        reason=reason, policy=policy)
            return
        reason = Msg("The overdue charge of {due} was paid after the block: service unblocked automatically", due=due)
        changed = await follow_cases(step, reason=reason)
        await _unblock(step, case, charge, contracts, changed, reason)
        await step.tell_responsible("dunning:unblocked", kind="dunning.unblocked",
                                    context={**_case_context(step, case, charge, reason), "unblocked": True,
                                             "plan": plan_view(contract)},
                                    reason=reason, policy=policy)
        return
    reason = Msg("The overdue charge of {due} was paid within the grace period: the block is called off", due=due)
    await follow_cases(step, reason=reason)
    await step.tell_responsible("dunning:resolved", kind="dunning.resolved",
                                context={**_case_context(step, case, charge, reason),
                                         "payment": step.data.get("payment"), "plan": plan_view(contract)},
                                reason=reason, policy=policy)


async def _unblock(step: Step, case: DunningCase, charge: Charge, contracts: list[Contract], changed: dict,
                   reason: str) -> None:
    """The unblock commands a resolved blocked case calls for: the whole customer when nothing stays blocked
    and the case reached the whole customer; otherwise each contract that left ``blocked``. A contract another
    case still blocks gets none."""
    base = {"charge": charge_view(charge), "case_id": str(case.id)}
    if case.contract_id is None and not changed["still_blocked"] and changed["customer_wide"] != Lifecycle.BLOCKED:
        await step.effects.command("dunning:unblock", command="unblock", reason=reason,
                                   data={**base, **scope_of(case, contracts)})
        return
    unblocked = changed["unblocked"]
    for contract in unblocked:
        key = "dunning:unblock" if len(unblocked) == 1 else f"dunning:unblock:{contract.id}"
        await step.effects.command(key, command="unblock", reason=reason,
                                   data={**base, "scope": "contract", "contract": contract_view(contract),
                                         "entitlement": contract.plan_code})
    if not unblocked:
        step.effects.timeline(Msg("Paid, but the service stays blocked: another overdue charge still blocks it"),
                              reason=reason)


@handles("payment.refunded", "payment.canceled")
async def on_charge_withdrawn(step: Step) -> None:
    charge = await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)
    charge.status = ChargeStatus.REFUNDED if step.event.type == "payment.refunded" else ChargeStatus.CANCELED
    case = next((c for c in await step.known.cases(step.customer)
                 if c.charge_id == charge.id and c.status == CaseStatus.GRACE), None)
    refunded = step.event.type == "payment.refunded"
    reason = step.data.get("reason") or (Msg("Charge refunded at {source}", source=step.event.source) if refunded
                                         else Msg("Charge canceled at {source}", source=step.event.source))
    if case is not None:
        case.status = CaseStatus.CANCELED
        await cancel_timers(step.session, step.tenant.id, key_prefix=timer_prefix(case))
        await follow_cases(step, reason=Msg("{reason}: the late-payment case is closed", reason=reason))
    due = Day(charge.due_date)
    step.effects.timeline(Msg("Charge of {due}: refunded", due=due) if refunded else
                          Msg("Charge of {due}: canceled", due=due), reason=reason)
