"""Event intake through the API: single (202, accepted or duplicate) and batch (a result per item)."""

from __future__ import annotations

from sqlalchemy import func, select

from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.events.models import Event
from tests.web.api.conftest import bearer, event_data


def _event(n: int, **extra) -> dict:
    return {"type": "payment.cleared", "source": "erp", "external_id": f"pay-{n}",
            "customer": {"tax_id": "529.982.247-25"}, "data": event_data(n)} | extra


async def test_single_event_is_accepted_then_duplicate(client, database, tenants, api_keys):
    h = bearer(api_keys.a)
    first = await client.post("/api/v1/events", headers=h, json=_event(1))
    again = await client.post("/api/v1/events", headers=h, json=_event(1))
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (again.status_code, again.json()) == (202, {"event_id": first.json()["event_id"], "status": "duplicate"})
    got = await client.get(f"/api/v1/events/{first.json()['event_id']}", headers=h)
    assert got.status_code == 200 and got.json()["external_id"] == "pay-1"
    # The same external id is another tenant's own event.
    theirs = await client.post("/api/v1/events", headers=bearer(api_keys.b), json=_event(1))
    assert theirs.json()["status"] == "accepted" and theirs.json()["event_id"] != first.json()["event_id"]
    bad = await client.post("/api/v1/events", headers=h, json=_event(2, type="payment.teleported"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "type"


async def test_batch_stores_valid_items_and_reports_each(client, database, tenants, api_keys):
    h = bearer(api_keys.a)
    await client.post("/api/v1/events", headers=h, json=_event(0))
    broken = _event(3)
    broken["data"]["payment"]["amount_cents"] = "lots"
    items = [_event(0), _event(1), _event(1), broken, {"type": "payment.cleared"}, _event(2)]
    response = await client.post("/api/v1/events/batch", headers=h, json={"events": items})
    assert response.status_code == 207
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["duplicate", "accepted", "duplicate", "invalid", "invalid",
                                                      "accepted"]
    assert (body["accepted"], body["duplicate"], body["invalid"]) == (2, 2, 2)
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert body["results"][1]["event_id"] == body["results"][2]["event_id"]
    assert {e["field"] for e in body["results"][3]["errors"]} == {"data.payment.amount_cents"}
    assert {"source", "external_id"} <= {e["field"] for e in body["results"][4]["errors"]}
    async with database.tenant(tenants.a.id) as session:
        assert (await session.execute(select(func.count()).select_from(Event))).scalar_one() == 3
        assert (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one() == 3
    async with database.tenant(tenants.b.id) as session:
        assert (await session.execute(select(func.count()).select_from(Event))).scalar_one() == 0
    listed = await client.get("/api/v1/events", headers=h, params={"type": "payment.cleared", "limit": 2})
    assert len(listed.json()["data"]) == 2 and listed.json()["next_cursor"]
    assert (await client.get("/api/v1/events", headers=bearer(api_keys.b))).json()["data"] == []


async def test_batch_size_is_limited(client, api_keys):
    response = await client.post("/api/v1/events/batch", headers=bearer(api_keys.a),
                                 json={"events": [_event(i) for i in range(1001)]})
    assert response.status_code == 400 and "events" in response.text
