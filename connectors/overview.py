"""The connectors panel of the staff console's overview: per tenant, enabled connector instances whose last
exchange failed (with the newest error), and how many of them have their circuit open right now.

One statement for every served tenant (``served`` is the overview's tenant subquery, see
``tenants/overview/queries.py``); the circuits are read only for failing instances (a circuit opens after
consecutive failures, so a healthy instance has none open), concurrently. The breaker is bookkeeping: when its
store cannot be read the panel says so (``circuits_unknown``) rather than failing the page.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.http import CircuitBreaker, breaker_store, circuit_key
from backoffice.connectors.models import ConnectorInstance
from backoffice.platform.settings import Settings

log = logging.getLogger(__name__)
FAILING = text("connector_instances.health = 'failing' AND connector_instances.enabled")


@dataclass
class ConnectorHealth:
    failing: int = 0
    circuits_open: int = 0
    last_error: str | None = None
    last_kind: str | None = None
    circuits_unknown: bool = False


async def failing_connectors(session: AsyncSession, served: Select | None, settings: Settings,
                             only: list[uuid.UUID] | None = None) -> dict[uuid.UUID, ConnectorHealth]:
    query = select(ConnectorInstance.tenant_id, ConnectorInstance.id, ConnectorInstance.kind,
                   ConnectorInstance.last_error, ConnectorInstance.last_error_at).where(FAILING)
    if served is not None:
        query = query.where(ConnectorInstance.tenant_id.in_(served))
    if only is not None:
        query = query.where(ConnectorInstance.tenant_id.in_(only))
    rows = (await session.execute(query.order_by(ConnectorInstance.last_error_at.desc().nulls_last()))).all()
    result: dict[uuid.UUID, ConnectorHealth] = {}
    for row in rows:
        health = result.setdefault(row.tenant_id, ConnectorHealth())
        health.failing += 1
        if health.last_error is None:  # newest first
            health.last_error, health.last_kind = row.last_error, row.kind
    if rows:
        store = breaker_store(settings)
        states = await asyncio.gather(
            *(CircuitBreaker(store, circuit_key(row.tenant_id, row.id)).state() for row in rows),
            return_exceptions=True)
        for row, state in zip(rows, states):
            if isinstance(state, BaseException):
                log.warning("circuit state of connector %s unreadable: %s", row.id, state)
                result[row.tenant_id].circuits_unknown = True
            elif state == "open":
                result[row.tenant_id].circuits_open += 1
    return result


def failing_query(served: Select | None) -> Select:
    """The panel as a statement the overview's page joins (rows of tenant_id, failing)."""
    query = select(ConnectorInstance.tenant_id.label("tenant_id"), func.count().label("failing")).where(FAILING)
    if served is not None:
        query = query.where(ConnectorInstance.tenant_id.in_(served))
    return query.group_by(ConnectorInstance.tenant_id)
