"""Running the tenants' process steps: the ``spine.process_event`` job, in batches.

The relay hands the job up to ``BATCH`` of one tenant's pending events in one message. The job works
them as the design's arrows say, per event, but reads and writes per batch:

- one statement each loads the events, the effect keys already recorded for them, their customers (by
  our id, by a provider's id through an index, by CPF/CNPJ), and locks those customers in id order (one
  customer's events run one at a time: a payment and a grace deadline racing on two workers would
  otherwise both read the case "in grace"); the tenant, its policy versions, the people to tell and
  whether each channel has somewhere to go are read once per batch;
- each event's handler runs in memory against the ORM session; its effects (records, notifications,
  tasks, timeline, outbound messages and their outbox rows) are collected and written when the batch
  ends, one INSERT per table;
- events of different customers do not read each other's rows, so a batch runs in waves of distinct
  customers with autoflush off, flushing the domain rows (charges, payments, contracts, lifecycle) once
  per wave; a customer's second event in a batch goes in the next wave and sees the first's rows.

The batch runs under one savepoint. If any event fails, that savepoint is rolled back and the batch is
run again with a savepoint per event, so one bad event never holds back the others: it is tried again
later (its outbox row deferred with backoff), and after ``MAX_PROCESS_RETRIES`` retries it is marked
``failed`` with the reason, for staff to replay. An event that was processed before is skipped (a
redelivery changes nothing), and each effect is keyed by (event, step) besides. An unknown customer
leaves the event ``unmatched`` for staff, never dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.documents import InvalidDocument, normalize_tax_id
from backoffice.platform.input_rules import value_problems
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.timers.models import TenantClock
from backoffice.platform.timers.service import flush_timers, forget_timers
from backoffice.platform.worker.jobs import BatchItem, BatchOutcome, Deferral, tenant_job
from backoffice.platform.worker.share import turn
from backoffice.tenants.billing.gateway_customers import Adoption, adopt_gateway_customers
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.customers.queries import (
    customers_by_external_ids, customers_by_ids, customers_by_tax_ids, lock_customers,
)
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import get_port
from backoffice.tenants.effects.service import EffectRows, Rendered, StepEffects, recorded_keys
from backoffice.tenants.events.catalogue import CATALOGUE
from backoffice.tenants.events.intake import PROCESS_JOB
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.policies.schemas import PolicyConfig
from backoffice.tenants.policies.service import current_policy, policy_at
from backoffice.tenants.policies.templates import render
from backoffice.tenants.processes.context import customer_url, customer_view, tenant_view
from backoffice.tenants.processes.known import Known
from backoffice.tenants.processes.recipients import Choices, responsible_people
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.timeline.messages import Msg, in_language
from backoffice.tenants.users.models import TenantUser

log = logging.getLogger(__name__)
MAX_PROCESS_RETRIES = 3
BATCH = 50  # events per message: large enough that per-batch reads vanish, small enough to keep leases short

Handler = Callable[["Step"], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*types: str) -> Callable[[Handler], Handler]:
    """Declare the process step for these event types (marks the function; :func:`register_handlers`,
    called by the composition root, puts it in :data:`HANDLERS`)."""
    for event_type in types:
        if event_type not in CATALOGUE:
            raise ValueError(f"{event_type} is not in the event catalogue")

    def declare(fn: Handler) -> Handler:
        fn.handles = types  # type: ignore[attr-defined]
        return fn

    return declare


def register_handlers(*modules: object) -> None:
    """Put the process steps each module declares in :data:`HANDLERS`; one step per event type."""
    for module in modules:
        steps = [value for value in vars(module).values()
                 if callable(value) and isinstance(getattr(value, "handles", None), tuple)]
        if not steps:
            raise ValueError(f"{getattr(module, '__name__', module)!r} declares no process step")
        for step in steps:
            for event_type in step.handles:
                if HANDLERS.get(event_type, step) is not step:
                    raise RuntimeError(f"{event_type} has two process steps")
                HANDLERS[event_type] = step
        for value in vars(module).values():
            for event_type in getattr(value, "intercepts", None) or () if callable(value) else ():
                if value not in INTERCEPTORS.setdefault(event_type, []):
                    INTERCEPTORS[event_type].append(value)


# Steps that see an event before its process's step (a renegotiation's instalments are gateway charges
# like any other): one that returns True has handled the event, and the process's step does not run.
INTERCEPTORS: dict[str, list[Callable[["Step"], Awaitable[bool]]]] = {}


def intercepts(*types: str) -> Callable:
    """Declare a step that sees these event types first (registered by :func:`register_handlers`)."""
    for event_type in types:
        if event_type not in CATALOGUE:
            raise ValueError(f"{event_type} is not in the event catalogue")

    def declare(fn):
        fn.intercepts = types
        return fn

    return declare


def retry_delay(attempts: int) -> timedelta:
    """Backoff before a failed event is tried again: 2 s, 4 s, 8 s, ... at most 5 minutes."""
    return timedelta(seconds=min(300, 2 ** max(1, attempts)))


@dataclass
class Batch:
    """What a batch of one tenant's events shares: read once, used by every event's step."""

    session: AsyncSession
    tenant: Tenant
    policy_version: int
    policy: PolicyConfig
    recorded: set[str]
    rows: EffectRows
    known: Known | None = None
    _policies: dict[int, PolicyConfig] = field(default_factory=dict)
    _people: dict[tuple, list[TenantUser]] = field(default_factory=dict)
    _reaches: dict[tuple[Channel, str | None], bool] = field(default_factory=dict)
    _fan_outs: dict[Channel, Any] = field(default_factory=dict)
    choices: Choices | None = None  # the people's own notification preferences, read once per batch
    born: dict[uuid.UUID, str] = field(default_factory=dict)  # event id -> its customer born from a gateway record
    clock_offset: timedelta = timedelta(0)  # the tenant's clock ahead of the real one (demo, staging)

    @classmethod
    async def open(cls, session: AsyncSession, tenant_id: uuid.UUID, events: list[Event]) -> Batch:
        # The tenant and its clock's offset in one statement (platform/timers/clock.py).
        tenant, offset = (await session.execute(
            select(Tenant, TenantClock.offset_seconds).outerjoin(TenantClock, TenantClock.tenant_id == Tenant.id)
            .where(Tenant.id == tenant_id))).one()
        version, policy = await current_policy(session)
        recorded = await recorded_keys(session, [event.id for event in events])
        return cls(session, tenant, version, policy, recorded, EffectRows(tenant_id), None, {version: policy},
                   clock_offset=timedelta(seconds=offset or 0))

    async def policy_of(self, version: int) -> PolicyConfig:
        if version not in self._policies:
            self._policies[version] = await policy_at(self.session, version)
        return self._policies[version]

    async def responsible(self, customer: Customer | None, notify) -> list[TenantUser]:
        key = (customer.account_manager_id if customer else None, notify.primary, tuple(notify.team_user_ids),
               notify.fallback_user_id)
        if key not in self._people:
            self._people[key] = await responsible_people(self.session, customer, notify)
        return self._people[key]

    async def reaches(self, channel: Channel, target: str | None) -> bool:
        """Webhooks and platform commands are written only where they have a destination. E-mail and chat
        always are: a message the tenant chose to send that cannot go is a dead letter staff must see."""
        if channel not in (Channel.WEBHOOK, Channel.PLATFORM):
            return True
        fan = await self.fan_out(channel)
        if fan is not None:
            return fan.reaches(target)
        if (channel, target) not in self._reaches:
            port = get_port(channel)
            check = getattr(port, "reaches", None)
            self._reaches[(channel, target)] = True if check is None else await check(self.session, self.tenant, target)
        return self._reaches[(channel, target)]


    async def fan_out(self, channel: Channel) -> Any:
        """The channel's fan-out for this batch (the webhook port's endpoints, read once), or None when its
        messages go through a delivery job."""
        if channel not in self._fan_outs:
            make = getattr(get_port(channel), "fan_out", None)
            self._fan_outs[channel] = None if make is None else await make(self.session, self.tenant)
        return self._fan_outs[channel]


@dataclass
class Step:
    batch: Batch
    event: Event
    customer: Customer
    effects: StepEffects
    _template_problems: set[str] = field(default_factory=set)

    @property
    def session(self) -> AsyncSession:
        return self.batch.session

    @property
    def tenant(self) -> Tenant:
        return self.batch.tenant

    @property
    def policy(self) -> PolicyConfig:
        return self.batch.policy

    @property
    def now(self):
        """The tenant's now: what calendar decisions (a grace deadline, a task's due date) count from."""
        return clock.now() + self.batch.clock_offset

    @property
    def policy_version(self) -> int:
        return self.batch.policy_version

    @property
    def known(self) -> Known:
        return self.batch.known

    @property
    def data(self) -> dict[str, Any]:
        return self.event.data

    async def policy_of(self, version: int) -> PolicyConfig:
        """The policy a running case started under (a change applies to new cases only)."""
        return await self.batch.policy_of(version)

    async def responsible(self, policy: PolicyConfig | None = None) -> list[TenantUser]:
        return await self.batch.responsible(self.customer, (policy or self.policy).notify)

    def base_context(self) -> dict[str, Any]:
        return {"customer": customer_view(self.customer), "tenant": tenant_view(self.tenant),
                "customer_url": customer_url(self.tenant, self.customer)}

    def render(self, kind: str, context: dict[str, Any], policy: PolicyConfig | None = None) -> Rendered:
        overrides = (policy or self.policy).templates
        if isinstance(context.get("reason"), Msg):  # the company's texts say why in the company's language
            context = {**context, "reason": in_language(context["reason"], self.tenant.locale)}
        rendered = render(kind, self.tenant.locale, context, overrides)
        if rendered.problem and rendered.problem not in self._template_problems:
            # The message still goes out, in the default wording; the case says why, once per step.
            self._template_problems.add(rendered.problem)
            self.effects.timeline(Msg("The company's {kind} ({locale}) template failed, the default wording was used",
                                      kind=kind, locale=self.tenant.locale), reason=rendered.problem)
        return Rendered(rendered.title, rendered.body)

    async def tell_responsible(self, step: str, *, kind: str, context: dict[str, Any], reason: str,
                               policy: PolicyConfig | None = None) -> None:
        """Notify the people responsible for the customer on the channels the policy picks for ``kind``."""
        policy = policy or self.policy
        rendered = self.render(kind, context, policy)
        channels = policy.channels.get(kind, ["portal"])
        detail = {**context, "kind": kind, "reason": reason}
        if isinstance(reason, Msg):  # the portal shows the reason in its reader's language
            detail["said"] = {"reason": reason.stored()}
        if self.batch.choices is None:
            self.batch.choices = Choices(self.session)
        for person in await self.responsible(policy):
            mine = await self.batch.choices.channels(person, kind, channels)  # the person's own choice first
            if "portal" in mine:
                await self.effects.notify(step, kind=kind, recipient=person, rendered=rendered, detail=detail,
                                          reason=reason)
            if "email" in mine:
                await self.effects.outbound(
                    f"{step}:email", channel=Channel.EMAIL, target=person.email, suffix=person.id, reason=reason,
                    payload={"kind": kind, "to": person.email, "to_name": person.name, "subject": rendered.title,
                             "text": rendered.body},
                    title=Msg("E-mail to {person}: {title}", person=person.name, title=rendered.title))
        if "chat" in channels:
            await self.effects.outbound(
                f"{step}:chat", channel=Channel.CHAT, target="team", reason=reason,
                payload={"kind": kind, "text": f"*{rendered.title}*\n{rendered.body}"},
                title=Msg("Team chat: {title}", title=rendered.title))


# --- finding the events' customers --------------------------------------------------------------------

def _subject_keys(event: Event) -> tuple[uuid.UUID | None, tuple[str, str] | None, str | None]:
    subject = event.subject or {}
    by_id = by_external = by_tax = None
    if subject.get("id"):
        try:
            by_id = uuid.UUID(str(subject["id"]))
        except ValueError:
            by_id = None
    if subject.get("external_id"):
        by_external = (subject.get("source") or event.source, str(subject["external_id"]))
    if subject.get("tax_id"):
        try:
            by_tax = normalize_tax_id(subject["tax_id"])[1]
        except InvalidDocument:
            by_tax = None
    return by_id, by_external, by_tax


async def resolve_customers(session: AsyncSession, events: list[Event]) -> dict[uuid.UUID, Customer | None]:
    """Each event's customer, in at most three statements for the whole batch. An event naming its
    customer by our id is matched by that id alone (as it always was); otherwise by the provider's id,
    then by CPF/CNPJ."""
    keys = {event.id: _subject_keys(event) for event in events}
    by_id = await customers_by_ids(session, [k[0] for k in keys.values() if k[0]])
    by_external = await customers_by_external_ids(session, [k[1] for k in keys.values() if not k[0] and k[1]])
    by_tax = await customers_by_tax_ids(
        session, [k[2] for k in keys.values() if not k[0] and k[2] and (not k[1] or k[1] not in by_external)])
    found: dict[uuid.UUID, Customer | None] = {}
    for event_id, (cid, external, tax) in keys.items():
        if cid:
            found[event_id] = by_id.get(cid)
        elif external and external in by_external:
            found[event_id] = by_external[external]
        else:
            found[event_id] = by_tax.get(tax) if tax else None
    return found


# --- the job -------------------------------------------------------------------------------------------

def _retries() -> int:
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message else 0


@tenant_job(PROCESS_JOB, queue="events", batch=BATCH, min_backoff=1_000, max_backoff=300_000)
async def process_events(session: AsyncSession, *, tenant_id: uuid.UUID, items: list[BatchItem]) -> BatchOutcome:
    outcome = BatchOutcome()
    wanted: dict[uuid.UUID, BatchItem] = {}
    for item in items:
        try:
            wanted.setdefault(uuid.UUID(str(item.payload["event_id"])), item)
        except (KeyError, ValueError):
            log.error("spine.process_event: outbox %s carries no valid event_id: %r", item.outbox_id, item.payload)
    loaded = {event.id: event for event in (await session.execute(
        select(Event).where(Event.id.in_(list(wanted))).execution_options(populate_existing=True))).scalars()}
    for event_id in wanted.keys() - loaded.keys():
        log.error("spine.process_event: event %s of tenant %s does not exist; nothing to do", event_id, tenant_id)
    # A processed (or failed, or unmatched) event is left as it is: a redelivery changes nothing.
    events = sorted((e for e in loaded.values() if e.status == EventStatus.PENDING), key=lambda e: (e.received_at, e.id))
    now = clock.now()
    events = [event for event in events if not _refused(event, now)]
    if not events:
        return outcome
    batch = await Batch.open(session, tenant_id, events)
    customers = await resolve_customers(session, events)
    unknown = [event for event in events if customers[event.id] is None]
    # A gateway's customer the platform does not know yet may be born from the gateway's record.
    adoption = await adopt_gateway_customers(session, unknown, batch.policy) if unknown else Adoption()
    batch.born.update(adoption.created)
    matched = []
    for event in events:
        customers[event.id] = customers[event.id] or adoption.customers.get(event.id)
        item = wanted[event.id]
        if customers[event.id] is None and event.id in adoption.retry and item.outbox_id is not None \
                and item.attempts <= MAX_PROCESS_RETRIES:
            outcome.deferred[item.outbox_id] = Deferral(clock.now() + retry_delay(item.attempts),
                                                        adoption.retry[event.id])
        elif customers[event.id] is None:
            event.status = EventStatus.UNMATCHED
            event.error = (adoption.reasons.get(event.id) or adoption.retry.get(event.id)
                           or f"no customer of this company matches {event.subject or 'the event'}")[:2000]
            event.processed_at = now
        else:
            matched.append(event)
    # Ids read now: after a rolled-back savepoint the objects are expired, and reading an attribute of an
    # expired object would be I/O outside the driver's await.
    event_ids = [event.id for event in matched]
    customer_ids = {event.id: customers[event.id].id for event in matched}
    await lock_customers(session, customer_ids.values())
    batch.known = await Known.read(session, matched, {event.id: customers[event.id] for event in matched})
    try:
        async with session.begin_nested():
            for wave in _waves(matched, customers):
                with session.no_autoflush:
                    for event in wave:
                        await _run_into(batch, event, customers[event.id], batch.rows)
                        # A step runs in memory (its reads were made for the batch), so a wave would hold
                        # the worker's event loop for all its events: other jobs on this loop get their turn
                        # between two events, and a tenant with fewer jobs here goes first (share.py).
                        await turn()
                await session.flush()
                await flush_timers(session)  # the wave's timers, one statement (a later wave may cancel them)
    except Exception as first:
        forget_timers(session)
        batch.rows = EffectRows(tenant_id)  # what the failed run collected was never written
        if len(matched) == 1:
            [event_id] = event_ids
            event = await session.get(Event, (tenant_id, event_id), populate_existing=True)
            await session.get(Customer, (tenant_id, customer_ids[event_id]), populate_existing=True)
            await _failed(batch, event, wanted[event_id], first, outcome)
        else:
            log.warning("a batch of %d events failed (%s); running each on its own", len(matched), first)
            await _one_by_one(batch, event_ids, customer_ids, wanted, outcome)
    await batch.rows.write(session)
    return outcome


def _refused(event: Event, now) -> bool:
    """An event stored before intake applied the input rule (a NUL in its data, kept by the ``json``
    column) can never be processed: every statement writing that text fails, and with it the whole batch,
    at every retry. It is dead-lettered (``failed``, with the reason) before the batch runs."""
    problems = value_problems({"external_id": event.external_id, "subject": event.subject, "data": event.data},
                              root="event")
    if not problems:
        return False
    event.status = EventStatus.FAILED
    event.error = ("refused by the input rule: " + "; ".join(f"{p.field}: {p.message}" for p in problems))[:2000]
    event.processed_at = now
    log.error("event %s failed for good: %s", event.id, event.error)
    return True


def _waves(events: list[Event], customers: dict[uuid.UUID, Customer | None]) -> list[list[Event]]:
    """Split the batch into runs of events of distinct customers, in order: a customer's later event
    goes to a later wave, after the earlier one's rows are flushed."""
    waves: list[list[Event]] = []
    last_wave: dict[uuid.UUID, int] = {}
    for event in events:
        customer_id = customers[event.id].id
        index = last_wave.get(customer_id, -1) + 1
        if index == len(waves):
            waves.append([])
        waves[index].append(event)
        last_wave[customer_id] = index
    return waves


