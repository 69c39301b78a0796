"""Customers born at the gateway: a payment for a customer the platform does not know yet.

A tenant that sells through its gateway's checkout or payment links has customers that exist only at the
gateway (Asaas, Stripe) until their first payment arrives. The spine finds no customer for such a payment
event (its subject is the gateway's customer id); before leaving it ``unmatched``, the process engine asks
this module, which asks the gateway for its record of the customer (``GatewayCustomers.fetch_customer``)
and then, in this order:

1. the record's ``externalReference`` is one of our customer ids (the billing routine registers our
   customers with it): that customer, now linked to the gateway's id;
2. the record's CPF/CNPJ, validated (check digits), is an existing customer's: that customer, linked;
3. the tenant's policy allows it (``create_customers_from_gateway``): a new customer from the record (name,
   CPF/CNPJ, e-mail), created through the customers' door (``customers.service.create_customer``: validated,
   audited) with the gateway's id, so the payment's process runs as for any customer;
4. otherwise the event stays unmatched with the reason (no record, no valid CPF/CNPJ, policy off).

A gateway that cannot be reached (a timeout, a 5xx, an open circuit) is not a reason: the events wait and
are tried again (``retry``). Events of one gateway customer in one batch are decided once, and a second
batch finds the customer by the id linked the first time; two batches racing on one new customer meet at
the CPF/CNPJ's unique index, and the loser links the winner's row.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor
from backoffice.platform.documents import InvalidDocument, normalize_tax_id
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.tenants.billing.ports import GatewayCustomer, GatewayCustomers
from backoffice.tenants.connections import CallFailed, Unusable, directory
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.customers.queries import customers_by_ids, customers_by_tax_ids
from backoffice.tenants.customers.service import create_customer, update_customer
from backoffice.tenants.events.models import Event
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.timeline.messages import Msg

log = logging.getLogger(__name__)
PAYMENT_EVENTS = "payment."  # the events whose subject a gateway names (payment.created, .cleared, ...)


@dataclass
class Adoption:
    customers: dict[uuid.UUID, Customer] = field(default_factory=dict)  # event id -> its customer now
    created: dict[uuid.UUID, str] = field(default_factory=dict)  # event id -> how its customer was born
    reasons: dict[uuid.UUID, str] = field(default_factory=dict)  # event id -> why it stays unmatched
    retry: dict[uuid.UUID, str] = field(default_factory=dict)  # event id -> the gateway could not be asked


def gateway_subject(event: Event) -> tuple[str, str] | None:
    """(source, the gateway's customer id) of a payment event naming its customer by the gateway's id."""
    subject = event.subject or {}
    if not event.type.startswith(PAYMENT_EVENTS) or not subject.get("external_id"):
        return None
    return str(subject.get("source") or event.source), str(subject["external_id"])


async def adopt_gateway_customers(session: AsyncSession, events: list[Event], policy: PolicyConfig) -> Adoption:
    """Decide, for events no customer matched, whether the gateway's record gives them one."""
    adoption = Adoption()
    groups: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        key = gateway_subject(event)
        if key is not None:
            groups.setdefault(key, []).append(event)
    for (source, external_id), group in groups.items():
        outcome = await _adopt(session, policy, source, external_id)
        for index, event in enumerate(group):
            if isinstance(outcome, tuple):
                customer, how = outcome
                adoption.customers[event.id] = customer
                if how and index == 0:  # told once, on the first of its events
                    adoption.created[event.id] = how
            elif outcome.startswith("retry:"):
                adoption.retry[event.id] = outcome.removeprefix("retry:")
            else:
                adoption.reasons[event.id] = outcome
    return adoption


async def _adopt(session: AsyncSession, policy: PolicyConfig, source: str,
                 external_id: str) -> tuple[Customer, str | None] | str:
    """(customer, how it was born or None when an existing one was linked), or why not."""
    fetched = await _record(session, source, external_id)
    if isinstance(fetched, str):
        return fetched
    record = fetched
    actor = Actor.system(f"{source} webhook")
    if record.external_reference:
        try:
            ours = uuid.UUID(record.external_reference)
        except ValueError:
            ours = None
        found = (await customers_by_ids(session, [ours])).get(ours) if ours else None
        if found is not None:
            return await _link(session, found, source, external_id, actor), None
    try:
        kind, number = normalize_tax_id(record.tax_id or "")
    except InvalidDocument as error:
        return (f"{source} customer {external_id} ({record.name or 'no name'}) has no valid CPF/CNPJ "
                f"({record.tax_id or 'none'}: {error}); not matched nor created")
    found = (await customers_by_tax_ids(session, [number])).get(number)
    if found is not None:
        return await _link(session, found, source, external_id, actor), None
    if not policy.create_customers_from_gateway:
        return (f"{source} customer {external_id} ({record.name}, {kind.upper()} {number}) is not a customer of "
                "this company, and its policy does not create customers from the gateway "
                "(create_customers_from_gateway)")
    return await _create(session, record, source, external_id, number, actor)


async def _record(session: AsyncSession, source: str, external_id: str) -> GatewayCustomer | str:
    """The gateway's record of the customer, from the first of the tenant's connections of that gateway that
    knows it; or why there is none (``retry:`` first when asking again later may find it)."""
    connections = await directory().connections(session, [source])
    connections = [c for c in connections if directory().opens(c.kind)]
    if not connections:
        return (f"no customer of this company matches {source} customer {external_id}, and there is no "
                f"enabled {source} connection to ask for its record")
    unreachable = None
    for connection in connections:
        try:
            gateway: GatewayCustomers = await directory().open(session, connection)
            record = await gateway.fetch_customer(external_id)
        except Unusable as error:
            unreachable = unreachable or f"connector {connection.name!r}: {error}"
            continue
        except CallFailed as error:
            if error.retryable:
                return f"retry:{source} could not be asked for customer {external_id}: {error}"
            unreachable = unreachable or f"{source} refused to give customer {external_id}: {error}"
            continue
        if record is not None:
            return record
    if unreachable:
        return f"no customer of this company matches {source} customer {external_id}; {unreachable}"
    return f"no customer of this company matches {source} customer {external_id}, which {source} does not know"


async def _link(session: AsyncSession, customer: Customer, source: str, external_id: str, actor: Actor) -> Customer:
    """Keep the gateway's id on the customer (its first id at that gateway stays: a second account's id
    still matches through the CPF/CNPJ)."""
    ids = dict(customer.external_ids or {})
    if source not in ids:
        ids[source] = external_id
        await update_customer(session, customer.id, {"external_ids": ids}, acting=actor)
    return customer


async def _create(session: AsyncSession, record: GatewayCustomer, source: str, external_id: str, number: str,
                  actor: Actor) -> tuple[Customer, str | None] | str:
    name = (record.name or "").strip()[:200]
    if not name:
        return f"{source} customer {external_id} has no name; not created"
    email: str | None = (record.email or "").strip() or None
    for attempt in range(2):
        try:
            async with session.begin_nested():
                customer = await create_customer(session, name=name, tax_id=number, email=email,
                                                 external_ids={source: external_id}, acting=actor)
            log.info("customer %s created from %s customer %s", customer.id, source, external_id)
            return customer, Msg("Customer created from {source}'s record of {external_id}", source=source,
                                 external_id=external_id)
        except Conflict:
            # Another batch created it between our look and our insert: link that one.
            found = (await customers_by_tax_ids(session, [number])).get(number)
            if found is not None:
                return await _link(session, found, source, external_id, actor), None
        except ValidationFailed as error:
            if email is not None and attempt == 0 and all(e.field == "email" for e in error.errors):
                email = None  # the gateway's e-mail does not pass ours: the customer, without it
                continue
            return f"{source} customer {external_id} cannot be created: {error}"
    return f"{source} customer {external_id} could not be created"
