"""Staff bearer tokens on /api/v1/staff, and the door to a tenant a staff member may act on.

A tenant the staff member is not assigned to answers 404, like a tenant that does not exist.
"""

from __future__ import annotations

import uuid

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send

from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import Database, NotFound
from backoffice.tenants.staff.models import Staff, StaffRole
from backoffice.tenants.staff.service import can_act_on
from backoffice.tenants.staff.tokens import staff_for_token
from backoffice.tenants.registry.models import Tenant
from backoffice.web.api.auth import bearer
from backoffice.web.api.common import problems

# What any staff route may answer besides its success: bad input, no or a wrong token, a company the staff
# member does not serve, a missing resource, a value refused.
STAFF_ERRORS = (400, 401, 403, 404, 422)


def staff_problems(*extra: int) -> dict:
    """The problem answers a staff route documents: every staff route's, and ``extra`` (409, 429...)."""
    return problems(*STAFF_ERRORS, *extra)

INVALID_TOKEN = "Invalid or expired staff token"


class StaffTokenMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["route_handler"].opt.get("public"):
            database: Database = scope["app"].state.database
            async with database.system() as session:
                staff = await staff_for_token(session, bearer(scope) or "")
            if staff is None:
                raise NotAuthorizedException(detail=INVALID_TOKEN, headers={"WWW-Authenticate": 'Bearer realm="staff"'})
            scope["user"] = staff
        await self.app(scope, receive, send)


def provide_staff(request: Request) -> Staff:
    return request.scope["user"]


def actor(staff: Staff) -> Actor:
    return Actor(type="staff", label=staff.email, id=str(staff.id))


def require_admin(staff: Staff) -> None:
    if staff.role != StaffRole.ADMIN:
        raise PermissionDeniedException(detail="Only provider admins may do this")


async def tenant_for(state: State, staff: Staff, tenant_id: uuid.UUID) -> Tenant:
    """The tenant, if this staff member may act on it; otherwise NotFound, exactly like a missing one."""
    database: Database = state.database
    async with database.system() as session:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None or not await can_act_on(session, staff, tenant_id):
            raise NotFound(Tenant, tenant_id)
    return tenant


async def provide_tenant(tenant_id: uuid.UUID, staff: Staff, state: State) -> Tenant:
    """Resolved before the body is validated, so a hidden tenant is a 404 whatever the request holds."""
    return await tenant_for(state, staff, tenant_id)
