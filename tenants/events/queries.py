"""Reads of a tenant's events: the statement the API pages through (the tenant door scopes it)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from backoffice.tenants.events.models import Event, EventStatus


def events_query(*, type: str | None = None, status: EventStatus | None = None,
                 customer_id: uuid.UUID | None = None) -> Select:
    query = select(Event)
    if type is not None:
        query = query.where(Event.type == type)
    if status is not None:
        query = query.where(Event.status == status)
    if customer_id is not None:
        query = query.where(Event.customer_id == customer_id)
    return query


__all__ = ["events_query"]
