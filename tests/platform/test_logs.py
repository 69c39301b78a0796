"""Structured logs: a scenario (API intake with a key, a webhook delivered with its signing secret, the
platform connector's secret, an SMTP connector whose password is tried against a closed port) logged as JSON at
DEBUG; every line of a request names its request and tenant, every line of a job its job and tenant, and none
of the secrets the scenario created appears anywhere in the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from litestar.testing import AsyncTestClient

from backoffice.connectors.checks import check_connection
from backoffice.connectors.platform_http import KIND as PLATFORM, PlatformPort
from backoffice.platform import logs
from backoffice.platform.security.standard_webhooks import new_secret
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.webhooks import service as webhooks
from backoffice.tenants.webhooks.port import WebhookPort
from backoffice.web.app import create_app
from tests.connectors.conftest import ACTOR as CONNECTOR_ACTOR, connector_settings, make_instance
from tests.outages import free_port
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the spine fixture)
from tests.tenants.webhooks.conftest import ACTOR, receiver  # noqa: F401  (the receiver fixture)
from tests.web.api.conftest import bearer, make_key


@pytest.fixture
def captured():
    """The platform's logging configuration (JSON, DEBUG) writing into a buffer; the previous one restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure(level="DEBUG", json=True, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_lines_carry_their_context_and_no_secret(spine, receiver, captured):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    database = spine.database
    settings = database.settings.model_copy(update={"allow_private_targets": True})
    ports = {Channel.WEBHOOK: WebhookPort(settings=settings, total_timeout=5.0),
             Channel.PLATFORM: PlatformPort(settings=settings, http_options={"timeout": 5.0, "retries": 0})}
    previous = {channel: set_port(channel, port) for channel, port in ports.items()}
    api_key = await make_key(database, a.id)
    platform_secret = new_secret()
    smtp_password = "s3nha-do-smtp-" + new_secret()[-12:]
    try:
        async with database.tenant(a.id) as session:
            _, webhook_secret = await webhooks.create_endpoint(
                session, url=receiver.url("/alfa"), event_types=["payment.overdue"], acting=ACTOR, settings=settings)
        receiver.secrets["/alfa"] = [webhook_secret]
        receiver.secrets["/platform"] = [platform_secret]
        await make_instance(database, a.id, PLATFORM, {"url": receiver.url("/platform"), "secret": platform_secret})
        smtp = await make_instance(database, a.id, "smtp", {
            "host": "127.0.0.1", "port": free_port(), "security": "none", "username": "financeiro",
            "password": smtp_password, "sender_address": "financeiro@alfa.example", "timeout_seconds": 2})
        async with database.provider(a.id) as session:
            checked = await check_connection(session, smtp, acting=CONNECTOR_ACTOR,
                                             settings=connector_settings(database))
        assert not checked.ok  # nothing listens there: the failure is logged, the password is not
        customer_id = await new_customer(database, a.id, a.admin_id, name="Oficina Bom Motor",
                                         tax_id="390.533.447-05", lifecycle=Lifecycle.ACTIVE)
        async with AsyncTestClient(app=create_app(database.settings)) as client:
            answer = await client.post("/api/v1/events", headers=bearer(api_key) | {"X-Request-ID": "req-abc.1"},
                                       json={"type": "payment.overdue", "source": "asaas", "external_id": "evt_od",
                                             "customer": {"id": str(customer_id)},
                                             "data": {"charge": {"external_id": "pay_2", "amount_cents": 19990,
                                                                 "due_date": "2026-11-01"}}})
            refused = await client.get("/api/v1/events", headers={"Authorization": "Bearer bo_live_not-a-key"})
        assert answer.status_code == 202 and answer.headers["x-request-id"] == "req-abc.1"
        assert refused.status_code == 401 and len(refused.headers["x-request-id"]) == 32
        await spine.settle()
        [delivered] = receiver.at("/alfa")
        assert delivered.verified, delivered.problem
    finally:
        for channel, port in previous.items():
            set_port(channel, port)

    output = captured.getvalue()
    for secret in (api_key, webhook_secret, platform_secret, smtp_password, "bo_live_not-a-key"):
        assert secret not in output, "a secret reached the logs"
    logged = lines(captured)
    [request] = [line for line in logged if line["event"] == "request" and line.get("request_id") == "req-abc.1"]
    assert request["tenant_id"] == str(a.id) and request["route"] == "/api/v1/events" and request["status"] == 202
    assert [line for line in logged if line["event"] == "request" and line["status"] == 401
            and "tenant_id" not in line]
    jobs = [line for line in logged if line.get("job")]
    assert {"spine.process_event", "webhooks.deliver"} <= {line["job"] for line in jobs}
    processed = [line for line in jobs if line["job"] == "spine.process_event"]
    assert all(line["tenant_id"] == str(a.id) for line in processed)
    event_id = answer.json()["event_id"]
    assert [line for line in processed if line.get("event_id") == event_id]
    assert not [line for line in logged if line.get("tenant_id") == str(b.id)]


def test_text_lines_for_the_demo_and_secret_fields_redacted():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure(level="INFO", json=False, stream=buffer)
    try:
        with logs.scope(request_id="r-1"):
            logs.bind(tenant_id="t-1")
            logging.getLogger("backoffice.test").warning("sent %s", "ok", extra={"password": "hunter2"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    text = buffer.getvalue()
    assert "sent ok" in text and "request_id=r-1" in text and "tenant_id=t-1" in text
    assert "hunter2" not in text and "password=[redacted]" in text
    assert not text.lstrip().startswith("{")
