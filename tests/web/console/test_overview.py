"""The overview's numbers are the seeded facts of each tenant, and only of the tenants the staff member serves."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import select

from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.platform import clock
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.overview import queries
from backoffice.tenants.routines.models import RoutineRun, RoutineSetting, RunStatus, Trigger
from backoffice.tenants.timeline.models import FeedbackItem, FeedbackState, TimelineEntry


async def seed(database, tenant_id: uuid.UUID, *, waiting: int, unmatched: int, failed: int, dead: int,
               grace: int, blocked: int, overdue: list[int], routine_failed: bool, paused: bool, notes: int,
               failing_connector: str | None) -> None:
    """Rows as the spine and the routines would leave them, written through the provider's door."""
    now = clock.now()
    async with database.provider(tenant_id) as session:
        customers = list((await session.execute(select(Customer).order_by(Customer.name))).scalars())
        for n, (status, count) in enumerate(((EventStatus.PENDING, waiting), (EventStatus.UNMATCHED, unmatched),
                                            (EventStatus.FAILED, failed), (EventStatus.PROCESSED, 3))):
            for k in range(count):
                session.add(Event(type="payment.received", source="test", external_id=f"{status}-{k}",
                                  occurred_at=now, received_at=now - timedelta(minutes=10 * (k + 1) + n),
                                  status=status))
        for k in range(dead):
            session.add(OutboundMessage(effect_key=f"dead-{k}", channel=Channel.EMAIL, status=DeliveryStatus.DEAD,
                                        last_error="550 mailbox unavailable", created_at=now - timedelta(days=1)))
        session.add(OutboundMessage(effect_key="sent-1", channel=Channel.EMAIL, status=DeliveryStatus.SENT))
        states = [Lifecycle.IN_GRACE] * grace + [Lifecycle.BLOCKED] * blocked
        for customer, state in zip(customers, states):
            customer.lifecycle = state
        for k, cents in enumerate(overdue):
            session.add(Charge(customer_id=customers[0].id, amount_cents=cents, due_date=date(2026, 11, 1),
                               status=ChargeStatus.OVERDUE, source="test", external_id=f"overdue-{k}"))
        session.add(Charge(customer_id=customers[0].id, amount_cents=99_999, due_date=date(2026, 12, 30),
                           status=ChargeStatus.PENDING, source="test", external_id="pending-1"))
        if routine_failed:
            session.add(RoutineRun(routine="billing", period="2026-11", trigger=Trigger.SCHEDULE,
                                   status=RunStatus.SUCCEEDED, requested_by="system:scheduler",
                                   created_at=now - timedelta(days=2)))
            session.add(RoutineRun(routine="billing", period="2026-12", trigger=Trigger.SCHEDULE,
                                   status=RunStatus.PARTIAL, requested_by="system:scheduler",
                                   created_at=now - timedelta(days=1)))
        if paused:
            session.add(RoutineSetting(routine="invoices", paused=True, paused_by="staff:tests"))
        entries = [TimelineEntry(customer_id=customers[0].id, kind="feedback", title=f"Feedback {k}",
                                 at=now - timedelta(days=k)) for k in range(notes + 1)]
        session.add_all(entries)
        await session.flush()
        # The feedback inbox's items (what add_note writes with the note); the last one was read already.
        session.add_all([FeedbackItem(entry_id=entry.id, customer_id=entry.customer_id, kind="feedback",
                                      recorded_at=entry.at,
                                      state=FeedbackState.READ if k == notes else FeedbackState.UNREAD)
                         for k, entry in enumerate(entries)])
        if failing_connector:
            session.add(ConnectorInstance(kind="asaas", name="asaas", config={}, health=Health.FAILING,
                                          last_error=failing_connector, last_error_at=now))


async def _seed_both(database, tenants) -> None:
    await seed(database, tenants.a.id, waiting=3, unmatched=1, failed=2, dead=1, grace=1, blocked=1,
               overdue=[10_000, 2_550], routine_failed=True, paused=False, notes=2,
               failing_connector="HTTP 503 from Asaas")
    await seed(database, tenants.b.id, waiting=0, unmatched=4, failed=0, dead=0, grace=2, blocked=0,
               overdue=[], routine_failed=False, paused=True, notes=0, failing_connector=None)


async def test_each_panel_counts_the_seeded_rows_per_tenant(database, tenants):
    await _seed_both(database, tenants)
    async with database.system() as session:
        found = {line.tenant.slug: line for line in await queries.lines(session, None, clock.now())}
    a, b = found["alfa"], found["beta"]
    assert (a.backlog.waiting, a.backlog.unmatched, a.backlog.failed, a.dead_deliveries) == (3, 1, 2, 1)
    assert a.dead_letters == 3
    assert 29 <= a.waiting_age(clock.now()).total_seconds() / 60 <= 32  # the oldest of the three: ~30 minutes
    assert (a.in_grace, a.blocked, a.overdue_charges, a.overdue_cents) == (1, 1, 2, 12_550)
    assert (a.routines, a.feedback) == (1, 2)
    assert (b.backlog.waiting, b.backlog.unmatched, b.dead_letters, b.waiting_age(clock.now())) == (0, 4, 0, None)
    assert (b.in_grace, b.blocked, b.overdue_cents, b.routines, b.feedback) == (2, 0, 0, 1, 0)
    assert a.severity(clock.now()) > b.severity(clock.now())


async def test_the_chart_has_fourteen_days_of_each_tenants_events(database, tenants):
    await _seed_both(database, tenants)
    async with database.system() as session:
        charts = await queries.activity(session, [tenants.a.id, tenants.b.id], clock.now())
    a, b = charts[tenants.a.id], charts[tenants.b.id]
    assert len(a.days) == 14 and a.days[-1].day == clock.now().date()
    assert a.events == 3 + 1 + 2 + 3 and a.failures == 2 + 1  # failed events, and the dead e-mail
    assert b.events == 4 + 3 and b.failures == 0


