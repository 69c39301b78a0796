"""The tenant's branded portal (entry page; the inbox, tasks and customers hang under it)."""

from __future__ import annotations

from litestar import Router, get
from litestar.di import Provide
from litestar.response import Template

from backoffice.tenants.registry.branding import DEFAULT_BRANDING
from backoffice.tenants.registry.models import Tenant
from backoffice.web.tenancy import provide_tenant


@get("/", name="portal:home")
async def portal_home(tenant: Tenant) -> Template:
    return Template(
        template_name="portal/home.html",
        context={"tenant": tenant, "brand": {**DEFAULT_BRANDING, **(tenant.branding or {})}},
    )


portal_router = Router(
    path="/{tenant_slug:str}",
    route_handlers=[portal_home],
    dependencies={"tenant": Provide(provide_tenant)},
    include_in_schema=False,
)
