"""/api/v1/staff routes: tokens, tenants, branding, policies, assignments, unmatched events, dead letters,
audit log. Every write is an audited action by the staff member."""

from __future__ import annotations

import uuid
from datetime import datetime

from litestar import Request, Router, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import Parameter

from backoffice.platform.ratelimit import LOG_IN, gate
from backoffice.tenants.staff.models import Staff, StaffRole
from backoffice.platform.audit.queries import audit_filter, search_audit
from backoffice.tenants.staff.service import (
    assign_staff, assigned_tenant_ids, get_staff_by_email, hand_over, unassign_staff,
)
from backoffice.tenants.staff.tokens import InvalidCredentials, issue_token
from backoffice.tenants.policies.service import current_policy, policy_history, update_policy
from backoffice.tenants.registry.branding import validate_colours
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.handover import OPEN_WORK
from backoffice.tenants.registry.service import create_tenant, reactivate_tenant, suspend_tenant, update_branding
from backoffice.tenants.registry.settings import (
    change_settings, remove_custom_host, request_custom_host, verification_record, verify_custom_host,
)
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.registry.queries import tenants_query
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import Page
from backoffice.web.api.staff.clock import clock_routes
from backoffice.web.api.staff.connectors import connector_routes
from backoffice.web.api.staff.deadletters import deadletter_routes
from backoffice.web.clients import client_address
from backoffice.web.api.staff.routines import routine_routes
from backoffice.web.api.staff.auth import (
    StaffTokenMiddleware, actor, provide_staff, provide_tenant, require_admin, staff_problems, tenant_for,
)
from backoffice.web.api.staff.schemas import (
    AssignmentIn, AssignmentOut, AuditOut, BrandingIn, HandOverIn, HandOverOut,
    PolicyOut, PolicyPatch,
    PolicyVersionOut, Reason, SuspendIn, CustomHostIn, TenantIn, TenantOut, TenantSettingsPatch, TokenIn, TokenOut,
)



# --- tokens ---------------------------------------------------------------------------------------

@post("/tokens", opt={"public": True}, operation_id="staffCreateToken", status_code=201, responses=staff_problems(429),
      security=[])
async def create_token(data: TokenIn, request: Request, state: State) -> TokenOut:
    # Throttled by account and by address, in sliding windows, before the password is checked (ratelimit.py).
    attempt = await gate(state.rate_limiter, "platform", "staff-login", account=data.email,
                         address=client_address(request), limits=LOG_IN)
    if not attempt.allowed:
        raise TooManyRequestsException(detail="Too many log-in attempts; wait and retry",
                                       headers={"Retry-After": str(attempt.retry_after)})
    try:
        async with state.database.system() as session:
            issued = await issue_token(session, email=data.email, password=data.password)
    except InvalidCredentials:
        raise NotAuthorizedException(detail="Wrong e-mail or password") from None
    await attempt.succeeded()
    return TokenOut(token=issued.token, expires_at=issued.expires_at)


# --- tenants --------------------------------------------------------------------------------------

