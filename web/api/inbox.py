"""/api/v1/notifications and /api/v1/tasks: what the processes told and asked the front office."""

from __future__ import annotations

import uuid

from litestar import Router, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import get_owned
from backoffice.tenants.notifications import service as notifications
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.notifications.queries import notifications_query
from backoffice.tenants.tasks import service as tasks
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.tasks.queries import tasks_query
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import NotificationOut, Page, TaskOut, TaskPatch


@endpoint(get, "/notifications", scope="notifications:read", operation_id="listNotifications")
async def list_notifications(
    session: AsyncSession,
    unread: bool | None = Parameter(default=None, description="true: only unread; false: only read."),
    recipient_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    sort: str = Parameter(default="-created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[NotificationOut]:
    query = notifications_query(unread=unread, recipient_id=recipient_id, customer_id=customer_id)
    page = await paginate(session, query, Notification, sorts={"created_at": Notification.created_at}, sort=sort,
                          limit=limit, cursor=cursor)
    return Page[NotificationOut](data=[NotificationOut.model_validate(n) for n in page.items],
                                 next_cursor=page.next_cursor)


@endpoint(get, "/notifications/{notification_id:uuid}", scope="notifications:read",
          operation_id="getNotification", errors=(404,))
async def get_notification(notification_id: uuid.UUID, session: AsyncSession) -> NotificationOut:
    return NotificationOut.model_validate(await get_owned(session, Notification, notification_id))


@endpoint(post, "/notifications/{notification_id:uuid}/read", scope="notifications:write",
          operation_id="markNotificationRead", status_code=200, errors=(404,))
async def mark_read(notification_id: uuid.UUID, session: AsyncSession) -> NotificationOut:
    return NotificationOut.model_validate(await notifications.mark_read_for_tenant(session, notification_id))


@endpoint(get, "/tasks", scope="tasks:read", operation_id="listTasks")
async def list_tasks(
    session: AsyncSession,
    status: TaskStatus | None = None,
    assignee_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    sort: str = Parameter(default="-created_at", description="created_at, due_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[TaskOut]:
    query = tasks_query(status=status, assignee_id=assignee_id, customer_id=customer_id)
    page = await paginate(session, query, Task, sorts={"created_at": Task.created_at}, sort=sort, limit=limit,
                          cursor=cursor)
    return Page[TaskOut](data=[TaskOut.model_validate(t) for t in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/tasks/{task_id:uuid}", scope="tasks:read", operation_id="getTask", errors=(404,))
async def get_task(task_id: uuid.UUID, session: AsyncSession) -> TaskOut:
    return TaskOut.model_validate(await get_owned(session, Task, task_id))


@endpoint(patch, "/tasks/{task_id:uuid}", scope="tasks:write", operation_id="updateTask", errors=(404, 409, 422))
async def update_task(task_id: uuid.UUID, data: TaskPatch, session: AsyncSession,
                      principal: ApiPrincipal) -> TaskOut:
    """Tick checklist items (the items themselves are the process's) and move the status, under the portal's
    rules: only an open task's items change, and completing with items unticked answers 409 naming them
    unless ``unticked_confirmed`` is true. Each change is its own audited action."""
    task = await tasks.update_task(
        session, task_id, acting=principal.actor(),
        checklist=[item.model_dump() for item in data.checklist] if data.checklist is not None else None,
        status=TaskStatus(data.status) if data.status is not None else None,
        unticked_confirmed=data.unticked_confirmed)
    return TaskOut.model_validate(task)


router = Router("/", route_handlers=[list_notifications, get_notification, mark_read, list_tasks, get_task,
                                     update_task], tags=["inbox"])
