"""/api/v1/staff/tenants/{id}/connectors: provider staff configure each tenant's connector instances
(payment gateway, fiscal issuer, e-signature, the tenant's platform, e-mail, chat). Secrets go in once and
come back redacted; every change is an audited action by the staff member. A provider connector's URLs
stay on the provider's documented hosts; only a provider admin may allow one more (``host_override``)."""

from __future__ import annotations

import uuid

from litestar import get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter

from backoffice.connectors import service
from backoffice.connectors.checks import check_connection
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.kinds import kinds, secret_fields
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.registry.models import Tenant
from backoffice.web.api.common import problems
from backoffice.web.api.pagination import DEFAULT_LIMIT, paginate
from backoffice.web.api.schemas import Page
from backoffice.web.api.staff.auth import actor, require_admin, staff_problems
from backoffice.web.api.staff.schemas import (
    ConnectionCheckOut, ConnectorIn, ConnectorKindOut, ConnectorOut, ConnectorPatch,
)



def _out(instance) -> ConnectorOut:
    return ConnectorOut.model_validate(service.describe(instance))


@get("/connector-kinds", operation_id="staffListConnectorKinds", responses=problems(401))
async def list_kinds(staff: Staff) -> Page[ConnectorKindOut]:
    """The connector kinds the platform has: a fixed catalogue, so one page (``next_cursor`` is null)."""
    return Page[ConnectorKindOut](data=[
        ConnectorKindOut(name=kind.name, title=kind.title, inbound=bool(getattr(kind, "inbound", False)),
                         channel=getattr(kind.channel, "value", None),
                         secret_fields=sorted(secret_fields(kind.config_model)), hosts=sorted(kind.hosts))
        for kind in sorted(kinds().values(), key=lambda k: k.name)
    ], next_cursor=None)


@get("/tenants/{tenant_id:uuid}/connectors", operation_id="staffListConnectors", responses=staff_problems())
async def list_connectors(
    tenant_id: uuid.UUID, tenant: Tenant, staff: Staff, state: State,
    sort: str = Parameter(default="created_at", description="created_at, name; prefix - for descending."),
    limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=200),
    cursor: str | None = Parameter(default=None, max_length=500),
) -> Page[ConnectorOut]:
    async with state.database.provider(tenant.id) as session:
        page = await paginate(session, service.instances_query(), ConnectorInstance,
                              sorts={"created_at": ConnectorInstance.created_at, "name": ConnectorInstance.name},
                              sort=sort, limit=limit, cursor=cursor)
        return Page[ConnectorOut](data=[_out(instance) for instance in page.items], next_cursor=page.next_cursor)


@post("/tenants/{tenant_id:uuid}/connectors", operation_id="staffCreateConnector", status_code=201,
      responses=staff_problems(409))
async def create_connector(tenant_id: uuid.UUID, tenant: Tenant, data: ConnectorIn, staff: Staff,
                           state: State) -> ConnectorOut:
    async with state.database.provider(tenant.id) as session:
        if data.host_override is not None:
            require_admin(staff)  # an operator keeps to the provider's documented hosts
        instance = await service.create_instance(session, kind=data.kind, name=data.name, config=data.config,
                                                 enabled=data.enabled, acting=actor(staff), reason=data.reason,
                                                 settings=state.settings, host_override=data.host_override or None)
        return _out(instance)


@get("/tenants/{tenant_id:uuid}/connectors/{connector_id:uuid}", operation_id="staffGetConnector",
     responses=staff_problems())
async def get_connector(tenant_id: uuid.UUID, connector_id: uuid.UUID, tenant: Tenant, staff: Staff,
                        state: State) -> ConnectorOut:
    async with state.database.provider(tenant.id) as session:
        return _out(await service.get_instance(session, connector_id))


@patch("/tenants/{tenant_id:uuid}/connectors/{connector_id:uuid}", operation_id="staffUpdateConnector",
       responses=staff_problems(409))
async def update_connector(tenant_id: uuid.UUID, connector_id: uuid.UUID, tenant: Tenant, data: ConnectorPatch,
                           staff: Staff, state: State) -> ConnectorOut:
    async with state.database.provider(tenant.id) as session:
        instance = await service.get_instance(session, connector_id)
        if "host_override" in data.model_fields_set:
            require_admin(staff)  # an operator keeps to the provider's documented hosts
            instance = await service.set_host_override(session, connector_id, data.host_override or None,
                                                       acting=actor(staff), settings=state.settings, reason=data.reason)
        if data.name is not None or data.config is not None:
            instance = await service.update_instance(session, connector_id, acting=actor(staff), config=data.config,
                                                     name=data.name, settings=state.settings, reason=data.reason)
        if data.enabled is not None and data.enabled != instance.enabled:
            instance = await service.set_enabled(session, connector_id, data.enabled, acting=actor(staff),
                                                 reason=data.reason)
        return _out(instance)


@post("/tenants/{tenant_id:uuid}/connectors/{connector_id:uuid}/test", operation_id="staffTestConnector",
      status_code=200, responses=staff_problems())
async def test_connector(tenant_id: uuid.UUID, connector_id: uuid.UUID, tenant: Tenant, staff: Staff,
                         state: State) -> ConnectionCheckOut:
    """Call the provider (a cheap documented read) and answer what it said; a refusal is ``ok: false``."""
    async with state.database.provider(tenant.id) as session:
        result = await check_connection(session, connector_id, acting=actor(staff), settings=state.settings,
                                        http_options=getattr(state, "connector_http_options", None))
    return ConnectionCheckOut(ok=result.ok, status=result.status, message=result.message)


connector_routes = [list_kinds, list_connectors, create_connector, get_connector, update_connector, test_connector]
