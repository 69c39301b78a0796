"""A customer's agreements (acordos) in the portal: their state, and the form that proposes one
(``/<slug>/customers/<id>/agreements``). Thin: parse, call ``tenants/agreements``, render; a refusal is the
page again with a 4xx naming the field, a gateway refusal a 502 with its words."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import NotFound, get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.agreements import queries, service
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.notifications import service as notifications
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.render import base_path, lifecycle_badges, page, pick_locale


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(Customer, value) from None


def form_values(data: dict[str, Any]) -> dict[str, Any]:
    """The form as submitted (checkbox lists, single values), to call the service and to show it again."""
    def one(name: str) -> str:
        value = data.get(name)
        value = value[-1] if isinstance(value, list) and value else value
        return str(value or "").strip()[:500]

    charges = data.get("charges") or []
    charges = [str(c) for c in (charges if isinstance(charges, list) else [charges])][:100]
    return {"charges": charges, "instalments": one("instalments"), "first_due_date": one("first_due_date"),
            "note": one("note")}


async def _page(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, customer_id: uuid.UUID, *,
                status_code: int = 200, **extra: Any) -> Response:
    customer = await get_owned(db, Customer, customer_id)
    base = base_path(request, tenant)
    return page(request, tenant, "portal/agreements.html", status_code=status_code, user=user, customer=customer,
                agreements=await queries.customer_agreements(db, customer.id),
                charges=await queries.renegotiable_charges(db, customer.id),
                action=f"{base}/customers/{customer.id}/agreements", section="customers",
                badges=lifecycle_badges(pick_locale(request, tenant)),
                unread=await notifications.unread_count(db, user.id), **{"errors": None, "form": None, "failure": None, **extra})


@get("/customers/{customer_id:str}/agreements", name="portal:customer_agreements")
async def agreements_page(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession,
                          customer_id: str) -> Response:
    return await _page(request, tenant, user, db, _uuid(customer_id))


@post("/customers/{customer_id:str}/agreements", name="portal:customer_agreement_propose")
async def propose(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, customer_id: str,
                  data: Form) -> Response:
    ident = _uuid(customer_id)
    form = form_values(data)
    try:
        await service.propose_agreement(db, tenant, ident, charge_ids=form["charges"], instalments=form["instalments"],
                                        first_due_date=form["first_due_date"], note=form["note"], acting=user.actor)
    except ValidationFailed as error:
        return await _page(request, tenant, user, db, ident, status_code=error.status, errors=error.errors, form=form)
    except service.GatewayRefused as error:
        return await _page(request, tenant, user, db, ident, status_code=503 if error.retryable else 502,
                           failure=str(error), form=form)
    return Redirect(f"{base_path(request, tenant)}/customers/{ident}/agreements#agreements", status_code=303)


AGREEMENT_HANDLERS = [agreements_page, propose]
