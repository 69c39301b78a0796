"""The branded portal resolves its tenant from the path: each tenant sees its own name and colours and
never the other's; an unknown address is a 404; a suspended tenant is refused with a clear message and
comes back, data intact, when reactivated."""

from __future__ import annotations

import logging
import socket

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from backoffice.platform.audit.service import Actor
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import get_tenant_by_slug, reactivate_tenant, suspend_tenant
from backoffice.platform.settings import Settings
from backoffice.web.app import create_app
from tests.conftest import SECRET, SECRETS_KEYS

ACTOR = Actor(type="staff", label="pat@provider.example")
ALFA_PRIMARY = "#6d28d9"
DEFAULT_PRIMARY = "#1f4e79"
HTML = {"accept": "text/html,application/xhtml+xml"}
JSON = {"accept": "application/json"}


async def _set(database, slug: str, **values) -> None:
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.slug == slug).values(**values))


def _client(database) -> AsyncTestClient:
    # The app opens its own Database in its lifespan, on the test client's event loop.
    return AsyncTestClient(app=create_app(database.settings))


async def test_each_tenant_sees_its_own_brand_and_not_the_others(database, tenants):
    await _set(database, "alfa", branding={"primary": ALFA_PRIMARY, "secondary": "#f59e0b"})
    async with _client(database) as client:
        alfa = await client.get("/alfa/", headers=HTML)
        beta = await client.get("/beta/", headers=HTML)
    assert (alfa.status_code, beta.status_code) == (200, 200)
    assert alfa.headers["content-type"].startswith("text/html")
    assert "Alfa" in alfa.text and ALFA_PRIMARY in alfa.text
    assert "Beta" not in alfa.text and DEFAULT_PRIMARY not in alfa.text
    assert "Beta" in beta.text and DEFAULT_PRIMARY in beta.text
    assert "Alfa" not in beta.text and ALFA_PRIMARY not in beta.text


async def test_tenant_names_are_escaped_in_the_page(database, tenants):
    await _set(database, "alfa", display_name="Alfa & <script>alert(1)</script>")
    async with _client(database) as client:
        page = await client.get("/alfa/", headers=HTML)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_an_unknown_tenant_is_a_404_problem(database, tenants):
    async with _client(database) as client:
        response = await client.get("/gama/", headers=JSON)
        as_html = await client.get("/gama/", headers=HTML)
    assert response.status_code == 404 == as_html.status_code
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


async def test_a_suspended_tenant_is_refused_clearly_and_returns_intact_when_reactivated(database, tenants):
    reason = "invoices unpaid since March"
    async with database.system() as session:
        await suspend_tenant(session, await get_tenant_by_slug(session, "alfa"), reason=reason, acting=ACTOR)

    async with _client(database) as client:
        page = await client.get("/alfa/", headers=HTML)
        problem = await client.get("/alfa/", headers=JSON)
        other = await client.get("/beta/", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "Acesso suspenso" in page.text and "O acesso a Alfa está suspenso" in page.text  # pt-BR, branded
    assert 'href="/alfa/"' in page.text
    assert problem.status_code == 403
    assert problem.headers["content-type"].startswith("application/problem+json")
    body = problem.json()
    assert (body["status"], body["title"], body["tenant"]) == (403, "Tenant suspended", "alfa")
    assert "suspended" in body["detail"]
    assert reason not in page.text and reason not in problem.text  # the reason is for the provider only
    assert other.status_code == 200  # the other tenant is untouched

    async with database.system() as session:
        await reactivate_tenant(session, await get_tenant_by_slug(session, "alfa"), reason="paid", acting=ACTOR)
    async with _client(database) as client:
        back = await client.get("/alfa/", headers=HTML)
    assert back.status_code == 200 and "Alfa" in back.text
    async with database.tenant(tenants.a.id) as session:
        customers = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    assert customers == len(tenants.a.customer_ids)


async def test_a_database_that_is_down_is_a_503_page_for_people_and_a_problem_for_programs(caplog, tmp_path):
    # Tenant resolution hits a database that is down: the page says to retry, the problem has Retry-After.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = Settings(database_url=f"postgresql+asyncpg://app:hunter2@127.0.0.1:{closed}/bo", secret_key=SECRET,
                        secrets_keys=SECRETS_KEYS, data_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="backoffice.web"):
        async with AsyncTestClient(app=create_app(settings)) as client:
            page = await client.get("/alfa/", headers=HTML)
            problem = await client.get("/alfa/", headers=JSON)
    assert page.status_code == 503 == problem.status_code
    assert page.headers["content-type"].startswith("text/html") and page.headers["retry-after"]
    assert "Indisponível no momento" in page.text and "Nada foi perdido" in page.text
    assert problem.headers["content-type"].startswith("application/problem+json") and problem.headers["retry-after"]
    assert problem.json()["status"] == 503
    assert "hunter2" not in page.text + problem.text
    assert any("GET /alfa" in record.getMessage() for record in caplog.records)
