"""Recording effects of a process step exactly once, written set-based.

Every effect carries a key derived from (event, step[, recipient]). A step's effects are kept in memory
(``EffectRows``) and written when its batch ends, one INSERT per table for the whole batch, in the job's
transaction: the effect records, notifications, tasks, timeline entries, outbound messages and the outbox
rows of their deliveries. An effect whose key was recorded before is skipped without side effects (the keys
of every event of the batch are read in one statement), and the unique ``(tenant_id, key)`` constraint
backs that check should two deliveries of one event ever race: the loser's whole batch rolls back and is
tried again. Outbound effects become ``OutboundMessage`` rows plus an outbox entry for the delivery job,
so nothing leaves before the step commits; one whose channel has nowhere to go for this tenant (no
webhook endpoint subscribed to the event, no platform connector) is not created at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import ensure_scope
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.effects.models import Channel, DeliveryStatus, Effect, OutboundMessage
from backoffice.tenants.events.models import Event
from backoffice.tenants.notifications.live import announce_notifications
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.timeline.messages import Msg, stored_message
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.tenants.users.models import TenantUser

DELIVER_JOB = "effects.deliver"

# Insert order: what a row may point at is written before it. Rows of other tables (a port's fan-out)
# go after the outbound messages and before the outbox.
_TABLES = (Effect, Notification, Task, TimelineEntry, OutboundMessage)

Reaches = Callable[[Channel, str | None], Awaitable[bool]]
FanOuts = Callable[[Channel], Awaitable[Any]]


async def _always(channel: Channel, target: str | None) -> bool:
    return True


async def _none(channel: Channel) -> None:
    return None


# The platform commands the processes send, each titled as a whole sentence (a translation needs all of it).
COMMAND_TITLES = {
    "block": Msg("Platform command: block"), "unblock": Msg("Platform command: unblock"),
    "provision": Msg("Platform command: provision"), "deprovision": Msg("Platform command: deprovision"),
}


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


class EffectRows:
    """Rows to insert, by table; written with one statement per table."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.rows: dict[type, list[dict[str, Any]]] = {model: [] for model in _TABLES}
        self.rows[OutboxEntry] = []

    def add(self, model: type, **values: Any) -> uuid.UUID:
        values.setdefault("id", new_id())
        values["tenant_id"] = self.tenant_id
        if model not in self.rows:  # a new table goes before the outbox
            outbox = self.rows.pop(OutboxEntry)
            self.rows[model] = []
            self.rows[OutboxEntry] = outbox
        self.rows[model].append(values)
        return values["id"]

    def extend(self, other: EffectRows) -> None:
        for model, rows in other.rows.items():
            for values in rows:
                self.add(model, **values)

    def count(self, model: type) -> int:
        return len(self.rows.get(model, []))

    async def write(self, session: AsyncSession) -> None:
        ensure_scope(session, self.tenant_id)  # Core inserts bypass the ORM door: the tenant is checked here
        for model, rows in self.rows.items():
            if rows:  # Core executemany: the ORM's bulk path adds nothing here but its cost
                await session.execute(insert(model.__table__), rows)
                if model is Notification:  # the recipients' open pages hear of it after commit
                    announce_notifications(session, self.tenant_id, rows)
        self.rows = {model: [] for model in self.rows}


async def recorded_keys(session: AsyncSession, event_ids: list[uuid.UUID]) -> set[str]:
    """The effect keys already recorded for these events: one statement for a whole batch."""
    if not event_ids:
        return set()
    return set((await session.execute(select(Effect.key).where(Effect.event_id.in_(event_ids)))).scalars())


def outbox_row(rows: EffectRows, job: str, at: datetime, **payload: Any) -> uuid.UUID:
    return rows.add(OutboxEntry, job=job, payload=payload, created_at=at, available_at=at, attempts=0)


