"""/api/v1/notifications and /api/v1/tasks: what the processes told and asked the front office."""

from __future__ import annotations

import uuid

from litestar import Router, get, patch, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.tasks.models import Task, TaskStatus
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
    query = select(Notification)
    if unread is not None:
        query = query.where(Notification.read_at.is_(None) if unread else Notification.read_at.is_not(None))
    if recipient_id is not None:
        query = query.where(Notification.recipient_id == recipient_id)
    if customer_id is not None:
        query = query.where(Notification.customer_id == customer_id)
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
    notification = await get_owned(session, Notification, notification_id)
    if notification.read_at is None:
        notification.read_at = clock.now()
        await session.flush()
    return NotificationOut.model_validate(notification)


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
    query = select(Task)
    if status is not None:
        query = query.where(Task.status == status)
    if assignee_id is not None:
        query = query.where(Task.assignee_id == assignee_id)
    if customer_id is not None:
        query = query.where(Task.customer_id == customer_id)
    page = await paginate(session, query, Task, sorts={"created_at": Task.created_at}, sort=sort, limit=limit,
                          cursor=cursor)
    return Page[TaskOut](data=[TaskOut.model_validate(t) for t in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/tasks/{task_id:uuid}", scope="tasks:read", operation_id="getTask", errors=(404,))
async def get_task(task_id: uuid.UUID, session: AsyncSession) -> TaskOut:
    return TaskOut.model_validate(await get_owned(session, Task, task_id))


@endpoint(patch, "/tasks/{task_id:uuid}", scope="tasks:write", operation_id="updateTask", errors=(404,))
async def update_task(task_id: uuid.UUID, data: TaskPatch, session: AsyncSession,
                      principal: ApiPrincipal) -> TaskOut:
    task = await _update_task(session, task_id, data, acting=principal.actor())
    return TaskOut.model_validate(task)


async def _update_task(session: AsyncSession, task_id: uuid.UUID, data: TaskPatch, *, acting: Actor) -> Task:
    """Tick checklist items (the items themselves are the process's) and move the status."""
    task = await get_owned(session, Task, task_id)
    if data.checklist is not None:
        if [i.item for i in data.checklist] != [i["item"] for i in task.checklist]:
            raise ValidationFailed(FieldError("checklist", "keep the items and their order; change only 'done'"))
        task.checklist = [i.model_dump() for i in data.checklist]
    if data.status is not None and data.status != task.status.value:
        task.status = TaskStatus(data.status)
        task.completed_at = clock.now() if task.status == TaskStatus.DONE else None
    await session.flush()
    await record(session, actor=acting, action="task.updated", target_type="task", target_id=task.id,
                 tenant_id=task.tenant_id, detail=data.model_dump(exclude_none=True, mode="json"))
    return task


router = Router("/", route_handlers=[list_notifications, get_notification, mark_read, list_tasks, get_task,
                                     update_task], tags=["inbox"])
