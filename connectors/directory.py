"""The domain's directory of a tenant's connections (``tenants/connections.Directory``), backed by the
connector instances: which are enabled, opening one into its port, noting failures.

A kind's port (what its connection opens into: ``AsaasGateway``, ``FocusNfeIssuer``) is given by the
composition root in ``ports`` (kind name -> factory taking the context and the instance row); opening a
connection of a kind with no port is a programming error, said as such.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import open_context, record_failure
from backoffice.platform.db.session import TENANT_KEY
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.platform.settings import Settings
from backoffice.tenants.connections import Connection, Unusable

PortFactory = Callable[[Any, ConnectorInstance, Connection], Any]


def connection_of(instance: ConnectorInstance) -> Connection:
    return Connection(id=instance.id, name=instance.name, kind=instance.kind, enabled=instance.enabled)


class ConnectorDirectory:
    """``settings`` decrypt the secrets (default: the process's); ``http_options`` are the HTTP helper's
    (timeouts, retries, breaker): tests give short ones."""

    def __init__(self, ports: dict[str, PortFactory], *, settings: Settings | None = None,
                 **http_options: Any) -> None:
        self.ports = dict(ports)
        self.settings = settings
        self.http_options = http_options

    async def connections(self, session: AsyncSession, kinds: Iterable[str]) -> list[Connection]:
        query = (select(ConnectorInstance)
                 .where(ConnectorInstance.kind.in_(list(kinds)), ConnectorInstance.enabled.is_(True))
                 .order_by(ConnectorInstance.created_at, ConnectorInstance.id))
        return [connection_of(instance) for instance in (await session.execute(query)).scalars()]

    async def connection(self, session: AsyncSession, connection_id: uuid.UUID) -> Connection | None:
        instance = await self._instance(session, connection_id)
        return connection_of(instance) if instance is not None else None

    async def tenants_with(self, session: AsyncSession, kinds: Iterable[str]) -> set[uuid.UUID]:
        return set((await session.execute(select(ConnectorInstance.tenant_id).where(
            ConnectorInstance.kind.in_(list(kinds)), ConnectorInstance.enabled.is_(True)))).scalars())

    def opens(self, kind: str) -> bool:
        return kind in self.ports

    async def open(self, session: AsyncSession, connection: Connection) -> Any:
        factory = self.ports.get(connection.kind)
        if factory is None:
            raise LookupError(f"connector kind {connection.kind!r} has no port for the domain")
        instance = await self._instance(session, connection.id)
        if instance is None:
            raise Unusable(f"connector {connection.name!r} is gone")
        try:
            ctx = open_context(instance, self.settings, **self.http_options)
        except SecretUnreadable:
            raise Unusable(f"connector {connection.name!r}: credentials unreadable") from None
        return factory(ctx, instance, connection)

    async def note_failure(self, session: AsyncSession, connection_id: uuid.UUID, reason: str) -> None:
        instance = await self._instance(session, connection_id)
        if instance is not None:
            record_failure(instance, reason)

    async def _instance(self, session: AsyncSession, connection_id: uuid.UUID) -> ConnectorInstance | None:
        tenant_id = session.info.get(TENANT_KEY)
        if tenant_id is None:
            raise RuntimeError("a connection is opened through a tenant session")
        return await session.get(ConnectorInstance, (tenant_id, connection_id))