class StepEffects:
    """The effects of one event's process, keyed by step.

    ``recorded`` holds the keys recorded before (shared by the batch); ``rows`` collects this event's new
    rows, which the batch writes once the event's step has succeeded; ``reaches`` tells whether a channel
    has a destination for this tenant."""

    def __init__(self, *, tenant: Tenant, event: Event, customer: Customer | None, recorded: set[str],
                 rows: EffectRows, reaches: Reaches = _always, fan_out: FanOuts = _none) -> None:
        self.tenant = tenant
        self.event = event
        self.customer = customer
        self.recorded = recorded
        self.rows = rows
        self.reaches = reaches
        self.fan_out = fan_out
        self.claimed: list[str] = []  # keys this step recorded (forgotten again if the step fails)

    def key(self, step: str, suffix: str | uuid.UUID | None = None) -> str:
        return f"{self.event.id}:{step}" + (f":{suffix}" if suffix else "")

    def done(self, key: str) -> bool:
        return key in self.recorded

    def forget(self) -> None:
        """The step failed: its keys were never written."""
        self.recorded.difference_update(self.claimed)
        self.claimed.clear()

    def _claim(self, key: str, *, kind: str, step: str, reason: str, ref_id: uuid.UUID | None) -> bool:
        """Record the effect; False when it was already recorded (a repeat)."""
        if key in self.recorded:
            return False
        self.recorded.add(key)
        self.claimed.append(key)
        self.rows.add(Effect, key=key, kind=kind, event_id=self.event.id, step=step, reason=reason[:500],
                      ref_id=ref_id, customer_id=self._customer_id, created_at=clock.now())
        return True

    @property
    def _customer_id(self) -> uuid.UUID | None:
        return self.customer.id if self.customer else None

    def timeline(self, title: str, *, reason: str | None = None, kind: str = "effect", ref: dict | None = None) -> None:
        """An entry on the customer's timeline; a ``Msg`` title or reason is also kept as its message id with
        parameters, so each reader sees it in their language (every row carries ``message``: one executemany)."""
        if self.customer is None:
            return
        self.rows.add(TimelineEntry, customer_id=self.customer.id, at=clock.now(), kind=kind, title=title[:300],
                      reason=str(reason) if reason is not None else None, message=stored_message(title, reason),
                      event_id=self.event.id, ref=ref or {}, author_id=None)

    async def notify(
        self, step: str, *, kind: str, recipient: TenantUser, rendered: Rendered, detail: dict[str, Any], reason: str
    ) -> uuid.UUID | None:
        key = self.key(step, recipient.id)
        notification_id = new_id()
        if not self._claim(key, kind="notification", step=step, reason=reason, ref_id=notification_id):
            return None
        self.rows.add(Notification, id=notification_id, effect_key=key, recipient_id=recipient.id, kind=kind,
                      title=rendered.title[:300], body=rendered.body, detail=detail, customer_id=self._customer_id,
                      event_id=self.event.id, created_at=clock.now(), read_at=None)
        self.timeline(Msg("Notified {person}: {title}", person=recipient.name, title=rendered.title), reason=reason,
                      ref={"effect_key": key, "notification_id": str(notification_id), "kind": kind})
        return notification_id

    async def task(
        self, step: str, *, kind: str, assignee: TenantUser, title: str, description: str,
        checklist: list[str], due_at: datetime | None, reason: str,
    ) -> uuid.UUID | None:
        key = self.key(step)
        task_id = new_id()
        if not self._claim(key, kind="task", step=step, reason=reason, ref_id=task_id):
            return None
        # A Msg title or description (the platform's words, not the company's templates) is also kept as its
        # message id with parameters, so each reader sees it in their language (every row carries ``message``).
        message = {name: text.stored() for name, text in (("title", title), ("description", description))
                   if isinstance(text, Msg)}
        self.rows.add(Task, id=task_id, effect_key=key, assignee_id=assignee.id, kind=kind, title=title[:300],
                      description=str(description), message=message or None,
                      checklist=[{"item": item, "done": False} for item in checklist],
                      status=TaskStatus.OPEN, due_at=due_at, customer_id=self._customer_id, event_id=self.event.id,
                      created_at=clock.now(), completed_at=None)
        self.timeline(Msg("Task for {person}: {title}", person=assignee.name, title=title), reason=reason,
                      ref={"effect_key": key, "task_id": str(task_id), "kind": kind})
        return task_id

    async def outbound(
        self, step: str, *, channel: Channel, target: str | None, payload: dict[str, Any], reason: str,
        title: str, suffix: str | uuid.UUID | None = None,
    ) -> uuid.UUID | None:
        key = self.key(step, suffix)
        if key in self.recorded:
            return None
        if not await self.reaches(channel, target):
            if channel == Channel.PLATFORM:  # a process step meant to act on the customer's service: say so
                self.timeline(Msg("{title}: not sent, no platform connector is configured for this company",
                                  title=title),
                              reason=reason, ref={"effect_key": key, "channel": channel.value})
            return None
        message_id = new_id()
        self._claim(key, kind=channel.value, step=step, reason=reason, ref_id=message_id)
        now = clock.now()
        message = {"id": message_id, "effect_key": key, "channel": channel, "target": target, "payload": payload,
                   "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": None, "last_error": None,
                   "response": {}, "customer_id": self._customer_id, "event_id": self.event.id, "created_at": now,
                   "sent_at": None}
        fan = await self.fan_out(channel)
        if fan is not None:
            # The channel fans out into deliveries of its own (a webhook per subscribed endpoint), written now
            # with their outbox rows: the message is handed over here, not by a delivery job.
            message.update(status=DeliveryStatus.SENT, sent_at=now, response=fan.expand(self.rows, message))
            self.rows.add(OutboundMessage, **message)
        else:
            self.rows.add(OutboundMessage, **message)
            outbox_row(self.rows, DELIVER_JOB, now, message_id=str(message_id))
        self.timeline(title, reason=reason, ref={"effect_key": key, "message_id": str(message_id),
                                                 "channel": channel.value})
        return message_id

    async def command(self, step: str, *, command: str, data: dict[str, Any], reason: str) -> uuid.UUID | None:
        """A command to the tenant's platform: block, unblock, provision, deprovision."""
        customer = self.customer
        payload = {
            "command": command, "reason": reason, "data": data,
            "customer": {"id": str(customer.id), "external_ids": customer.external_ids, "tax_id": customer.tax_id}
            if customer else None,
        }
        return await self.outbound(step, channel=Channel.PLATFORM, target=command, payload=payload, reason=reason,
                                   title=COMMAND_TITLES.get(command) or Msg("Platform command: {command}",
                                                                             command=command))

    async def email_customer(self, step: str, *, kind: str, rendered: Rendered, reason: str) -> uuid.UUID | None:
        customer = self.customer
        if customer is None or not customer.email:
            self.timeline(Msg("E-mail '{kind}' not sent: the customer has no e-mail address", kind=kind), reason=reason)
            return None
        payload = {"kind": kind, "to": customer.email, "to_name": customer.name, "subject": rendered.title,
                   "text": rendered.body}
        return await self.outbound(step, channel=Channel.EMAIL, target=customer.email, payload=payload,
                                   reason=reason, title=Msg("E-mail to the customer: {title}", title=rendered.title))