def _cells(html: str, slug: str) -> dict[str, str]:
    import re

    row = re.search(rf'<tr data-tenant="{slug}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {slug}"
    return {m.group(1): re.sub(r"<[^>]+>|\s+", " ", m.group(2)).strip()
            for m in re.finditer(r'data-col="(\w+)">(.*?)</td>', row.group(1), re.S)}


def _total(html: str, key: str) -> str:
    import re

    found = re.search(rf'data-total="{key}"[^>]*><strong>([^<]*)</strong>', html)
    assert found, key
    return found.group(1)


async def test_the_admin_page_shows_both_tenants_worst_first(database, admin_client):
    tenants = admin_client.tenants
    await _seed_both(database, tenants)
    page = await admin_client.get("/staff/")
    assert page.status_code == 200
    html = page.text
    assert html.index('data-tenant="alfa"') < html.index('data-tenant="beta"')
    a, b = _cells(html, "alfa"), _cells(html, "beta")
    assert (a["waiting"], a["dead"], a["unmatched"], a["routines"], a["grace"], a["blocked"], a["feedback"]) == \
        ("3", "3", "1", "1", "1", "1", "2")
    assert a["connectors"] == "1" and a["overdue"] == "R$ 125,50"
    assert (b["waiting"], b["unmatched"], b["grace"], b["routines"]) == ("0", "4", "2", "1")
    assert "HTTP 503 from Asaas" in html
    assert (_total(html, "unmatched"), _total(html, "tenants"), _total(html, "dead")) == ("5", "2", "3")
    by_unmatched = (await admin_client.get("/staff/?sort=unmatched")).text
    assert by_unmatched.index('data-tenant="beta"') < by_unmatched.index('data-tenant="alfa"')
    by_name = (await admin_client.get("/staff/?sort=name&order=desc")).text
    assert by_name.index('data-tenant="beta"') < by_name.index('data-tenant="alfa"')
    only = (await admin_client.get("/staff/?q=bet")).text
    assert 'data-tenant="beta"' in only and 'data-tenant="alfa"' not in only


async def test_an_operator_sees_only_the_assigned_tenant_everywhere(database, operator_client):
    tenants = operator_client.tenants
    await _seed_both(database, tenants)
    html = (await operator_client.get("/staff/")).text
    assert 'data-tenant="alfa"' in html and 'data-tenant="beta"' not in html and "Beta" not in html
    assert _cells(html, "alfa")["unmatched"] == "1"
    # The totals are the assigned tenant's only (beta's four unmatched events are not counted).
    assert _total(html, "unmatched") == "1" and _total(html, "tenants") == "1" and _total(html, "at_risk") == "2"
    live = await operator_client.get(f"/staff/overview/live?ids={tenants.a.id}&ids={tenants.b.id}")
    assert live.status_code == 200 and 'data-tenant="alfa"' in live.text and 'data-tenant="beta"' not in live.text
    listing = (await operator_client.get("/staff/tenants")).text
    assert "Alfa" in listing and "Beta" not in listing
    assert (await operator_client.get(f"/staff/overview/tenants/{tenants.b.id}")).status_code == 404


async def test_live_rows_refresh_without_reloading(database, admin_client):
    tenants = admin_client.tenants
    page = (await admin_client.get("/staff/")).text
    assert 'hx-trigger="every 15s"' in page and "/static/vendor/htmx/htmx.min.js" in page
    before = await admin_client.get(f"/staff/overview/live?ids={tenants.a.id}", headers={"hx-request": "true"})
    assert _cells(before.text, "alfa")["waiting"] == "0"
    await _seed_both(database, tenants)
    after = await admin_client.get(f"/staff/overview/live?ids={tenants.a.id}", headers={"hx-request": "true"})
    assert _cells(after.text, "alfa")["waiting"] == "3"
    assert after.text.lstrip().startswith('<tbody id="overview-rows"')


async def test_the_company_list_searches_and_pages(database, admin_client, monkeypatch):
    from backoffice.web.console import overview

    monkeypatch.setattr(overview, "LIST_PAGE_SIZE", 1)
    first = (await admin_client.get("/staff/tenants")).text
    assert "Alfa" in first and "Beta" not in first and 'rel="next"' in first
    second = (await admin_client.get("/staff/tenants?page=2")).text
    assert "Beta" in second and "Alfa" not in second
    found = (await admin_client.get("/staff/tenants?q=bet")).text
    assert "Beta" in found and "Alfa" not in found


async def test_the_overview_pages_and_filters_in_the_database(database, admin_client, monkeypatch):
    from backoffice.web.console import overview

    await _seed_both(database, admin_client.tenants)
    monkeypatch.setattr(overview, "PAGE_SIZE", 1)
    first = (await admin_client.get("/staff/")).text
    assert 'data-tenant="alfa"' in first and 'data-tenant="beta"' not in first and 'rel="next"' in first
    second = (await admin_client.get("/staff/?page=2")).text
    assert 'data-tenant="beta"' in second and _total(second, "tenants") == "2"  # totals: every company
    past = await admin_client.get("/staff/?page=9")
    assert past.status_code == 303 and past.headers["location"].endswith("page=2")
    # Every seeded company has something to do; a name that matches nothing shows none.
    assert "Nenhuma empresa para mostrar." in (await admin_client.get("/staff/?q=zzz&problems=1")).text
    assert 'data-tenant="beta"' in (await admin_client.get("/staff/?q=BETA&problems=1")).text
