"""/api/v1/contracts and /api/v1/charges: read-only here, since they come from the billing connectors'
events (a charge created in the API would not exist at the gateway that collects it)."""

from __future__ import annotations

import uuid

from litestar import Router, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import get_owned
from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus
from backoffice.tenants.billing.queries import charges_query, contracts_query
from backoffice.web.api.common import endpoint
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import ChargeOut, ContractOut, Page


@endpoint(get, "/contracts", scope="contracts:read", operation_id="listContracts")
async def list_contracts(
    session: AsyncSession,
    status: ContractStatus | None = None,
    customer_id: uuid.UUID | None = None,
    sort: str = Parameter(default="-created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[ContractOut]:
    page = await paginate(session, contracts_query(status=status, customer_id=customer_id), Contract, sorts={"created_at": Contract.created_at}, sort=sort,
                          limit=limit, cursor=cursor)
    return Page[ContractOut](data=[ContractOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/contracts/{contract_id:uuid}", scope="contracts:read", operation_id="getContract", errors=(404,))
async def get_contract(contract_id: uuid.UUID, session: AsyncSession) -> ContractOut:
    return ContractOut.model_validate(await get_owned(session, Contract, contract_id))


@endpoint(get, "/charges", scope="charges:read", operation_id="listCharges")
async def list_charges(
    session: AsyncSession,
    status: ChargeStatus | None = None,
    customer_id: uuid.UUID | None = None,
    sort: str = Parameter(default="-created_at", description="created_at; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[ChargeOut]:
    page = await paginate(session, charges_query(status=status, customer_id=customer_id), Charge, sorts={"created_at": Charge.created_at},
                          sort=sort, limit=limit, cursor=cursor)
    return Page[ChargeOut](data=[ChargeOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@endpoint(get, "/charges/{charge_id:uuid}", scope="charges:read", operation_id="getCharge", errors=(404,))
async def get_charge(charge_id: uuid.UUID, session: AsyncSession) -> ChargeOut:
    return ChargeOut.model_validate(await get_owned(session, Charge, charge_id))


router = Router("/", route_handlers=[list_contracts, get_contract, list_charges, get_charge], tags=["billing"])
