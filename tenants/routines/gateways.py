"""The tenant's connection a routine works through (its payment gateway, its fiscal issuer).

A routine finds the tenant's enabled connection of the kinds it can use (the oldest, when several) and
opens it into its port (``tenants/billing/ports.PaymentGateway``, ``tenants/fiscal/ports.FiscalIssuer``)
through the installed directory (``tenants/connections.py``). A tenant with none configured, or whose
credentials can no longer be read, gets a run that fails at once with that reason
(:class:`RoutineUnavailable`) rather than items retried for nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.connections import Connection, Unusable, directory
from backoffice.tenants.routines.engine import RoutineUnavailable


async def connection_for(session: AsyncSession, kinds: tuple[str, ...], purpose: str) -> Connection:
    found = await directory().connections(session, kinds)
    if not found:
        raise RoutineUnavailable(f"no {purpose} connector configured for this company ({' or '.join(kinds)})")
    return found[0]


async def open_port(session: AsyncSession, connection: Connection) -> Any:
    try:
        return await directory().open(session, connection)
    except Unusable:
        raise RoutineUnavailable(f"connector {connection.name!r}: credentials unreadable; re-enter them") from None
