"""A client generated from the served OpenAPI document (openapi-python-client) runs a full scenario:
create a customer, post the event that starts them, read the notification the spine produced."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

from litestar.testing import AsyncTestClient

from backoffice.web.app import create_app
from tests.tenants.conftest import spine  # noqa: F401  (the running pipeline fixture)
from tests.web.api.conftest import make_key

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))


async def _generate(document: str, into: Path) -> None:
    (into / "openapi.json").write_text(document)
    process = await asyncio.create_subprocess_exec(
        GENERATOR, "generate", "--path", str(into / "openapi.json"), "--meta", "none",
        "--output-path", str(into / "bo_client"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0 and (into / "bo_client" / "client.py").exists(), out.decode()
    assert "Cannot parse" not in out.decode(), out.decode()  # every operation and response made it in


async def test_generated_client_runs_a_full_scenario(spine, database, tenants, tmp_path):  # noqa: F811
    key = await make_key(database, tenants.a.id, scopes=["customers:write", "events:write", "notifications:write"])
    async with AsyncTestClient(app=create_app(database.settings)) as http:
        await _generate((await http.get("/api/v1/schema/openapi.json")).text, tmp_path)
        sys.path.insert(0, str(tmp_path))
        try:
            await _scenario(http, key, tenants, spine)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [n for n in sys.modules if n == "bo_client" or n.startswith("bo_client.")]:
                del sys.modules[name]  # the next run imports its own generation


async def _scenario(http, key: str, tenants, spine) -> None:  # noqa: F811
    client_module = importlib.import_module("bo_client")
    create_customer = importlib.import_module("bo_client.api.customers.create_customer")
    create_event = importlib.import_module("bo_client.api.events.create_event")
    list_notifications = importlib.import_module("bo_client.api.inbox.list_notifications")
    models = importlib.import_module("bo_client.models")
    http.headers["Authorization"] = f"Bearer {key}"
    api = client_module.AuthenticatedClient(base_url=str(http.base_url), token=key,
                                            raise_on_unexpected_status=True)
    api.set_async_httpx_client(http)

    customer = await create_customer.asyncio(client=api, body=models.CustomerIn(
        name="Padaria Central", tax_id="11.444.777/0001-61", account_manager_id=tenants.a.admin_id))
    assert isinstance(customer, models.CustomerOut) and customer.lifecycle == "onboarding"

    event_body = models.CreateEventBody.from_dict({
        "type": "payment.cleared", "source": "erp", "external_id": "pay-1",
        "customer": {"tax_id": "11444777000161"},
        "data": {"charge": {"external_id": "ch-1", "amount_cents": 19900, "due_date": "2026-11-02"},
                 "payment": {"amount_cents": 19900, "paid_at": "2026-11-02T14:00:00Z"},
                 "plan": {"code": "pro", "name": "Pro", "price_cents": 19900}}})
    accepted = await create_event.asyncio(client=api, body=event_body)
    assert accepted.status == "accepted"
    await spine.settle()

    page = await list_notifications.asyncio(client=api, customer_id=customer.id, unread=True)
    assert [n.kind for n in page.data] == ["customer.started"]
    assert "Padaria Central" in page.data[0].body