@get("/tenants", operation_id="staffListTenants", responses=staff_problems())
async def list_tenants(
    staff: Staff, state: State,
    sort: str = Parameter(default="slug", description="slug, created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[TenantOut]:
    """The tenants this staff member serves (a provider admin: all)."""
    async with state.database.system() as session:
        only = None if staff.role == StaffRole.ADMIN else await assigned_tenant_ids(session, staff)
        page = await paginate(session, tenants_query(only=only), Tenant,
                              sorts={"slug": Tenant.slug, "created_at": Tenant.created_at}, sort=sort, limit=limit,
                              cursor=cursor)
        return Page[TenantOut](data=[_tenant_out(t) for t in page.items], next_cursor=page.next_cursor)


@post("/tenants", operation_id="staffCreateTenant", status_code=201, responses=staff_problems(409))
async def create(data: TenantIn, staff: Staff, state: State) -> TenantOut:
    require_admin(staff)
    async with state.database.system() as session:
        tenant = await create_tenant(session, **data.model_dump(), acting=actor(staff))
    return _tenant_out(tenant)


@get("/tenants/{tenant_id:uuid}", operation_id="staffGetTenant", responses=staff_problems())
async def get_tenant(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State) -> TenantOut:
    return _tenant_out(tenant)


@post("/tenants/{tenant_id:uuid}/suspend", operation_id="staffSuspendTenant", status_code=200,
      responses=staff_problems())
async def suspend(tenant_id: uuid.UUID, tenant: Tenant, data: SuspendIn, staff: Staff, state: State) -> TenantOut:
    async with state.database.system() as session:
        tenant = await suspend_tenant(session, await session.get(Tenant, tenant_id), reason=data.reason,
                                      acting=actor(staff))
    return _tenant_out(tenant)


@post("/tenants/{tenant_id:uuid}/reactivate", operation_id="staffReactivateTenant", status_code=200,
      responses=staff_problems())
async def reactivate(tenant_id: uuid.UUID, tenant: Tenant, data: Reason, staff: Staff, state: State) -> TenantOut:
    async with state.database.system() as session:
        tenant = await reactivate_tenant(session, await session.get(Tenant, tenant_id), reason=data.reason,
                                         acting=actor(staff))
    return _tenant_out(tenant)


@put("/tenants/{tenant_id:uuid}/branding", operation_id="staffSetBranding", responses=staff_problems())
async def set_branding(tenant_id: uuid.UUID, tenant: Tenant, data: BrandingIn, staff: Staff, state: State) -> TenantOut:
    try:
        colours = validate_colours(data.colours)  # the whole set: keys left out go back to the defaults
    except ValueError as error:
        raise ValidationFailed(FieldError("colours", str(error))) from None
    async with state.database.system() as session:
        tenant = await update_branding(session, tenant_id, colours=colours, acting=actor(staff))
    return _tenant_out(tenant)


@patch("/tenants/{tenant_id:uuid}/settings", operation_id="staffChangeTenantSettings", responses=staff_problems())
async def change_tenant_settings(tenant_id: uuid.UUID, tenant: Tenant, data: TenantSettingsPatch, staff: Staff,
                                 state: State) -> TenantOut:
    """Only the fields sent change (``null`` clears a limit); each change is its own audit entry."""
    changes = data.model_dump(exclude_unset=True, exclude={"reason"})
    async with state.database.system() as session:
        tenant = await change_settings(session, tenant_id, changes, acting=actor(staff), reason=data.reason)
    return _tenant_out(tenant)


@put("/tenants/{tenant_id:uuid}/custom-host", operation_id="staffRequestCustomHost", responses=staff_problems(409))
async def put_custom_host(tenant_id: uuid.UUID, tenant: Tenant, data: CustomHostIn, staff: Staff,
                          state: State) -> TenantOut:
    """The host waits for the TXT record named in ``host_verification``; the host in use keeps routing."""
    async with state.database.system() as session:
        tenant = await request_custom_host(session, tenant_id, data.host, settings=state.settings,
                                           acting=actor(staff), reason=data.reason)
    return _tenant_out(tenant)


@post("/tenants/{tenant_id:uuid}/custom-host/verify", operation_id="staffVerifyCustomHost", status_code=200,
      responses=staff_problems(409))
async def verify_host(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State) -> TenantOut:
    async with state.database.system() as session:
        tenant = await verify_custom_host(session, tenant_id, settings=state.settings, acting=actor(staff))
    return _tenant_out(tenant)


@post("/tenants/{tenant_id:uuid}/custom-host/remove", operation_id="staffRemoveCustomHost", status_code=200,
      responses=staff_problems())
async def remove_host(tenant_id: uuid.UUID, tenant: Tenant, data: Reason, staff: Staff, state: State) -> TenantOut:
    async with state.database.system() as session:
        tenant = await remove_custom_host(session, tenant_id, acting=actor(staff), reason=data.reason)
    return _tenant_out(tenant)


def _tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut.model_validate(tenant).model_copy(update={"host_verification": verification_record(tenant)})


# --- policies -------------------------------------------------------------------------------------

@get("/tenants/{tenant_id:uuid}/policy", operation_id="staffGetPolicy", responses=staff_problems())
async def get_policy(tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State) -> PolicyOut:
    async with state.database.provider(tenant_id) as session:
        version, config = await current_policy(session)
    return PolicyOut(version=version, config=config.model_dump(mode="json"))


@patch("/tenants/{tenant_id:uuid}/policy", operation_id="staffUpdatePolicy", responses=staff_problems())
async def patch_policy(
    tenant_id: uuid.UUID, tenant: Tenant, data: PolicyPatch, staff: Staff, state: State,
) -> PolicyOut:
    async with state.database.provider(tenant_id) as session:
        version, config = await update_policy(session, changes=data.changes, acting=actor(staff), reason=data.reason)
    return PolicyOut(version=version, config=config.model_dump(mode="json"))


@get("/tenants/{tenant_id:uuid}/policy/history", operation_id="staffPolicyHistory", responses=staff_problems())
async def get_policy_history(
    tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State,
) -> Page[PolicyVersionOut]:
    """Every saved version, newest first: a handful per company, so one page (``next_cursor`` is null)."""
    async with state.database.provider(tenant_id) as session:
        return Page[PolicyVersionOut](data=[PolicyVersionOut.model_validate(v) for v in await policy_history(session)],
                                      next_cursor=None)


# --- assignments ----------------------------------------------------------------------------------

@post("/tenants/{tenant_id:uuid}/assignments", operation_id="staffMobilise", status_code=201,
      responses=staff_problems())
async def mobilise(
    tenant_id: uuid.UUID, tenant: Tenant, data: AssignmentIn, staff: Staff, state: State,
) -> AssignmentOut:
    require_admin(staff)
    async with state.database.system() as session:
        member = await _staff_named(session, data.staff_email)
        assignment = await assign_staff(session, staff=member, tenant=tenant, acting=actor(staff), reason=data.reason)
    return AssignmentOut.model_validate(assignment)


@post("/tenants/{tenant_id:uuid}/assignments/demobilise", operation_id="staffDemobilise", status_code=200,
      responses=staff_problems())
async def demobilise(
    tenant_id: uuid.UUID, tenant: Tenant, data: AssignmentIn, staff: Staff, state: State,
) -> AssignmentOut:
    require_admin(staff)
    async with state.database.system() as session:
        member = await _staff_named(session, data.staff_email)
        receiver = await _staff_named(session, data.hand_over_to, "hand_over_to") if data.hand_over_to else None
        assignment = await unassign_staff(session, staff=member, tenant=tenant, acting=actor(staff),
                                          reason=data.reason, hand_over_to=receiver, work=OPEN_WORK)
    return AssignmentOut.model_validate(assignment)


@post("/tenants/{tenant_id:uuid}/assignments/handover", operation_id="staffHandOver", status_code=200,
      responses=staff_problems())
async def handover(
    tenant_id: uuid.UUID, tenant: Tenant, data: HandOverIn, staff: Staff, state: State,
) -> HandOverOut:
    """Move a person's open routine work in the tenant (the runs they follow up) to someone serving it."""
    require_admin(staff)
    async with state.database.system() as session:
        giver = await _staff_named(session, data.from_staff_email, "from_staff_email")
        receiver = await _staff_named(session, data.to_staff_email, "to_staff_email")
        moved = await hand_over(session, tenant=tenant, from_staff=giver, to_staff=receiver, acting=actor(staff),
                                reason=data.reason, work=OPEN_WORK)
    return HandOverOut(moved=moved)


async def _staff_named(session, email: str, field: str = "staff_email") -> Staff:
    try:
        return await get_staff_by_email(session, email)
    except LookupError:
        raise ValidationFailed(FieldError(field, "no staff member has this e-mail")) from None


# --- audit log ------------------------------------------------------------------------------------

@get("/audit", operation_id="staffAuditLog", responses=staff_problems())
async def audit_log(
    staff: Staff, state: State,
    tenant_id: uuid.UUID | None = None,
    actor: str | None = Parameter(default=None, max_length=254,  # noqa: F811 (the query parameter's name)
                                  description="Part of the actor's label (an e-mail, cli:<user>), any case."),
    action: str | None = Parameter(default=None, max_length=64, description="An action or its prefix (staff.)."),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Parameter(default=100, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[AuditOut]:
    """Newest first; operators see the entries of the tenants they are assigned to, provider admins every
    entry (provider-wide ones too). The staff console's audit page runs the same query."""
    filters = audit_filter(actor=actor, action=action, tenant=tenant_id, since=since, until=until)
    if tenant_id is not None:
        await tenant_for(state, staff, tenant_id)
    async with state.database.system() as session:
        scope = None if staff.role == StaffRole.ADMIN else await assigned_tenant_ids(session, staff)
        page = await search_audit(session, tenant_ids=scope, filters=filters, cursor=cursor, limit=limit)
        return Page[AuditOut](data=[AuditOut.model_validate(a) for a in page.entries], next_cursor=page.next_cursor)


staff_router = Router(
    "/staff",
    route_handlers=[create_token, list_tenants, create, get_tenant, suspend, reactivate, set_branding,
                    change_tenant_settings, put_custom_host, verify_host, remove_host, get_policy,
                    patch_policy, get_policy_history, mobilise, demobilise, handover, audit_log,
                    *deadletter_routes, *connector_routes, *routine_routes, *clock_routes],
    middleware=[StaffTokenMiddleware],
    dependencies={"staff": Provide(provide_staff, sync_to_thread=False), "tenant": Provide(provide_tenant)},
    security=[{"staffToken": []}],
    tags=["staff"],
)

