"""A back-office routine failed an item of a customer (a charge the gateway refused, a nota the issuer
would not take): the customer's front-office people are told what, for which period, and the provider's
words, on the channels the tenant's policy picks."""

from __future__ import annotations

from backoffice.tenants.processes.engine import Step, handles
from backoffice.tenants.timeline.messages import Msg
from backoffice.tenants.routines.catalogue import UnknownRoutine, get_routine


@handles("routine.item_failed")
async def on_routine_item_failed(step: Step) -> None:
    data = step.data
    try:
        title = get_routine(data["routine"]).label(step.tenant.locale)
    except UnknownRoutine:
        title = data["routine_title"]
    reason = Msg("The routine {routine} for {period} failed an item of this customer: {message}",
                 routine=data["routine_title"], period=data["period"], message=data["reason"])
    context = {**step.base_context(), "routine": title, "period": data["period"], "item": data["item"],
               "message": data["reason"], "charge": data.get("charge")}
    await step.tell_responsible("routine_item_failed", kind="routine.item_failed", context=context, reason=reason)
