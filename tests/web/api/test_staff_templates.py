"""Message templates saved through the staff policy route: a hostile one is refused fast, naming its field,
and checking a slow one never stalls the other requests the process is serving."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from contextlib import asynccontextmanager

import httpx
import uvicorn
from backoffice.web.entry.runtime import server_options
from backoffice.tenants.policies.sandbox import RENDER_SECONDS
from backoffice.web.app import create_app

from tests.web.api.test_staff import _token, staff  # noqa: F401 (the fixture)

HOSTILE = "{{ (((9**99)**99)**99)**99 % 7 }}"
# Within every per-step limit (each filter call is one bounded step), but a thousand of them: without the
# render's time cap this runs for seconds.
SLOW = ("{% set s = 'ab ' * 3000 %}{% set t = [s,s,s,s,s,s,s,s,s,s,s]|join %}"
        "{% for c in s[:1000] %}{{ t|wordcount }}{% endfor %}")


def templates_change(body: str) -> dict:
    return {"changes": {"templates": {"customer.started": {"pt-BR": {"title": "Novo cliente", "body": body}}}},
            "reason": "wording"}


async def test_a_hostile_template_is_refused_fast_naming_the_field(client, tenants, staff):  # noqa: F811
    admin = await _token(client, "admin@provider.example")
    path = f"/api/v1/staff/tenants/{tenants.a.id}/policy"
    started = time.monotonic()
    response = await client.patch(path, headers=admin, json=templates_change(HOSTILE))
    # Seconds, not the minutes that one `**` ran for. The check's own cost is bounded tightly, in this thread's
    # CPU, by tests/tenants/policies/test_templates.py; a wall-clock second here failed once on a loaded machine
    # (1.06 s for the whole request: the token, the policy read and the check of every template).
    assert time.monotonic() - started < 5.0
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "templates.customer.started.pt-BR.body"
    assert "exponent too large" in error["message"]
    assert (await client.get(path, headers=admin)).json()["version"] == 0  # nothing saved


async def test_checking_a_slow_template_does_not_block_other_requests(database, tenants, staff):  # noqa: F811
    # A real server in its own thread and loop: Litestar's test client serves one request at a time.
    async with served(database.settings) as client:
        admin = await _token(client, "admin@provider.example")
        path = f"/api/v1/staff/tenants/{tenants.a.id}/policy"
        started = time.monotonic()
        patch = asyncio.create_task(client.patch(path, headers=admin, json=templates_change(SLOW)))
        latencies = []
        while not patch.done() and time.monotonic() - started < 60:
            await asyncio.sleep(0.02)
            asked = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.monotonic() - asked)
        response = await patch
        took = time.monotonic() - started

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "templates.customer.started.pt-BR.body" and "takes longer than" in error["message"]
    assert took < RENDER_SECONDS + 1.5  # the render's time cap stopped it
    # The server's event loop kept answering while the template was checked (in a worker thread).
    assert len(latencies) >= 5 and max(latencies) < 0.25, latencies


@asynccontextmanager
async def served(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port, "log_level": "WARNING"})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), lifespan="on", **server_options(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the server did not start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
