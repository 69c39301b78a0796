"""Resolving the tenant of a request and opening its scoped session: the web's door to tenant data."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import logs
from backoffice.platform.db.session import Database
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import ensure_active, get_tenant_by_slug

TENANT_KEY = "backoffice.tenant"  # the request's company once known: error pages wear its brand


async def provide_tenant(tenant_slug: str, state: State, request: Request | None = None) -> Tenant:
    """The active tenant named by the path; unknown is 404, suspended is refused with its reason."""
    database: Database = state.database
    async with database.anonymous() as session:
        tenant = await get_tenant_by_slug(session, tenant_slug)
    active = ensure_active(tenant)
    logs.bind(tenant_id=active.id)
    if request is not None:
        request.scope[TENANT_KEY] = active  # an error page on this request wears the company's brand
    return active


async def provide_tenant_session(tenant: Tenant, state: State) -> AsyncIterator[AsyncSession]:
    """A session bound to the request's tenant; commits when the handler succeeds, else rolls back."""
    database: Database = state.database
    async with database.tenant(tenant.id) as session:
        yield session
