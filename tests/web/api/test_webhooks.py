"""Webhook endpoints through the API: create (secret shown once), update, rotate, test send, delivery log,
replay; the other tenant sees none of it."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from backoffice.web.app import create_app
from tests.web.api.conftest import bearer


async def test_endpoint_lifecycle_and_isolation(database, tenants, api_keys):
    settings = database.settings.model_copy(update={"allow_private_targets": True})
    async with AsyncTestClient(app=create_app(settings)) as client:
        h = bearer(api_keys.a)
        created = await client.post("/api/v1/webhooks", headers=h, json={
            "url": "http://127.0.0.1:9/hooks", "event_types": ["payment.cleared"], "description": "ERP"})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["event_types"] == ["payment.cleared"]
        listed = (await client.get("/api/v1/webhooks", headers=h)).json()
        assert listed["next_cursor"] is None
        listed = listed["data"]
        assert [e["id"] for e in listed] == [hook["id"]] and "secret" not in listed[0]
        patched = await client.patch(f"/api/v1/webhooks/{hook['id']}", headers=h, json={"event_types": []})
        assert patched.status_code == 200 and patched.json()["event_types"] == []
        rotated = await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=h,
                                    json={"overlap_hours": 1})
        assert rotated.status_code == 201 and rotated.json()["secret"] != hook["secret"]
        assert len((await client.get(f"/api/v1/webhooks/{hook['id']}", headers=h)).json()["secrets"]) == 2
        sent = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=h)
        assert sent.status_code == 202 and sent.json()["event_type"] == "webhook.test"
        log = (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=h)).json()
        assert [d["id"] for d in log["data"]] == [sent.json()["id"]]
        replayed = await client.post(f"/api/v1/webhooks/deliveries/{sent.json()['id']}/replay", headers=h)
        assert replayed.status_code == 202
        bad = await client.post("/api/v1/webhooks", headers=h, json={"url": "ftp://example.com"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "url"

        theirs = bearer(api_keys.b)
        assert (await client.get("/api/v1/webhooks", headers=theirs)).json() == {"data": [], "next_cursor": None}
        assert (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=theirs)).status_code == 404
        assert (await client.post(f"/api/v1/webhooks/deliveries/{sent.json()['id']}/replay",
                                  headers=theirs)).status_code == 404
