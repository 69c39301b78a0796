"""Working on tasks: listing, ticking checklist items, completing; each change an audited action."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import Conflict, FieldError, ValidationFailed
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.tasks.queries import tasks_query


async def list_tasks(session: AsyncSession, *, assignee_id: uuid.UUID | None, status: TaskStatus | None = TaskStatus.OPEN,
                     customer_id: uuid.UUID | None = None, limit: int = 200) -> list[Task]:
    query = (tasks_query(status=status, assignee_id=assignee_id, customer_id=customer_id)
             .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at.desc()).limit(limit))
    return list((await session.execute(query)).scalars())


def _open(task: Task) -> None:
    if task.status != TaskStatus.OPEN:
        raise ValidationFailed(FieldError("status", f"the task is {task.status.value}, not open"))


async def tick_checklist_item(session: AsyncSession, task_id: uuid.UUID, index: int, *, done: bool,
                              acting: Actor) -> Task:
    task = await get_owned(session, Task, task_id)
    _open(task)
    if not 0 <= index < len(task.checklist or []):
        raise ValidationFailed(FieldError("item", f"expected an item number from 0 to {len(task.checklist) - 1}"))
    checklist = [dict(item) for item in task.checklist]
    if checklist[index].get("done") == done:
        return task
    checklist[index]["done"] = done
    task.checklist = checklist  # a new list, so the JSON column is seen as changed
    await session.flush()
    await record(session, actor=acting, action="task.checklist_ticked" if done else "task.checklist_unticked",
                 target_type="task", target_id=task.id, tenant_id=task.tenant_id,
                 detail={"item": checklist[index].get("item"), "index": index})
    return task


class UntickedItems(Conflict):
    """Completing a task whose checklist still has open items needs the person to say so."""

    def __init__(self, items: list[str]) -> None:
        self.items = items
        super().__init__(FieldError("checklist", f"{len(items)} checklist item(s) not ticked: " + "; ".join(items)))


async def complete_task(session: AsyncSession, task_id: uuid.UUID, *, acting: Actor,
                        unticked_confirmed: bool = False) -> Task:
    """Complete the task; with items still unticked only when the person confirmed it (the audit keeps which)."""
    task = await get_owned(session, Task, task_id)
    if task.status == TaskStatus.DONE:
        return task
    _open(task)
    pending = [str(item.get("item")) for item in task.checklist or [] if not item.get("done")]
    if pending and not unticked_confirmed:
        raise UntickedItems(pending)
    task.status = TaskStatus.DONE
    task.completed_at = clock.now()
    await session.flush()
    await record(session, actor=acting, action="task.completed", target_type="task", target_id=task.id,
                 tenant_id=task.tenant_id, detail={"unticked_items": pending})
    return task


async def cancel_task(session: AsyncSession, task_id: uuid.UUID, *, acting: Actor) -> Task:
    """An open task nobody needs to do any more; a canceled one stays canceled."""
    task = await get_owned(session, Task, task_id)
    if task.status == TaskStatus.CANCELED:
        return task
    _open(task)
    task.status = TaskStatus.CANCELED
    task.completed_at = None
    await session.flush()
    await record(session, actor=acting, action="task.canceled", target_type="task", target_id=task.id,
                 tenant_id=task.tenant_id)
    return task


async def reopen_task(session: AsyncSession, task_id: uuid.UUID, *, acting: Actor) -> Task:
    """A done or canceled task back to open (its checklist as it was left)."""
    task = await get_owned(session, Task, task_id)
    if task.status == TaskStatus.OPEN:
        return task
    was = task.status.value
    task.status = TaskStatus.OPEN
    task.completed_at = None
    await session.flush()
    await record(session, actor=acting, action="task.reopened", target_type="task", target_id=task.id,
                 tenant_id=task.tenant_id, detail={"was": was})
    return task


async def update_task(session: AsyncSession, task_id: uuid.UUID, *, acting: Actor,
                      checklist: list[dict[str, Any]] | None = None, status: TaskStatus | None = None,
                      unticked_confirmed: bool = False) -> Task:
    """Several changes at once (the API's PATCH), each under the rules and with the audit entry of its own
    action above, the portal's: the checklist's items and order stay the process's and only ``done`` moves,
    on an open task; completing with items unticked needs ``unticked_confirmed``."""
    task = await get_owned(session, Task, task_id)
    if checklist is not None:
        if [item.get("item") for item in checklist] != [item.get("item") for item in task.checklist or []]:
            raise ValidationFailed(FieldError("checklist", "keep the items and their order; change only 'done'"))
        for index, (now, wanted) in enumerate(zip(task.checklist or [], checklist, strict=True)):
            if bool(now.get("done")) != bool(wanted.get("done")):
                await tick_checklist_item(session, task.id, index, done=bool(wanted.get("done")), acting=acting)
    if status is None or status == task.status:
        return task
    if status == TaskStatus.DONE:
        return await complete_task(session, task.id, acting=acting, unticked_confirmed=unticked_confirmed)
    if status == TaskStatus.CANCELED:
        return await cancel_task(session, task.id, acting=acting)
    return await reopen_task(session, task.id, acting=acting)
