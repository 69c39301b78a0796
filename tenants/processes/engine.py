"""Running a tenant's process step for one event: the ``spine.process_event`` job.

The job reloads the event, finds its customer (an unknown customer leaves the event kept as
``unmatched`` for staff, never dropped), loads the tenant's policy and runs the handler for the event's
type. Everything happens in the job's one transaction; a repeat finds the event processed and stops, and
each effect is keyed by (event, step) besides. A handler that keeps failing is not retried forever: after
``MAX_PROCESS_RETRIES`` redeliveries the event is marked ``failed`` with the reason, for staff to replay.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import get_owned
from backoffice.platform.documents import InvalidDocument, normalize_tax_id
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.worker.registry import tenant_job
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.service import Rendered, StepEffects
from backoffice.tenants.events.catalogue import CATALOGUE
from backoffice.tenants.events.intake import PROCESS_JOB
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.policies.service import current_policy, policy_at
from backoffice.tenants.policies.templates import render
from backoffice.tenants.processes.context import customer_url, customer_view, tenant_view
from backoffice.tenants.processes.recipients import responsible_people
from backoffice.tenants.registry.models import Tenant

log = logging.getLogger(__name__)
MAX_PROCESS_RETRIES = 3

Handler = Callable[["Step"], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for event_type in types:
            if event_type not in CATALOGUE:
                raise ValueError(f"{event_type} is not in the event catalogue")
            HANDLERS[event_type] = fn
        return fn

    return register


@dataclass
class Step:
    session: AsyncSession
    tenant: Tenant
    event: Event
    customer: Customer
    effects: StepEffects
    policy_version: int
    policy: PolicyConfig

    @property
    def data(self) -> dict[str, Any]:
        return self.event.data

    async def policy_of(self, version: int) -> PolicyConfig:
        """The policy a running case started under (a change applies to new cases only)."""
        return self.policy if version == self.policy_version else await policy_at(self.session, version)

    def base_context(self) -> dict[str, Any]:
        return {"customer": customer_view(self.customer), "tenant": tenant_view(self.tenant),
                "customer_url": customer_url(self.tenant, self.customer)}

    def render(self, kind: str, context: dict[str, Any], policy: PolicyConfig | None = None) -> Rendered:
        overrides = (policy or self.policy).templates
        rendered = render(kind, self.tenant.locale, context, overrides)
        return Rendered(rendered.title, rendered.body)

    async def tell_responsible(self, step: str, *, kind: str, context: dict[str, Any], reason: str,
                               policy: PolicyConfig | None = None) -> None:
        """Notify the people responsible for the customer on the channels the policy picks for ``kind``."""
        policy = policy or self.policy
        rendered = self.render(kind, context, policy)
        channels = policy.channels.get(kind, ["portal"])
        detail = {**context, "kind": kind, "reason": reason}
        for person in await responsible_people(self.session, self.customer, policy.notify):
            if "portal" in channels:
                await self.effects.notify(step, kind=kind, recipient=person, rendered=rendered, detail=detail,
                                          reason=reason)
            if "email" in channels:
                await self.effects.outbound(
                    f"{step}:email", channel=Channel.EMAIL, target=person.email, suffix=person.id, reason=reason,
                    payload={"kind": kind, "to": person.email, "to_name": person.name, "subject": rendered.title,
                             "text": rendered.body},
                    title=f"E-mail to {person.name}: {rendered.title}")
        if "chat" in channels:
            await self.effects.outbound(
                f"{step}:chat", channel=Channel.CHAT, target="team", reason=reason,
                payload={"kind": kind, "text": f"*{rendered.title}*\n{rendered.body}"},
                title=f"Team chat: {rendered.title}")


async def resolve_customer(session: AsyncSession, event: Event) -> Customer | None:
    subject = event.subject or {}
    if subject.get("id"):
        return await session.get(Customer, (event.tenant_id, uuid.UUID(subject["id"])))
    if subject.get("external_id"):
        source = subject.get("source") or event.source
        query = select(Customer).where(Customer.external_ids[source].as_string() == subject["external_id"])
        found = (await session.execute(query.limit(1))).scalar_one_or_none()
        if found:
            return found
    if subject.get("tax_id"):
        try:
            _, number = normalize_tax_id(subject["tax_id"])
        except InvalidDocument:
            return None
        return (await session.execute(select(Customer).where(Customer.tax_id == number))).scalar_one_or_none()
    return None


def _retries() -> int:
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message else 0


# Transient failures (a dropped connection, a lock timeout) retry within seconds, not dramatiq's 15 s.
@tenant_job(PROCESS_JOB, queue="events", min_backoff=1_000, max_backoff=300_000)
async def process_event(session: AsyncSession, *, tenant_id: uuid.UUID, event_id: str) -> str:
    event = await get_owned(session, Event, uuid.UUID(event_id))
    if event.status != EventStatus.PENDING:
        return event.status.value  # processed before: a redelivery changes nothing
    try:
        async with session.begin_nested():
            await _run(session, tenant_id, event)
    except Exception as error:
        if _retries() < MAX_PROCESS_RETRIES:
            raise
        log.exception("event %s failed for good", event.id)
        event.status = EventStatus.FAILED
        event.error = f"{type(error).__name__}: {error}"[:2000]
        event.processed_at = clock.now()
    return event.status.value


async def _run(session: AsyncSession, tenant_id: uuid.UUID, event: Event) -> None:
    now = clock.now()
    customer = await resolve_customer(session, event)
    if customer is None:
        event.status = EventStatus.UNMATCHED
        event.error = f"no customer of this company matches {event.subject or 'the event'}"
        event.processed_at = now
        return
    # One customer's events are processed one at a time: a payment and a grace deadline racing on two
    # workers would otherwise both read the case "in grace" and overwrite each other's outcome.
    await session.refresh(customer, with_for_update=True)
    event.customer_id = customer.id
    tenant = await session.get(Tenant, tenant_id)
    version, policy = await current_policy(session)
    effects = StepEffects(session, tenant=tenant, event=event, customer=customer)
    effects.timeline(f"Event: {event.type} from {event.source}", kind="event",
                     reason=CATALOGUE[event.type][1], ref={"external_id": event.external_id})
    step = Step(session, tenant, event, customer, effects, version, policy)
    await HANDLERS[event.type](step)
    # Tenant systems hear of every processed event; the webhook port filters by their subscriptions.
    await effects.outbound(
        "webhook", channel=Channel.WEBHOOK, target=event.type, reason=f"{event.type} processed",
        payload={"type": event.type, "event_id": str(event.id), "occurred_at": event.occurred_at.isoformat(),
                 "customer": customer_view(customer), "data": event.data},
        title=f"Webhook {event.type} to the company's systems")
    event.status = EventStatus.PROCESSED
    event.processed_at = now


async def retry_event(session: AsyncSession, event: Event) -> None:
    """Staff replay: an unmatched (customer created since) or failed event runs its process again."""
    event.status = EventStatus.PENDING
    event.error = None
    event.processed_at = None
    add_to_outbox(session, event.tenant_id, PROCESS_JOB, event_id=str(event.id))


async def list_unmatched(session: AsyncSession, limit: int = 100) -> list[Event]:
    query = select(Event).where(Event.status == EventStatus.UNMATCHED).order_by(Event.received_at.desc())
    return list((await session.execute(query.limit(limit))).scalars())
