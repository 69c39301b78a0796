"""The staff console's live stream for one tenant: ``GET /staff/tenants/<id>/live`` pushes that tenant's
routine run progress (server-sent events), so a run's page refreshes its progress block when the run moves
instead of polling every two seconds (it still polls when the stream fails).

The same door as every console page: a staff member who may not act on the tenant (an operator not
mobilised on it) gets the 404 of a missing tenant, and no session is a 401, both before anything streams.
Like the portal's stream (web/portal/live.py) it holds no database session and ends at shutdown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Stream

from backoffice.platform.db.session import NotFound
from backoffice.platform.live import Bus, messages
from backoffice.tenants.notifications.live import RUN
from backoffice.web.console.door import console_tenant
from backoffice.web.console.session import StaffLoginRequired, provide_staff
from backoffice.web.portal.live import HEARTBEAT, RETRY_MS, sse_frame


def _problem(status: int, title: str) -> Response:
    return Response({"title": title, "status": status}, status_code=status, media_type="application/problem+json",
                    headers={"cache-control": "no-store"})


@get("/tenants/{tenant_id:uuid}/live", name="console:tenant_live")
async def tenant_live(request: Request, tenant_id: uuid.UUID, state: State) -> Response:
    try:
        staff = await provide_staff(request, state)
        tenant = await console_tenant(state.database, staff, tenant_id)
    except StaffLoginRequired:
        return _problem(401, "sign-in required")
    except NotFound:
        return _problem(404, "not found")
    bus: Bus = state.live_bus
    stop: asyncio.Event = state.live_stop
    subscription = bus.hub.subscribe(tenant.id)

    async def frames() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n"
            async for message in messages(subscription, heartbeat=HEARTBEAT, stop=stop):
                if message is None:
                    yield ": keep-alive\n\n"
                elif message.get("type") == RUN:
                    yield sse_frame(message)
        finally:
            subscription.close()

    return Stream(frames(), media_type="text/event-stream",
                  headers={"cache-control": "no-store", "x-accel-buffering": "no"})


ROUTES = [tenant_live]
