"""A user and session of one tenant never reach another tenant's portal or data: by path, by host name,
and by id (another tenant's customer, task or notification is a 404, exactly like a missing one)."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.web.app import create_app
from tests.web.portal.conftest import Browser, add_case

GET_PAGES = ["/dashboard", "/inbox", "/inbox/poll", "/tasks", "/tasks?whose=all", "/customers", "/admin/users",
             "/admin/branding", "/admin/notifications", "/admin/sso", "/admin/api-keys", "/admin/webhooks"]


async def test_a_session_of_alfa_is_refused_everywhere_on_betas_portal(browser: Browser, tenants, database):
    b_notification, b_task = await add_case(database, tenants.b.id, tenants.b.admin_id, tenants.b.customer_ids[0])
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    paths = [*GET_PAGES, f"/inbox/{b_notification}", f"/tasks/{b_task}", f"/customers/{tenants.b.customer_ids[0]}"]
    for path in paths:
        response = await browser.get(f"/beta{path}")
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/beta/login"), path
        assert "Beta" not in response.text
    # Forms too: the CSRF token is valid, the session is not Beta's, nothing changes.
    for action in (f"/beta/tasks/{b_task}/complete", f"/beta/inbox/{b_notification}/read",
                   f"/beta/customers/{tenants.b.customer_ids[0]}/notes", "/beta/admin/users", "/beta/admin/branding",
                   "/beta/admin/notifications", "/beta/admin/sso", "/beta/admin/api-keys", "/beta/admin/webhooks",
                   f"/beta/admin/users/{tenants.b.member_id}/role"):
        response = await browser.post_form("/alfa/dashboard", action, {"text": "intrusion", "role": "tenant_admin",
                                                                        "email": "x@beta.example", "name": "X",
                                                                        "primary": "#000000", "url": "https://x.example"})
        assert response.status_code == 303 and response.headers["location"].startswith("/beta/login"), action
    async with database.tenant(tenants.b.id) as session:
        task = await session.get(Task, (tenants.b.id, b_task))
        notification = await session.get(Notification, (tenants.b.id, b_notification))
        notes = (await session.execute(select(TimelineEntry).where(TimelineEntry.kind == "note"))).all()
    assert task.status == TaskStatus.OPEN and notification.read_at is None and notes == []
    # Alfa's own portal still works with the same cookie.
    assert (await browser.get("/alfa/inbox")).status_code == 200


async def test_another_tenants_ids_are_404_on_ones_own_portal(browser: Browser, tenants, database):
    b_notification, b_task = await add_case(database, tenants.b.id, tenants.b.admin_id, tenants.b.customer_ids[0])
    a_notification, a_task = await add_case(database, tenants.a.id, tenants.a.admin_id, tenants.a.customer_ids[0])
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    for path in (f"/alfa/inbox/{b_notification}", f"/alfa/tasks/{b_task}", f"/alfa/customers/{tenants.b.customer_ids[0]}",
                 f"/alfa/inbox/{uuid.uuid4()}", f"/alfa/tasks/{uuid.uuid4()}", "/alfa/customers/not-a-uuid"):
        assert (await browser.get(path)).status_code == 404, path
    for action in (f"/alfa/tasks/{b_task}/complete", f"/alfa/tasks/{b_task}/checklist/0",
                   f"/alfa/inbox/{b_notification}/read", f"/alfa/customers/{tenants.b.customer_ids[0]}/notes"):
        response = await browser.post_form("/alfa/dashboard", action, {"text": "x", "done": "1"})
        assert response.status_code == 404, action
    async with database.tenant(tenants.b.id) as session:
        task = await session.get(Task, (tenants.b.id, b_task))
        assert task.status == TaskStatus.OPEN and task.checklist[0]["done"] is False
    # Alfa's own ids work, and Alfa's lists never show Beta's rows.
    assert (await browser.get(f"/alfa/inbox/{a_notification}")).status_code == 200
    customers = await browser.get("/alfa/customers")
    assert "João Pereira" not in customers.text and "Casa do Pão" in customers.text
    tasks = await browser.get("/alfa/tasks?whose=all")
    assert "Tarefa Cliente novo" in tasks.text and str(b_task) not in tasks.text


async def test_a_members_inbox_is_their_own(browser: Browser, tenants, database):
    admin_notification, _ = await add_case(database, tenants.a.id, tenants.a.admin_id, tenants.a.customer_ids[0])
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    assert (await browser.get(f"/alfa/inbox/{admin_notification}")).status_code == 404
    poll = await browser.get("/alfa/inbox/poll")
    assert poll.json() == {"unread": 0, "latest": []}


async def test_a_tenants_own_host_name_serves_its_portal_at_the_root_and_nothing_else(database, tenants):
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.slug == "beta").values(custom_host="portal.beta.example"))
    b_notification, _ = await add_case(database, tenants.b.id, tenants.b.member_id, tenants.b.customer_ids[0])
    app = create_app(database.settings)
    async with AsyncTestClient(app=app, base_url="http://portal.beta.example") as on_host:
        browser = Browser(on_host)
        home = await browser.get("/")
        assert home.status_code == 200 and "Beta" in home.text and 'action="/login"' in home.text
        response = await browser.login("", "member@beta.example")
        assert response.status_code == 303 and response.headers["location"] == "/dashboard"
        inbox = await browser.get("/inbox")
        assert inbox.status_code == 200 and f'href="/inbox/{b_notification}"' in inbox.text
        # Alfa's user cannot log in on Beta's host, and Alfa's portal is not reachable through it.
        assert (await Browser(on_host).login("", "admin@alfa.example")).status_code == 400
        alfa_via_host = await browser.get("/alfa/inbox")
        assert alfa_via_host.status_code in (404, 303)
        assert "Alfa" not in alfa_via_host.text
    async with AsyncTestClient(app=create_app(database.settings)) as by_path:
        alfa = Browser(by_path)
        assert (await alfa.login("/alfa", "admin@alfa.example")).status_code == 303
        cookie = by_path.cookies.get("bo_session")
    async with AsyncTestClient(app=create_app(database.settings), base_url="http://portal.beta.example") as on_host:
        on_host.cookies.set("bo_session", cookie)
        refused = await on_host.get("/inbox", headers={"accept": "text/html"}, follow_redirects=False)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


async def test_a_suspended_tenant_is_refused_even_with_a_session(browser: Browser, tenants, database):
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.slug == "alfa").values(status="suspended",
                                                                                  suspended_reason="unpaid"))
    for path in ("/login", "/dashboard", "/inbox", "/inbox/poll"):
        response = await browser.get(f"/alfa{path}")
        assert response.status_code == 403 and "Acesso suspenso" in response.text, path
    assert (await browser.get("/beta/login")).status_code == 200
