"""A routine of the tests' own, for the places that show and steer runs (API, portal, CLI): one item per
customer of the tenant, done with a charge reference, except the customers named in ``refusing``, whose
items fail with the given refusal, as a provider's would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from backoffice.tenants.customers.models import Customer
from backoffice.tenants.routines.catalogue import CATALOGUE, ItemSpec, Monthly, Outcome, Plan, Routine


def scripted(name: str, *, refusal: str, notify: bool = True, label: str = "{name}, {period}",
             title: dict[str, str] | None = None) -> tuple[Routine, set[str]]:
    """The routine and the set of customer names whose items it fails (the test fills it)."""
    refusing: set[str] = set()

    async def plan(session, run) -> Plan:
        customers = (await session.execute(select(Customer).order_by(Customer.name))).scalars()
        return Plan(items=[ItemSpec(key=f"customer:{c.id}", label=label.format(name=c.name, period=run.period),
                                    customer_id=c.id, data={"name": c.name}) for c in customers])

    async def work(session, run, item) -> Outcome:
        if item.data["name"] in refusing:
            return Outcome.failed(refusal, notify=notify)
        return Outcome.done(charge=f"ch-{item.key}")

    routine = Routine(name=name, title=title or {"en": "Test billing", "pt-BR": "Faturamento de teste"},
                      item_noun={"en": "charges", "pt-BR": "cobranças"}, schedule=Monthly(day=1, hour=6),
                      plan=plan, work=work)
    return routine, refusing


@contextmanager
def registered(routine: Routine) -> Iterator[Routine]:
    """The routine in the catalogue while the block runs."""
    CATALOGUE[routine.name] = routine
    try:
        yield routine
    finally:
        CATALOGUE.pop(routine.name, None)