async def _one_by_one(batch: Batch, event_ids: list[uuid.UUID], customer_ids: dict[uuid.UUID, uuid.UUID],
                      wanted: dict[uuid.UUID, BatchItem], outcome: BatchOutcome) -> None:
    session, tenant_id = batch.session, batch.tenant.id
    # The batch's savepoint rolled back: what it changed is expired. Read the events and customers anew
    # (the customers' locks, taken before the savepoint, are still held) and the keys recorded before.
    events = {e.id: e for e in (await session.execute(
        select(Event).where(Event.id.in_(event_ids)).execution_options(populate_existing=True))).scalars()}
    customers = await customers_by_ids(session, set(customer_ids.values()), fresh=True)
    batch.recorded.clear()
    batch.recorded.update(await recorded_keys(session, event_ids))
    batch.known = await Known.read(session, list(events.values()), customers)
    batch.rows = EffectRows(tenant_id)
    for event_id in event_ids:
        event, customer = events[event_id], customers[customer_ids[event_id]]
        rows = EffectRows(tenant_id)
        try:
            async with session.begin_nested():
                await _run_into(batch, event, customer, rows)
                await session.flush()
                await flush_timers(session)
        except Exception as error:
            forget_timers(session)
            event = await session.get(Event, (tenant_id, event_id), populate_existing=True)
            customers[customer_ids[event_id]] = await session.get(
                Customer, (tenant_id, customer_ids[event_id]), populate_existing=True)
            # What the failed step created is gone and what it changed is expired: read the batch's rows anew.
            batch.known = await Known.read(session, list(events.values()), customers)
            await _failed(batch, event, wanted[event_id], error, outcome)
            continue
        batch.rows.extend(rows)


