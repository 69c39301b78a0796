"""The overview at ``/staff/``: every tenant the staff member serves, at a glance; and the tenant list."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.datastructures import State

from backoffice.platform.staff import overview as queries
from backoffice.tenants.registry.models import Tenant
from backoffice.web.console.render import render
from backoffice.web.console.session import StaffUser


@get("/", name="console:overview")
async def overview_page(request: Request, staff: StaffUser, state: State) -> Response:
    async with state.database.system() as session:
        tenants = await queries.served_tenants(session, staff_id=staff.id, all_tenants=staff.is_admin)
    return render(request, "console/overview.html", tenants=tenants)


@get("/tenants", name="console:tenants")
async def tenant_list(request: Request, staff: StaffUser, state: State, q: str = "") -> Response:
    async with state.database.system() as session:
        tenants = await queries.served_tenants(session, staff_id=staff.id, all_tenants=staff.is_admin)
    needle = q.strip().lower()
    if needle:
        tenants = [t for t in tenants if needle in t.display_name.lower() or needle in t.slug]
    return render(request, "console/tenants.html", tenants=tenants, q=q)


@get("/overview/tenants/{tenant_id:uuid}", name="console:overview_tenant")
async def overview_tenant(request: Request, staff: StaffUser, console_tenant: Tenant) -> Response:
    """One tenant's line of the overview (what a row's live refresh asks for)."""
    return render(request, "console/overview_tenant.html", tenant=console_tenant)


ROUTES = [overview_page, tenant_list, overview_tenant]
