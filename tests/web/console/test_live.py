"""The staff console's live stream of a tenant's run progress (web/console/live.py): through the console's
door (an operator not mobilised on the tenant gets a 404, no session a 401), and only that tenant's runs."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient, Client

from backoffice.platform import live as bus_module
from backoffice.tenants.notifications.live import announce_run


async def test_an_operator_follows_runs_of_the_tenant_they_serve_only(database, tenants, operator_client):
    a, b = tenants.a, tenants.b
    client = operator_client.client
    assert (await client.get(f"/staff/tenants/{b.id}/live")).status_code == 404  # not mobilised on B
    hub = client.app.state.live_bus.hub
    # The test client's transport blocks its caller until the response ends: the stream runs in a thread.
    sync = Client(transport=client._transport, base_url=str(client.base_url), cookies=client.cookies)
    reading = asyncio.create_task(asyncio.to_thread(
        sync.get, f"/staff/tenants/{a.id}/live", headers={"accept": "text/event-stream"}))
    for _ in range(100):
        if hub.connections():
            break
        await asyncio.sleep(0.02)
    assert hub.connections() == 1
    run_a, run_b = uuid.uuid4(), uuid.uuid4()
    for tenant, run in ((a, run_a), (b, run_b)):
        async with database.tenant(tenant.id) as session:
            announce_run(session, tenant.id, run, settled=1, total=2, finished=False)
    await bus_module.drain()
    await asyncio.sleep(0.1)
    hub.close_all()  # what shutdown does: the stream ends, so the test client gets the whole body
    answer = await asyncio.wait_for(reading, 5)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert "event: run" in answer.text and str(run_a) in answer.text and str(run_b) not in answer.text


async def test_no_console_session_is_a_401(database, tenants, operator_client):
    anonymous = AsyncClient(transport=operator_client.client._transport, base_url="http://testserver.local")
    answer = await anonymous.get(f"/staff/tenants/{tenants.a.id}/live", headers={"accept": "text/event-stream"})
    assert answer.status_code == 401