async def _failed(batch: Batch, event: Event, item: BatchItem, error: Exception, outcome: BatchOutcome) -> None:
    """An event whose step failed: tried again later with backoff, or marked failed for good."""
    reason = f"{type(error).__name__}: {error}"[:2000]
    if item.outbox_id is None:  # sent directly, not through the outbox: dramatiq's retries count
        if _retries() < MAX_PROCESS_RETRIES:
            raise error
    elif item.attempts <= MAX_PROCESS_RETRIES:
        log.warning("event %s failed (attempt %d), trying again later: %s", event.id, item.attempts, reason)
        outcome.deferred[item.outbox_id] = Deferral(clock.now() + retry_delay(item.attempts), reason)
        return
    log.error("event %s failed for good: %s", event.id, reason, exc_info=error)
    event.status = EventStatus.FAILED
    event.error = reason
    event.processed_at = clock.now()


async def _run_into(batch: Batch, event: Event, customer: Customer, rows: EffectRows) -> None:
    effects = StepEffects(tenant=batch.tenant, event=event, customer=customer, recorded=batch.recorded, rows=rows,
                          reaches=batch.reaches, fan_out=batch.fan_out)
    try:
        await _run(Step(batch, event, customer, effects))
    except BaseException:
        effects.forget()
        raise


