"""The tenant's connections to outside systems (its Asaas account, its Focus NFe token), as the domain sees
them: what a routine may ask of them and how they fail, without naming a provider.

``connectors/`` owns the rows, the secrets and the HTTP; it implements :class:`Directory` and the ports a
connection opens into (``tenants/billing/ports.PaymentGateway``, ``tenants/fiscal/ports.FiscalIssuer``).
The composition root installs the directory once (:func:`install_directory`); the domain reaches it
through :func:`directory`, and a process that forgot to install one fails with that reason instead of
acting without its connectors.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class CallFailed(Exception):
    """An outside system refused a call or could not be reached. ``retryable`` says whether trying again
    later can help (5xx, timeouts, an open circuit) or not (a refusal of our data or credentials);
    ``status`` is the provider's HTTP status when it answered. Connectors raise subclasses of this."""

    retryable: bool = False
    status: int | None = None


class Unusable(Exception):
    """The connection exists but cannot be used now (its credentials can no longer be read)."""


@dataclass(frozen=True)
class Connection:
    """One of the tenant's configured connections: ``kind`` is the provider (``asaas``, ``focusnfe``),
    which is also the ``source`` of what it creates and the key of ``Customer.external_ids``."""

    id: uuid.UUID
    name: str
    kind: str
    enabled: bool = True


class Directory(Protocol):
    async def connections(self, session: AsyncSession, kinds: Iterable[str]) -> list[Connection]:
        """The session tenant's enabled connections of these kinds, oldest first."""

    async def connection(self, session: AsyncSession, connection_id: uuid.UUID) -> Connection | None:
        """One of the session tenant's connections, enabled or not; None when it is gone."""

    async def tenants_with(self, session: AsyncSession, kinds: Iterable[str]) -> set[uuid.UUID]:
        """Every tenant with an enabled connection of these kinds (a system session)."""

    def opens(self, kind: str) -> bool:
        """Whether a connection of this kind opens into a port of the domain (a gateway, an issuer)."""

    async def open(self, session: AsyncSession, connection: Connection) -> Any:
        """The connection's port (a ``PaymentGateway``, a ``FiscalIssuer``), credentials decrypted and calls
        bound to its circuit breaker; raises :class:`Unusable` when its credentials cannot be read."""

    async def note_failure(self, session: AsyncSession, connection_id: uuid.UUID, reason: str) -> None:
        """Record on the connection that its last exchange failed, and why (shown to staff)."""


_directory: Directory | None = None


def install_directory(directory: Directory | None) -> Directory | None:
    """Called by the composition root; returns the directory it replaces (tests put it back)."""
    global _directory
    previous, _directory = _directory, directory
    return previous


def directory() -> Directory:
    if _directory is None:
        raise RuntimeError("no connection directory installed: the process's composition root installs one "
                           "(connectors.wiring) before any routine runs")
    return _directory
