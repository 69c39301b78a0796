"""Portal test helpers: an app per test on the test's database, and a browser-like client that logs in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from backoffice.web.app import create_app

PASSWORD = "correct-horse-battery"
HTML = {"accept": "text/html"}
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


class Browser:
    """A test client that keeps cookies and fills in the form's CSRF token, like a browser would."""

    def __init__(self, client: AsyncTestClient, host: str | None = None) -> None:
        self.client = client
        self.headers = {**HTML, **({"host": host} if host else {})}

    async def get(self, path: str, **kwargs):
        kwargs.setdefault("follow_redirects", False)
        return await self.client.get(path, headers=self.headers, **kwargs)

    async def post_form(self, page_path: str, action: str, data: dict[str, str], *, token: str | None = None):
        if token is None:
            token = csrf_of((await self.get(page_path)).text)
        return await self.client.post(action, data={**data, "_csrf_token": token}, headers=self.headers,
                                      follow_redirects=False)

    async def login(self, base: str, email: str, password: str = PASSWORD):
        return await self.post_form(f"{base}/login", f"{base}/login", {"email": email, "password": password})


@pytest.fixture
async def portal(database) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        yield client


@pytest.fixture
def browser(portal) -> Browser:
    return Browser(portal)


async def add_case(database, tenant_id, recipient_id, customer_id, *, title: str = "Cliente novo") -> tuple:
    """A notification and an open task for ``recipient_id``, written as the spine's effects would be."""
    from backoffice.tenants.notifications.models import Notification
    from backoffice.tenants.tasks.models import Task

    async with database.tenant(tenant_id) as session:
        notification = Notification(effect_key=f"test:{title}:n", recipient_id=recipient_id, kind="customer.started",
                                    title=title, body="Corpo", detail={"reason": "teste"}, customer_id=customer_id)
        task = Task(effect_key=f"test:{title}:t", assignee_id=recipient_id, kind="onboarding", title=f"Tarefa {title}",
                    checklist=[{"item": "Ligar", "done": False}], customer_id=customer_id)
        session.add_all([notification, task])
        await session.flush()
        return notification.id, task.id
