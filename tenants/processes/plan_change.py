"""Change of what was bought (upgrade, downgrade, add-on): notify with before and after, update the
contract and the entitlement on the tenant's platform.

A change whose ``effective_at`` is still ahead (in the tenant's time) is scheduled, not applied: the front
office is told now, with the date it takes effect, and a durable timer (``plan_change:<contract>:<event>``)
emits ``subscription.change_due`` at that date, which applies it. The timer fires once and the event is
processed once (a redelivery changes nothing), so the change applies once. ``subscription.change_canceled``
cancels the contract's pending change timers: a canceled change never applies.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.timers.service import cancel_timers, defer_timer
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.billing.service import customer_contract
from backoffice.tenants.processes.context import plan_view
from backoffice.tenants.processes.engine import Step, handles
from backoffice.tenants.timeline.messages import Code, Day, Msg


def change_timer_prefix(contract: Contract) -> str:
    return f"plan_change:{contract.id}:"


def _effective(data: dict) -> datetime | None:
    value = data.get("effective_at")
    if value is None:
        return None
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _direction(before: dict, after: dict) -> tuple[int, str]:
    difference = after["price_cents"] - before["price_cents"]
    return difference, "upgrade" if difference > 0 else "downgrade" if difference < 0 else "change"


def _apply(contract: Contract, after: dict) -> None:
    contract.plan_code, contract.plan_name, contract.price_cents = after["code"], after["name"], after["price_cents"]
    if after.get("billing_day"):
        contract.billing_day = after["billing_day"]


@handles("subscription.changed")
async def on_subscription_changed(step: Step) -> None:
    data = step.data
    before, after = data["before"], data["after"]
    effective_at = _effective(data)
    scheduled = effective_at is not None and effective_at > step.now
    contract = await customer_contract(step.session, step.customer, data.get("subscription_external_id"),
                                       known=step.known)
    if contract is None:
        # A subscription the platform had not seen: recorded with the plan it has until the change applies.
        plan = before if scheduled else after
        contract = Contract(id=new_id(), customer_id=step.customer.id, plan_code=plan["code"], plan_name=plan["name"],
                            price_cents=plan["price_cents"], status=ContractStatus.ACTIVE, started_at=clock.now(),
                            external_id=data.get("subscription_external_id"), source=step.event.source,
                            created_at=clock.now())
        step.session.add(contract)
        step.known.add(contract)
    difference, direction = _direction(before, after)
    context = {**step.base_context(), "before": plan_view(before), "after": plan_view(after),
               "difference_cents": difference, "direction": direction,
               "effective_at": effective_at.isoformat() if effective_at else None}
    if scheduled:
        reason = Msg("Plan {direction} scheduled: {before} → {after} on {day}", direction=Code(direction),
                     before=before["name"], after=after["name"], day=Day(effective_at.date()))
        defer_timer(step.session, step.tenant.id, key=f"{change_timer_prefix(contract)}{step.event.id}",
                    event_type="subscription.change_due", due_at=effective_at, customer_id=step.customer.id,
                    payload={"contract_id": str(contract.id), "change_event_id": str(step.event.id),
                             "before": before, "after": after, "effective_at": effective_at.isoformat()})
        await step.tell_responsible("change:notify", kind="subscription.changed",
                                    context={**context, "reason": reason}, reason=reason)
        return
    _apply(contract, after)
    reason = Msg("Plan {direction}: {before} → {after}", direction=Code(direction), before=before["name"],
                 after=after["name"])
    await step.tell_responsible("change:notify", kind="subscription.changed", context={**context, "reason": reason},
                                reason=reason)
    await step.effects.command("change:entitlement", command="provision", reason=reason,
                               data={"plan": plan_view(after), "previous_plan": plan_view(before),
                                     "contract": {"id": str(contract.id), "external_id": contract.external_id}})


@handles("subscription.change_due")
async def on_change_due(step: Step) -> None:
    data = step.data
    contract = next((c for c in await step.known.contracts(step.customer)
                     if c.id == uuid.UUID(str(data["contract_id"]))), None)
    before, after = data["before"], data["after"]
    if contract is None or contract.status == ContractStatus.CANCELED:
        step.effects.timeline(Msg("Scheduled plan change to {plan} not applied: the subscription has ended",
                                  plan=after["name"]), reason=Msg("the contract is canceled or gone"))
        return
    _, direction = _direction(before, after)
    reason = Msg("Scheduled plan {direction} took effect: {before} → {after}", direction=Code(direction),
                 before=before["name"], after=after["name"])
    _apply(contract, after)
    step.effects.timeline(reason, reason=Msg("scheduled by event {event}", event=data["change_event_id"]),
                          ref={"contract_id": str(contract.id)})
    await step.effects.command("change:entitlement", command="provision", reason=reason,
                               data={"plan": plan_view(after), "previous_plan": plan_view(before),
                                     "contract": {"id": str(contract.id), "external_id": contract.external_id}})


@handles("subscription.change_canceled")
async def on_change_canceled(step: Step) -> None:
    named = step.data.get("subscription_external_id")
    contract = await customer_contract(step.session, step.customer, named, known=step.known)
    reason = step.data.get("reason") or Msg("The scheduled plan change was called off")
    if contract is None or (named and contract.external_id != named):
        step.effects.timeline(Msg("No scheduled plan change to call off: the subscription is unknown"), reason=reason)
        return
    canceled = await cancel_timers(step.session, step.tenant.id, key_prefix=change_timer_prefix(contract))
    title = (Msg("Scheduled plan change of {plan} called off", plan=contract.plan_name) if canceled
             else Msg("No pending plan change of {plan} to call off (already applied or never scheduled)",
                      plan=contract.plan_name))
    step.effects.timeline(title, reason=reason, ref={"contract_id": str(contract.id)})
