"""Ports of ``tenants/effects`` backed by each tenant's connector instance for the channel.

A tenant with no enabled instance for a channel: in production the message is dead-lettered at once
with the reason "no ... connector configured for this company" (retrying cannot help; staff configure
the connector, then replay). In the embedded mode (SQLite, the demo) it falls back to the recording port
that was installed before, so the demo still shows what would have been sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.kinds import ConnectorError
from backoffice.connectors.service import instance_for_channel, note_outcome, open_context, record_failure
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.platform.settings import Settings, get_settings
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError, Port, get_port, send_one, set_port
from backoffice.tenants.registry.models import Tenant


class ConnectorPort:
    channel: Channel
    label: str

    def __init__(self, *, settings: Settings | None = None, fallback: Port | None = None,
                 http_options: dict[str, Any] | None = None) -> None:
        self._settings = settings
        self.fallback = fallback
        self.http_options = http_options or {}

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    async def reaches(self, session: AsyncSession, tenant: Tenant, target: str | None) -> bool:
        """Whether the tenant has somewhere to send this channel's messages (the embedded mode's recording
        fallback counts)."""
        if self.fallback is not None and self.settings.embedded:
            return True
        return await instance_for_channel(session, self.channel) is not None

    async def send(self, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        return await send_one(self, session, tenant, message)

    async def send_many(self, session: AsyncSession, tenant: Tenant,
                        messages: list[OutboundMessage]) -> list[dict[str, Any] | BaseException]:
        """The instance is found and opened once for the batch, the calls made concurrently (each through
        the instance's circuit breaker), and its health recorded once from their outcomes."""
        instance = await instance_for_channel(session, self.channel)
        if instance is None:
            if self.fallback is not None and self.settings.embedded:
                return [await self._fallback(session, tenant, m) for m in messages]
            error = DeliveryError(f"no {self.label} connector configured for this company", retryable=False)
            return [error for _ in messages]
        try:
            ctx = open_context(instance, self.settings, **self.http_options)
        except SecretUnreadable:
            record_failure(instance, "credentials unreadable: re-enter them (the key they were saved with is gone)")
            error = DeliveryError(f"{self.label} connector {instance.name!r}: credentials unreadable", retryable=False)
            return [error for _ in messages]
        outcomes = await self.deliver_group(ctx, tenant, messages)
        results: list[dict[str, Any] | BaseException] = []
        last_failure = None
        for outcome in outcomes:
            if isinstance(outcome, DeliveryError):
                last_failure = str(outcome)
            elif isinstance(outcome, BaseException):
                last_failure = f"{type(outcome).__name__}: {outcome}"
            else:
                outcome = {**outcome, "connector": instance.name}
            results.append(outcome)
        await note_outcome(session, instance, last_failure)
        return results

    async def _fallback(self, session: AsyncSession, tenant: Tenant, message: OutboundMessage) -> Any:
        try:
            return await self.fallback.send(session, tenant, message)
        except Exception as error:
            return error

    async def deliver_group(self, ctx, tenant: Tenant, messages: list[OutboundMessage]
                            ) -> list[dict[str, Any] | BaseException]:
        """Every message's outcome, in order: by default each delivered on its own, concurrently. A port
        whose protocol carries many messages over one connection (SMTP) does better."""
        return list(await asyncio.gather(*(self._deliver_one(ctx, tenant, m) for m in messages),
                                         return_exceptions=True))

    async def _deliver_one(self, ctx, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        try:
            return await self.deliver(ctx, tenant, message)
        except ConnectorError as error:
            raise DeliveryError(str(error), retryable=getattr(error, "retryable", True)) from None

    async def deliver(self, ctx, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        raise NotImplementedError


def install(*port_classes: type[ConnectorPort], settings: Settings | None = None,
            http_options: dict[str, Any] | None = None) -> dict[Channel, Port]:
    """Plug connector ports in (the composition root names them: e-mail, chat, the tenant's platform) in
    place of the domain's defaults, which each keeps as its fallback; returns the ports they replace."""
    previous: dict[Channel, Port] = {}
    for port_class in port_classes:
        channel = port_class.channel
        current = get_port(channel)
        fallback = current.fallback if isinstance(current, ConnectorPort) else current
        previous[channel] = set_port(channel, port_class(settings=settings, fallback=fallback,
                                                         http_options=http_options))
    return previous
