"""The tenant's connector a routine works through (its payment gateway, its fiscal issuer).

A routine finds the tenant's enabled instance of the kinds it can use (the oldest, when several) and
opens its context: typed configuration, secrets decrypted, HTTP through the instance's circuit breaker.
A tenant with none configured, or whose credentials can no longer be read, gets a run that fails at
once with that reason (:class:`RoutineUnavailable`) rather than items retried for nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.registry import Context
from backoffice.connectors.service import open_context
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.tenants.routines.engine import RoutineUnavailable

# What the routines open their connectors with (``open_context``'s keywords): ``settings``, whose keys
# decrypt the connectors' secrets (default: the process's), and the HTTP helper's options (timeouts,
# retries, breaker). Tests give their database's settings and short timeouts.
HTTP_OPTIONS: dict[str, Any] = {}


async def connector_for(session: AsyncSession, kinds: tuple[str, ...], purpose: str) -> ConnectorInstance:
    query = (select(ConnectorInstance)
             .where(ConnectorInstance.kind.in_(kinds), ConnectorInstance.enabled.is_(True))
             .order_by(ConnectorInstance.created_at, ConnectorInstance.id))
    instance = (await session.execute(query.limit(1))).scalar_one_or_none()
    if instance is None:
        raise RoutineUnavailable(f"no {purpose} connector configured for this company ({' or '.join(kinds)})")
    return instance


def context_for(instance: ConnectorInstance) -> Context:
    try:
        return open_context(instance, **HTTP_OPTIONS)
    except SecretUnreadable:
        raise RoutineUnavailable(f"connector {instance.name!r}: credentials unreadable; re-enter them") from None
