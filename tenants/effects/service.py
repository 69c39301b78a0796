"""Recording effects of a process step exactly once.

Every effect carries a key derived from (event, step[, recipient]). The whole step runs in the job's
transaction; the key's unique constraint makes a duplicate event or a redelivered message a no-op, and
an effect whose key exists is skipped without side effects. Outbound effects become ``OutboundMessage``
rows plus an outbox entry for the delivery job, so nothing leaves before the step commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.effects.models import Channel, Effect, OutboundMessage
from backoffice.tenants.events.models import Event
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.tasks.models import Task
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.tenants.users.models import TenantUser

DELIVER_JOB = "effects.deliver"


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


class StepEffects:
    """The effects of one event's process, keyed by step."""

    def __init__(self, session: AsyncSession, *, tenant: Tenant, event: Event, customer: Customer | None) -> None:
        self.session = session
        self.tenant = tenant
        self.event = event
        self.customer = customer
        self._recorded: set[str] | None = None

    def key(self, step: str, suffix: str | uuid.UUID | None = None) -> str:
        return f"{self.event.id}:{step}" + (f":{suffix}" if suffix else "")

    async def done(self, key: str) -> bool:
        if self._recorded is None:  # one query per step for all of the event's effects, not one per effect
            query = select(Effect.key).where(Effect.event_id == self.event.id)
            self._recorded = set((await self.session.execute(query)).scalars())
        return key in self._recorded

    async def _claim(self, key: str, *, kind: str, step: str, reason: str, ref_id: uuid.UUID | None) -> Effect | None:
        """Record the effect; None when it was already recorded (a repeat). The unique (tenant, key)
        constraint backs this check should two deliveries of one event ever race."""
        if await self.done(key):
            return None
        self._recorded.add(key)
        effect = Effect(key=key, kind=kind, event_id=self.event.id, step=step, reason=reason, ref_id=ref_id,
                        customer_id=self.customer.id if self.customer else None, created_at=clock.now())
        self.session.add(effect)
        return effect

    def timeline(self, title: str, *, reason: str | None = None, kind: str = "effect", ref: dict | None = None) -> None:
        if self.customer is None:
            return
        self.session.add(TimelineEntry(
            customer_id=self.customer.id, at=clock.now(), kind=kind, title=title[:300], reason=reason,
            event_id=self.event.id, ref=ref or {},
        ))

    async def notify(
        self, step: str, *, kind: str, recipient: TenantUser, rendered: Rendered, detail: dict[str, Any], reason: str
    ) -> Notification | None:
        key = self.key(step, recipient.id)
        notification_id = new_id()
        if await self._claim(key, kind="notification", step=step, reason=reason, ref_id=notification_id) is None:
            return None
        notification = Notification(
            id=notification_id, effect_key=key, recipient_id=recipient.id, kind=kind, title=rendered.title[:300], body=rendered.body,
            detail=detail, customer_id=self.customer.id if self.customer else None, event_id=self.event.id,
            created_at=clock.now(),
        )
        self.session.add(notification)
        self.timeline(f"Notified {recipient.name}: {rendered.title}", reason=reason,
                      ref={"effect_key": key, "notification_id": str(notification.id), "kind": kind})
        return notification

    async def task(
        self, step: str, *, kind: str, assignee: TenantUser, title: str, description: str,
        checklist: list[str], due_at: datetime | None, reason: str,
    ) -> Task | None:
        key = self.key(step)
        task_id = new_id()
        if await self._claim(key, kind="task", step=step, reason=reason, ref_id=task_id) is None:
            return None
        task = Task(
            id=task_id, effect_key=key, assignee_id=assignee.id, kind=kind, title=title[:300], description=description,
            checklist=[{"item": item, "done": False} for item in checklist], due_at=due_at,
            customer_id=self.customer.id if self.customer else None, event_id=self.event.id, created_at=clock.now(),
        )
        self.session.add(task)
        self.timeline(f"Task for {assignee.name}: {title}", reason=reason,
                      ref={"effect_key": key, "task_id": str(task.id), "kind": kind})
        return task

    async def outbound(
        self, step: str, *, channel: Channel, target: str | None, payload: dict[str, Any], reason: str,
        title: str, suffix: str | uuid.UUID | None = None,
    ) -> OutboundMessage | None:
        key = self.key(step, suffix)
        message_id = new_id()
        if await self._claim(key, kind=channel.value, step=step, reason=reason, ref_id=message_id) is None:
            return None
        message = OutboundMessage(
            id=message_id, effect_key=key, channel=channel, target=target, payload=payload,
            customer_id=self.customer.id if self.customer else None, event_id=self.event.id, created_at=clock.now(),
        )
        self.session.add(message)
        add_to_outbox(self.session, self.tenant.id, DELIVER_JOB, message_id=str(message.id))
        self.timeline(title, reason=reason, ref={"effect_key": key, "message_id": str(message.id),
                                                 "channel": channel.value})
        return message

    async def command(self, step: str, *, command: str, data: dict[str, Any], reason: str) -> OutboundMessage | None:
        """A command to the tenant's platform: block, unblock, provision, deprovision."""
        customer = self.customer
        payload = {
            "command": command, "reason": reason, "data": data,
            "customer": {"id": str(customer.id), "external_ids": customer.external_ids, "tax_id": customer.tax_id}
            if customer else None,
        }
        return await self.outbound(step, channel=Channel.PLATFORM, target=command, payload=payload, reason=reason,
                                   title=f"Platform command: {command}")

    async def email_customer(self, step: str, *, kind: str, rendered: Rendered, reason: str) -> OutboundMessage | None:
        customer = self.customer
        if customer is None or not customer.email:
            self.timeline(f"E-mail '{kind}' not sent: the customer has no e-mail address", reason=reason)
            return None
        payload = {"kind": kind, "to": customer.email, "to_name": customer.name, "subject": rendered.title,
                   "text": rendered.body}
        return await self.outbound(step, channel=Channel.EMAIL, target=customer.email, payload=payload,
                                   reason=reason, title=f"E-mail to the customer: {rendered.title}")
