"""/api/v1/customers and each customer's timeline."""

from __future__ import annotations

import uuid

from litestar import Router, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import get_owned
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.customers.service import create_customer, search_customers, update_customer
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.tenants.timeline.queries import customer_timeline_query
from backoffice.web.api.auth import ApiPrincipal
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import CustomerIn, CustomerOut, CustomerPatch, Page, TimelineEntryOut

SORTS = {"created_at": Customer.created_at, "name": Customer.name}


@endpoint(post, "/", scope="customers:write", operation_id="createCustomer", status_code=201)
async def create(data: CustomerIn, session: AsyncSession, principal: ApiPrincipal) -> CustomerOut:
    customer = await create_customer(session, **data.model_dump(), acting=principal.actor())
    return CustomerOut.model_validate(customer)


@endpoint(get, "/", scope="customers:read", operation_id="listCustomers")
async def list_(
    session: AsyncSession,
    q: str | None = Parameter(default=None, max_length=200, description="Name, e-mail or CPF/CNPJ fragment."),
    lifecycle: Lifecycle | None = None,
    sort: str = Parameter(default="-created_at", description="created_at, name; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[CustomerOut]:
    page = await paginate(session, search_customers(q, lifecycle), Customer, sorts=SORTS, sort=sort, limit=limit,
                          cursor=cursor)
    return Page[CustomerOut](data=[CustomerOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/{customer_id:uuid}", scope="customers:read", operation_id="getCustomer", errors=(404,))
async def get_one(customer_id: uuid.UUID, session: AsyncSession) -> CustomerOut:
    return CustomerOut.model_validate(await get_owned(session, Customer, customer_id))


@endpoint(patch, "/{customer_id:uuid}", scope="customers:write", operation_id="updateCustomer", errors=(404,))
async def update(customer_id: uuid.UUID, data: CustomerPatch, session: AsyncSession,
                 principal: ApiPrincipal) -> CustomerOut:
    changes = data.model_dump(exclude_unset=True)
    customer = await update_customer(session, customer_id, changes, acting=principal.actor())
    return CustomerOut.model_validate(customer)


@endpoint(get, "/{customer_id:uuid}/timeline", scope="timelines:read", operation_id="getCustomerTimeline",
          errors=(404,))
async def timeline(
    customer_id: uuid.UUID,
    session: AsyncSession,
    sort: str = Parameter(default="-at", description="at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[TimelineEntryOut]:
    await get_owned(session, Customer, customer_id)
    query = customer_timeline_query(customer_id)
    page = await paginate(session, query, TimelineEntry, sorts={"at": TimelineEntry.at}, sort=sort, limit=limit,
                          cursor=cursor)
    return Page[TimelineEntryOut](data=[TimelineEntryOut.model_validate(e) for e in page.items],
                                  next_cursor=page.next_cursor)


router = Router("/customers", route_handlers=[create, list_, get_one, update, timeline], tags=["customers"])
