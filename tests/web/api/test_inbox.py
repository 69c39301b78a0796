"""Tasks and notifications through the API go through the same service as the portal: the same rules
(ticking only an open task, completing with items unticked only when confirmed) and the same audited
actions; the other tenant's key sees a 404 and changes nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.tasks.models import Task
from tests.web.api.conftest import bearer


async def _task_and_notification(database, tenant) -> tuple[str, str]:
    async with database.tenant(tenant.id) as session:
        task = Task(effect_key="t-inbox", assignee_id=tenant.admin_id, kind="onboarding", title="Onboard",
                    checklist=[{"item": "Call", "done": False}, {"item": "Send contract", "done": False}])
        notification = Notification(effect_key="n-inbox", recipient_id=tenant.member_id, kind="customer.started",
                                    title="Started", body="Started")
        session.add_all([task, notification])
        await session.flush()
        return str(task.id), str(notification.id)


async def test_patching_a_task_follows_the_portals_rules_and_audits_each_action(client, api_keys, tenants, database):
    task_id, _ = await _task_and_notification(database, tenants.a)
    h, url = bearer(api_keys.a), f"/api/v1/tasks/{task_id}"
    ticked = await client.patch(url, headers=h, json={"checklist": [{"item": "Call", "done": True},
                                                                    {"item": "Send contract", "done": False}]})
    assert ticked.status_code == 200, ticked.text
    assert [i["done"] for i in ticked.json()["checklist"]] == [True, False]
    reordered = await client.patch(url, headers=h, json={"checklist": [{"item": "Send contract", "done": True},
                                                                       {"item": "Call", "done": True}]})
    assert reordered.status_code == 422 and reordered.json()["errors"][0]["field"] == "checklist"
    asked = await client.patch(url, headers=h, json={"status": "done"})
    assert asked.status_code == 409, asked.text
    assert asked.json()["errors"][0]["field"] == "checklist" and "Send contract" in asked.text
    done = await client.patch(url, headers=h, json={"status": "done", "unticked_confirmed": True})
    assert done.status_code == 200 and done.json()["status"] == "done" and done.json()["completed_at"]
    closed = await client.patch(url, headers=h, json={"checklist": [{"item": "Call", "done": True},
                                                                    {"item": "Send contract", "done": True}]})
    assert closed.status_code == 422 and closed.json()["errors"][0]["field"] == "status"
    reopened = await client.patch(url, headers=h, json={"status": "open"})
    assert reopened.status_code == 200 and reopened.json()["completed_at"] is None
    async with database.system() as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.target_id == task_id)
                                         )).scalars().all()
    assert sorted(e.action for e in entries) == ["task.checklist_ticked", "task.completed", "task.reopened"]
    assert {e.actor_type for e in entries} == {"api_key"}
    assert [e.detail for e in entries if e.action == "task.completed"] == [{"unticked_items": ["Send contract"]}]


async def test_the_other_tenant_cannot_touch_a_task_or_a_notification(client, api_keys, tenants, database):
    task_id, notification_id = await _task_and_notification(database, tenants.a)
    other = bearer(api_keys.b)
    assert (await client.patch(f"/api/v1/tasks/{task_id}", headers=other, json={"status": "done"})).status_code == 404
    assert (await client.get(f"/api/v1/tasks/{task_id}", headers=other)).status_code == 404
    assert (await client.post(f"/api/v1/notifications/{notification_id}/read", headers=other)).status_code == 404
    assert (await client.get("/api/v1/tasks", headers=other)).json()["data"] == []
    assert notification_id not in (await client.get("/api/v1/notifications", headers=other)).text
    read = await client.post(f"/api/v1/notifications/{notification_id}/read", headers=bearer(api_keys.a))
    assert read.status_code == 200 and read.json()["read_at"]
    unread = await client.get("/api/v1/notifications", headers=bearer(api_keys.a), params={"unread": "true"})
    assert notification_id not in unread.text
    async with database.system() as session:
        task = await session.get(Task, (tenants.a.id, uuid.UUID(task_id)))
        assert task.status.value == "open"
