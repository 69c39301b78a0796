"""Metrics: a scenario through the API and the running spine (events accepted, a duplicate, refusals, a delivery
that fails), then a scrape of /metrics: every counter moved by exactly what happened, the outbox backlog was
seen and drained, and no series carries a tenant except the worst-tenant gauges."""

from __future__ import annotations

import uuid
from collections import Counter as Tally

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from backoffice.platform import metrics
from backoffice.platform.outbox.backlog import backlog_statement, measure_backlog
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError, set_port
from backoffice.web.app import create_app
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the spine fixture)
from tests.web.api.conftest import bearer, make_key

TENANT_SERIES = {"backoffice_outbox_tenant_backlog", "backoffice_outbox_tenant_oldest_age_seconds"}


class RefusingMailbox:
    """An e-mail transport whose receiver refuses every message for good: each delivery dead-letters."""

    async def send(self, session, tenant, message):
        raise DeliveryError("550 mailbox unavailable", retryable=False)


def overdue(external_id: str, customer: dict) -> dict:
    return {"type": "payment.overdue", "source": "asaas", "external_id": external_id, "customer": customer,
            "data": {"charge": {"external_id": f"ch-{external_id}", "amount_cents": 19990, "due_date": "2026-11-01"}}}


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def value(scraped, name: str, **labels) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_by_exactly_what_happened(spine, database):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await new_customer(database, a.id, a.admin_id, name="Oficina Rápida", tax_id="390.533.447-05",
                                     email="financeiro@oficina.example", lifecycle=Lifecycle.ACTIVE)
    previous = set_port(Channel.EMAIL, RefusingMailbox())
    key_a, key_b = await make_key(database, a.id), await make_key(database, b.id)
    try:
        async with AsyncTestClient(app=create_app(database.settings)) as client:
            before = await scrape(client)
            first = await client.post("/api/v1/events", headers=bearer(key_a),
                                      json=overdue("evt_1", {"id": str(customer_id)}))
            again = await client.post("/api/v1/events", headers=bearer(key_a),
                                      json=overdue("evt_1", {"id": str(customer_id)}))
            invalid = await client.post("/api/v1/events", headers=bearer(key_a), json={"type": "payment.overdue"})
            batch = await client.post("/api/v1/events/batch", headers=bearer(key_b), json={"events": [
                overdue("evt_b1", {"tax_id": "529.982.247-25"}), overdue("evt_b1", {"tax_id": "529.982.247-25"}),
                {"type": "payment.teleported"}]})
            assert [first.json()["status"], again.json()["status"], invalid.status_code] == \
                ["accepted", "duplicate", 422]
            assert (batch.json()["accepted"], batch.json()["duplicate"], batch.json()["invalid"]) == (1, 1, 1)

            await measure_backlog(database)  # what the leading scheduler does every 15 s
            waiting = await scrape(client)
            await spine.settle()
            await measure_backlog(database)
            after = await scrape(client)
    finally:
        set_port(Channel.EMAIL, previous)

    # Intake: one series per source and outcome, counting events; the latency histogram counts requests.
    for source, outcome, events in (("api", "accepted", 1), ("api", "duplicate", 1), ("api", "refused", 1),
                                    ("api_batch", "accepted", 1), ("api_batch", "duplicate", 1),
                                    ("api_batch", "refused", 1), ("api", "error", 0), ("api_batch", "error", 0)):
        assert moved(before, after, "backoffice_intake_events_total", source=source, outcome=outcome) == events
    for source, outcome, requests in (("api", "accepted", 1), ("api", "duplicate", 1), ("api", "refused", 1),
                                      ("api_batch", "accepted", 1)):
        assert moved(before, after, "backoffice_intake_seconds_count", source=source, outcome=outcome) == requests

    # Every answer by route template and status.
    for route, status, count in (("/api/v1/events", "202", 2), ("/api/v1/events", "422", 1),
                                 ("/api/v1/events/batch", "207", 1)):
        assert moved(before, after, "backoffice_http_requests_total", method="POST", route=route,
                     status=status) == count

    # The outbox held the two new events' rows (one per tenant) before the spine ran, and nothing after.
    assert value(waiting, "backoffice_outbox_backlog") == 2
    assert value(waiting, "backoffice_outbox_tenant_backlog", tenant_id=str(a.id)) == 1
    assert value(waiting, "backoffice_outbox_tenant_backlog", tenant_id=str(b.id)) == 1
    assert value(after, "backoffice_outbox_backlog") == 0 and value(after, "backoffice_outbox_oldest_age_seconds") == 0
    assert not [k for k in after if k[0] in TENANT_SERIES]

    # Deliveries and dead letters: exactly the rows the spine wrote, by channel and final state.
    async with database.system() as session:
        messages = Tally((m.channel.value, m.status) for m in (await session.execute(select(OutboundMessage))).scalars())
        relayed = (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one()
    dead_mail = messages[("email", DeliveryStatus.DEAD)]
    assert dead_mail >= 1  # the dunning notice to the customer, refused by the mailbox
    assert moved(before, after, "backoffice_deliveries_total", channel="email", outcome="dead") == dead_mail
    assert moved(before, after, "backoffice_dead_letters_total", kind="message") == dead_mail
    for channel in Channel:
        assert moved(before, after, "backoffice_deliveries_total", channel=channel.value, outcome="sent") == \
            messages[(channel.value, DeliveryStatus.SENT)], channel
    assert moved(before, after, "backoffice_relay_rows_total") == relayed

    # Jobs: each job that ran was timed; none raised (a refused delivery is a dead letter, not a failure).
    ran = {dict(labels)["job"] for name, labels in after
           if name == "backoffice_job_seconds_count" and moved(before, after, name, **dict(labels)) > 0}
    assert {"spine.process_event", "effects.deliver"} <= ran
    assert not [k for k in after if k[0] == "backoffice_job_failures_total" and moved(before, after, k[0], **dict(k[1]))]
    assert ("backoffice_db_pool_in_use", frozenset({("engine", "app")})) in after or database.dialect == "sqlite"

    # Bounded labels: nothing names a tenant but the worst-tenant gauges.
    assert not [k for k in after if "tenant_id" in dict(k[1]) and k[0] not in TENANT_SERIES]


async def test_metrics_stay_out_of_the_api_document(database):
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        schema = (await client.get("/api/v1/schema/openapi.json")).json()
    assert schema["paths"] and not [path for path in schema["paths"] if "metrics" in path]


async def test_the_worst_tenants_are_ranked_by_count_and_by_age_in_one_statement(spine, database):  # noqa: F811
    a, b = spine.tenants.a, spine.tenants.b
    await spine.ingest(b.id, overdue("old", {"tax_id": "529.982.247-25"}))
    spine.clock.advance(minutes=5)
    for n in range(3):
        await spine.ingest(a.id, overdue(f"new-{n}", {"tax_id": "529.982.247-25"}))
    async with database.system() as session:
        rows = (await session.execute(backlog_statement(spine.clock.now(), worst=1))).all()
    assert {(row.tenant_id, row.by_count, row.by_age) for row in rows} == {(a.id, 1, 2), (b.id, 2, 1)}
    assert {int(row.total) for row in rows} == {4}
    await measure_backlog(database)
    assert metrics.OUTBOX_BACKLOG._value.get() == 4
    assert metrics.OUTBOX_OLDEST_AGE._value.get() == pytest.approx(300)
    metrics.forget_outbox()
    assert isinstance(a.id, uuid.UUID)
