"""Change of what was bought (upgrade, downgrade, add-on): notify with before and after, update the
contract and the entitlement on the tenant's platform."""

from __future__ import annotations

from backoffice.platform import clock
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.billing.service import customer_contract
from backoffice.tenants.processes.context import plan_view
from backoffice.tenants.processes.engine import Step, handles


@handles("subscription.changed")
async def on_subscription_changed(step: Step) -> None:
    data = step.data
    before, after = data["before"], data["after"]
    contract = await customer_contract(step.session, step.customer, data.get("subscription_external_id"),
                                       known=step.known)
    if contract is None:
        contract = Contract(customer_id=step.customer.id, plan_code=after["code"], plan_name=after["name"],
                            price_cents=after["price_cents"], status=ContractStatus.ACTIVE, started_at=clock.now(),
                            external_id=data.get("subscription_external_id"), source=step.event.source,
                            created_at=clock.now())
        step.session.add(contract)
    contract.plan_code, contract.plan_name, contract.price_cents = after["code"], after["name"], after["price_cents"]
    if after.get("billing_day"):
        contract.billing_day = after["billing_day"]
    difference = after["price_cents"] - before["price_cents"]
    direction = "upgrade" if difference > 0 else "downgrade" if difference < 0 else "change"
    reason = f"Plan {direction}: {before['name']} → {after['name']}"
    context = {**step.base_context(), "before": plan_view(before), "after": plan_view(after),
               "difference_cents": difference, "direction": direction,
               "effective_at": data.get("effective_at"), "reason": reason}
    await step.tell_responsible("change:notify", kind="subscription.changed", context=context, reason=reason)
    await step.effects.command("change:entitlement", command="provision", reason=reason,
                               data={"plan": plan_view(after), "previous_plan": plan_view(before)})
