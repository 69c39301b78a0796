"""The console's door to one tenant: the tenant, if this staff member may act on it; a 404 otherwise.

A provider admin acts on every tenant; an operator only on those they are assigned to
(``tenants/staff/service.can_act_on``). A tenant that exists but is not theirs raises the same NotFound as
a tenant that does not exist, so the console never tells an operator which other companies exist.
Routes with a ``tenant_id: UUID`` path parameter take the ``console_tenant`` dependency (registered on the
console's router) and get the tenant; ``console_tenant()`` is the same check for code that has an id in hand.
"""

from __future__ import annotations

import uuid

from litestar.datastructures import State

from backoffice.platform.db.session import Database, NotFound
from backoffice.tenants.staff.service import can_act_on
from backoffice.tenants.registry.models import Tenant
from backoffice.web.console.session import StaffUser


async def console_tenant(database: Database, staff: StaffUser, tenant_id: uuid.UUID) -> Tenant:
    async with database.system() as session:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None or not await can_act_on(session, staff, tenant_id):  # type: ignore[arg-type]
            raise NotFound(Tenant, tenant_id)
    return tenant


async def provide_console_tenant(tenant_id: uuid.UUID, staff: StaffUser, state: State) -> Tenant:
    """Resolved before the body is read, so a hidden tenant is a 404 whatever the request holds."""
    return await console_tenant(state.database, staff, tenant_id)
