"""Ports: where outbound effects leave the platform.

The process code only writes ``OutboundMessage`` rows; the delivery job hands each to the port of its
channel. Until the connectors land, every channel has a ``RecordingPort`` that keeps what would have been
sent (inspectable by operators and tests); a connector replaces the port for its channel with
:func:`set_port` and the effect logic does not change.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.registry.models import Tenant


class DeliveryError(Exception):
    """The receiver refused or could not be reached. ``retryable=False`` dead-letters at once."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Port(Protocol):
    async def send(self, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        """Deliver; return the receiver's acknowledgement; raise DeliveryError on failure.

        ``session`` is the delivery job's tenant-bound session: a port may read the tenant's connector
        settings or fan out into more rows (webhook endpoints) in the same transaction.

        A port may also define ``async def reaches(session, tenant, target) -> bool``: whether the tenant
        has a destination for such a message at all (a process step writes none that would go nowhere);
        a port without it always reaches. And ``async def send_many(session, tenant, messages)``, for a
        delivery batch: one outcome per message, in order, each the acknowledgement or the exception
        ``send`` would have raised (see :func:`send_many`)."""


async def send_one(port: Any, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
    """``send`` for a port whose work is done by its ``send_many``: the one outcome, raised if a failure."""
    [outcome] = await port.send_many(session, tenant, [message])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def send_many(port: Port, session: AsyncSession, tenant: Tenant,
                    messages: list[OutboundMessage]) -> list[dict[str, Any] | BaseException]:
    """Deliver a batch of one channel's messages: the port's own ``send_many`` (which may read its settings
    once and send concurrently), else ``send`` one after another. Never raises for one message's failure:
    its exception is its outcome."""
    many = getattr(port, "send_many", None)
    if many is not None:
        return await many(session, tenant, messages)
    outcomes: list[dict[str, Any] | BaseException] = []
    for message in messages:
        try:
            outcomes.append(await port.send(session, tenant, message))
        except Exception as error:  # the message's outcome, recorded by the caller
            outcomes.append(error)
    return outcomes


@dataclass(frozen=True)
class Recorded:
    tenant_id: uuid.UUID
    channel: str
    target: str | None
    effect_key: str
    payload: dict[str, Any]
    at: datetime


@dataclass
class RecordingPort:
    """In-process port: records what would be sent. Thread-safe (worker threads share it)."""

    channel: Channel
    sent: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def send(self, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        record = Recorded(tenant.id, self.channel.value, message.target, message.effect_key, dict(message.payload),
                          clock.now())
        with self._lock:
            self.sent.append(record)
        return {"recorded": True, "at": record.at.isoformat()}

    def for_tenant(self, tenant_id: uuid.UUID) -> list[Recorded]:
        with self._lock:
            return [r for r in self.sent if r.tenant_id == tenant_id]


_PORTS: dict[Channel, Port] = {channel: RecordingPort(channel) for channel in Channel}


def get_port(channel: Channel) -> Port:
    return _PORTS[channel]


def set_port(channel: Channel, port: Port) -> Port:
    """Plug a real transport in for a channel; returns the previous port."""
    previous, _PORTS[channel] = _PORTS[channel], port
    return previous
