"""Every console route that names a tenant walks through the same door: an operator's request for a tenant
not assigned to them, for a tenant that does not exist, or for another tenant's rows under their own
tenant's address, is a 404 (for GET and POST alike); a provider admin gets through.

The routes are read from the app, so a page or action added to the console tomorrow is walked the day it
is added. A route whose path has more parameters than ``tenant_id`` gets, for the "another tenant's ids"
walk, ids of tenant B's rows where :data:`FOREIGN_IDS` knows the parameter (add yours there), else a fresh
UUID (a missing row).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from backoffice.web.app import create_app
from tests.web.console.conftest import ConsoleBrowser, csrf_of

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


async def _first_id(database, tenant_id: uuid.UUID, model) -> str:
    async with database.provider(tenant_id) as session:
        ident = (await session.execute(select(model.id).limit(1))).scalar()
    return str(ident or uuid.uuid4())


async def _customer(database, tenant_id):
    from backoffice.tenants.customers.models import Customer

    return await _first_id(database, tenant_id, Customer)


async def _user(database, tenant_id):
    from backoffice.tenants.users.models import TenantUser

    return await _first_id(database, tenant_id, TenantUser)


# Path parameter name -> one of a tenant's real ids of that kind (the tenant fixture's rows).
FOREIGN_IDS: dict[str, Callable[..., Awaitable[str]]] = {
    "customer_id": _customer,
    "user_id": _user,
}


# Endless event streams: the in-process test client waits for a body that never ends, so their door (401, 404
# for an unassigned operator, the assigned one's stream) is walked in test_live.py.
STREAMS = {"/staff/tenants/{tenant_id:uuid}/live"}


def console_routes() -> list[tuple[str, dict, set[str]]]:
    """(path, path parameters, methods) of every console route whose path names a tenant."""
    app = create_app(_settings_for_listing())
    found = []
    for route in app.routes:
        if route.path in STREAMS:
            continue
        if route.path.startswith("/staff") and "tenant_id" in getattr(route, "path_parameters", {}):
            methods = {m for m in route.methods if m in ("GET", *UNSAFE)}
            found.append((route.path, dict(route.path_parameters), methods))
    return found


def _settings_for_listing():
    from backoffice.platform.settings import Settings

    return Settings(data_dir="/tmp/backoffice-route-listing", broker_url="memory://")


async def _fill(path: str, params: dict, tenant_id: uuid.UUID, ids_of: uuid.UUID | None, database) -> str:
    for name, definition in params.items():
        if name == "tenant_id":
            value = str(tenant_id)
        elif definition.type is int:
            value = "1"
        elif ids_of is not None and name in FOREIGN_IDS:
            value = await FOREIGN_IDS[name](database, ids_of)
        else:
            value = str(uuid.uuid4())
        path = re.sub(r"\{" + name + r"(:\w+)?\}", value, path)
    return path


async def _call(browser: ConsoleBrowser, method: str, path: str, token: str):
    if method == "GET":
        return await browser.get(path)
    return await browser.client.request(method, path, data={"_csrf_token": token}, headers=browser.headers,
                                        follow_redirects=False)


def test_the_walk_finds_the_console_routes():
    paths = [path for path, _, _ in console_routes()]
    assert "/staff/overview/tenants/{tenant_id:uuid}" in paths, paths
    every = {route.path for route in create_app(_settings_for_listing()).routes}
    assert STREAMS <= every, "a stream left out of the walk must still exist (else drop it from STREAMS)"


async def test_an_unassigned_operator_gets_404_on_every_tenant_route(database, operator_client):
    tenants = operator_client.tenants
    token = csrf_of((await operator_client.get("/staff/")).text)
    walked = 0
    for path, params, methods in console_routes():
        for method in sorted(methods):
            for tenant_id in (tenants.b.id, uuid.uuid4()):  # not assigned; does not exist
                url = await _fill(path, params, tenant_id, tenants.b.id, database)
                answer = await _call(operator_client, method, url, token)
                assert answer.status_code == 404, (method, url, answer.status_code, answer.text[:300])
                walked += 1
    assert walked >= 2


async def test_another_tenants_ids_under_the_operators_own_tenant_are_404(database, operator_client):
    tenants = operator_client.tenants
    token = csrf_of((await operator_client.get("/staff/")).text)
    for path, params, methods in console_routes():
        if set(params) == {"tenant_id"}:
            continue  # nothing but the tenant: covered by the walk above
        for method in sorted(methods):
            url = await _fill(path, params, tenants.a.id, tenants.b.id, database)
            answer = await _call(operator_client, method, url, token)
            assert answer.status_code == 404, (method, url, answer.status_code, answer.text[:300])


async def test_an_admin_gets_through_the_door_of_every_tenant_route(database, admin_client):
    tenants = admin_client.tenants
    token = csrf_of((await admin_client.get("/staff/")).text)
    for path, params, methods in console_routes():
        if not set(params) - {"tenant_id"} <= set(FOREIGN_IDS):
            continue  # a row kind this walk cannot name: its own tests cover it
        for method in sorted(methods):
            url = await _fill(path, params, tenants.a.id, tenants.a.id, database)
            answer = await _call(admin_client, method, url, token)
            assert answer.status_code != 404, (method, url, answer.text[:300])
            assert answer.status_code < 500, (method, url, answer.text[:300])


async def test_an_assigned_operator_gets_through_for_their_own_tenant(database, operator_client):
    tenants = operator_client.tenants
    for path, params, methods in console_routes():
        if set(params) != {"tenant_id"} or "GET" not in methods:
            continue
        answer = await operator_client.get(await _fill(path, params, tenants.a.id, tenants.a.id, database))
        assert answer.status_code == 200, (path, answer.status_code)


async def test_signed_out_every_console_route_asks_for_sign_in(database, tenants, console):
    browser = ConsoleBrowser(console)
    public = {"/staff/login", "/staff/login/code", "/staff/login/enrol", "/staff/logout", "/staff/locale",
              "/staff/sso/start", "/staff/sso/callback"}
    app = create_app(_settings_for_listing())
    token = csrf_of((await browser.get("/staff/login")).text)
    for route in app.routes:
        if not route.path.startswith("/staff") or route.path in public:
            continue
        for method in sorted(m for m in route.methods if m in ("GET", *UNSAFE)):
            url = await _fill(route.path, route.path_parameters, tenants.a.id, tenants.a.id, database)
            answer = await _call(browser, method, url, token)
            assert answer.status_code in (303, 401), (method, url, answer.status_code)
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/staff/login?next="), (method, url)