async def _run(step: Step) -> None:
    event, customer, effects = step.event, step.customer, step.effects
    event.customer_id = customer.id
    if event.id in step.batch.born:
        effects.timeline(step.batch.born[event.id], kind="customer", reason=Msg(
            "a payment arrived for a customer the platform did not know yet"), ref={"subject": event.subject or {}})
    effects.timeline(Msg("Event: {type} from {source}", type=event.type, source=event.source), kind="event",
                     reason=Msg(CATALOGUE[event.type][1]), ref={"external_id": event.external_id})
    claimed = False
    for intercept in INTERCEPTORS.get(event.type, ()):
        claimed = bool(await intercept(step)) or claimed
    if not claimed:
        await HANDLERS[event.type](step)
    # Tenant systems hear of every processed event they subscribed to.
    await effects.outbound(
        "webhook", channel=Channel.WEBHOOK, target=event.type, reason=Msg("{type} processed", type=event.type),
        payload={"type": event.type, "event_id": str(event.id), "occurred_at": event.occurred_at.isoformat(),
                 "customer": customer_view(customer), "data": event.data},
        title=Msg("Webhook {type} to the company's systems", type=event.type))
    event.status = EventStatus.PROCESSED
    event.processed_at = clock.now()


async def retry_event(session: AsyncSession, event: Event) -> None:
    """Staff replay: an unmatched (customer created since) or failed event runs its process again."""
    event.status = EventStatus.PENDING
    event.error = None
    event.processed_at = None
    add_to_outbox(session, event.tenant_id, PROCESS_JOB, event_id=str(event.id))
