"""Staff console: a customer's agreements (acordos) with the form that proposes one, and the reconciliation
findings a lost webhook left, each with "repair" and a "repair all"
(``/staff/tenants/<tenant_id>/customers/<id>/agreements``, ``/staff/tenants/<tenant_id>/reconciliation``).

Reads and writes go through ``Database.provider(tenant_id)`` behind the console's door (a tenant this staff
member does not serve is a 404); the services audit with the staff member as actor."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect

from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.agreements import queries, service
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.policies.templates import format_date
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines import repairs
from backoffice.web.console.render import console_locale, render
from backoffice.web.console.session import StaffUser
from backoffice.web.console.tenant_work import Form, _page_of
from backoffice.web.portal.agreements import form_values
from backoffice.web.portal.render import lifecycle_badges

BASE = "/staff/tenants/{tenant_id}"


def _day(request: Request, tenant: Tenant):
    locale = console_locale(request)
    return lambda value: format_date(value, tenant.timezone, locale)


async def _agreements_page(request: Request, state: State, tenant: Tenant, customer_id: uuid.UUID, *,
                           status_code: int = 200, **extra: Any) -> Response:
    async with state.database.provider(tenant.id) as session:
        customer = await get_owned(session, Customer, customer_id)
        agreements = await queries.customer_agreements(session, customer.id)
        charges = await queries.renegotiable_charges(session, customer.id)
    response = _page_of(request, tenant, "console/tenant/agreements.html", "customers", customer=customer,
                        agreements=agreements, charges=charges, day=_day(request, tenant),
                        action=f"{BASE.format(tenant_id=tenant.id)}/customers/{customer.id}/agreements",
                        badges=lifecycle_badges(console_locale(request)),
                        **{"errors": None, "form": None, "failure": None, **extra})
    response.status_code = status_code
    return response


@get("/tenants/{tenant_id:uuid}/customers/{customer_id:uuid}/agreements", name="console:tenant_agreements")
async def agreements_page(request: Request, tenant_id: uuid.UUID, customer_id: uuid.UUID, staff: StaffUser,
                          console_tenant: Tenant, state: State) -> Response:
    return await _agreements_page(request, state, console_tenant, customer_id)


@post("/tenants/{tenant_id:uuid}/customers/{customer_id:uuid}/agreements", name="console:tenant_agreement_propose")
async def propose(request: Request, tenant_id: uuid.UUID, customer_id: uuid.UUID, staff: StaffUser,
                  console_tenant: Tenant, state: State, data: Form) -> Response:
    form = form_values(data)
    try:
        async with state.database.provider(tenant_id) as session:
            await service.propose_agreement(session, console_tenant, customer_id, charge_ids=form["charges"],
                                            instalments=form["instalments"], first_due_date=form["first_due_date"],
                                            note=form["note"], acting=staff.actor)
    except ValidationFailed as error:
        return await _agreements_page(request, state, console_tenant, customer_id, status_code=error.status,
                                      errors=error.errors, form=form)
    except service.GatewayRefused as error:
        return await _agreements_page(request, state, console_tenant, customer_id,
                                      status_code=503 if error.retryable else 502, failure=str(error), form=form)
    return Redirect(f"{BASE.format(tenant_id=tenant_id)}/customers/{customer_id}/agreements#agreements",
                    status_code=303)


# --- reconciliation repairs -------------------------------------------------------------------------------

async def _repairs_page(request: Request, state: State, tenant: Tenant, *, status_code: int = 200,
                        failures: dict[str, str] | None = None) -> Response:
    async with state.database.provider(tenant.id) as session:
        findings = await repairs.repairable_findings(session)
    response = _page_of(request, tenant, "console/tenant/repairs.html", "routines", findings=findings,
                        open=sum(1 for _, repair in findings if repair is None), failures=failures or {})
    response.status_code = status_code
    return response


@get("/tenants/{tenant_id:uuid}/reconciliation", name="console:tenant_repairs")
async def repairs_page(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                       state: State) -> Response:
    return await _repairs_page(request, state, console_tenant)


@post("/tenants/{tenant_id:uuid}/reconciliation/findings/{finding_id:uuid}/repair", name="console:tenant_repair")
async def repair_one(request: Request, tenant_id: uuid.UUID, finding_id: uuid.UUID, staff: StaffUser,
                     console_tenant: Tenant, state: State) -> Response:
    try:
        async with state.database.provider(tenant_id) as session:
            await repairs.repair_finding(session, finding_id, acting=staff.actor)
    except ValidationFailed as error:
        return await _repairs_page(request, state, console_tenant, status_code=error.status,
                                   failures={str(finding_id): "; ".join(e.message for e in error.errors)})
    except repairs.RepairFailed as error:
        return await _repairs_page(request, state, console_tenant, status_code=503 if error.retryable else 502,
                                   failures={str(finding_id): str(error)})
    return Redirect(f"{BASE.format(tenant_id=tenant_id)}/reconciliation#finding-{finding_id}", status_code=303)


@post("/tenants/{tenant_id:uuid}/reconciliation/repair-all", name="console:tenant_repair_all")
async def repair_every(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                       state: State) -> Response:
    async with state.database.provider(tenant_id) as session:
        _, failed = await repairs.repair_all(session, acting=staff.actor)
    if failed:
        return await _repairs_page(request, state, console_tenant, failures=failed)
    return Redirect(f"{BASE.format(tenant_id=tenant_id)}/reconciliation", status_code=303)


ROUTES = [agreements_page, propose, repairs_page, repair_one, repair_every]

__all__ = ["ROUTES"]
