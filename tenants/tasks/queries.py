"""Reads of a tenant's tasks: the statement the API pages through (the tenant door scopes it)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from backoffice.tenants.tasks.models import Task, TaskStatus


def tasks_query(*, status: TaskStatus | None = None, assignee_id: uuid.UUID | None = None,
                customer_id: uuid.UUID | None = None) -> Select:
    """Tasks with the given status, assignee and customer (each filter only when given); the caller orders."""
    query = select(Task)
    if status is not None:
        query = query.where(Task.status == status)
    if assignee_id is not None:
        query = query.where(Task.assignee_id == assignee_id)
    if customer_id is not None:
        query = query.where(Task.customer_id == customer_id)
    return query


__all__ = ["tasks_query"]
