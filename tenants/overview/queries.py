"""The staff console's cross-tenant overview: per tenant, what is waiting, what is broken, who is at risk.

Read through ``Database.system()`` (the provider's cross-tenant door), so every statement filters by tenant
explicitly: the tenants the staff member serves, as a subquery (``served``: every tenant for a provider
admin, the active assignments for an operator). One set-based statement per panel, grouped by tenant,
whatever the number of tenants; the chart reads only the tenants on the page. ``tests/perf/bench_console.py``
times each of them with 10,000 tenants, and migration 0017 gives the panels the partial indexes they scan.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Select, and_, exists, func, literal, select, text, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.staff.models import Assignment
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.effects.models import DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.models import RoutineRun, RoutineSetting
from backoffice.tenants.timeline.models import FeedbackItem
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus

CHART_DAYS = 14
# A routine needs attention when its latest run (within this window) failed or only partly succeeded.
ROUTINE_WINDOW = timedelta(days=35)

# The statuses the panels read, written out in the SQL (not bound) so the planner can match them with the
# partial indexes of migration 0017, whose predicates are the same text.
OPEN_EVENTS = text("events.status IN ('pending', 'unmatched', 'failed')")
DEAD_MESSAGES = text("outbound_messages.status = 'dead'")
DEAD_WEBHOOKS = text("webhook_deliveries.status = 'dead'")
AT_RISK = text("customers.lifecycle IN ('in_grace', 'blocked')")
OVERDUE = text("charges.status = 'overdue'")
UNREAD_FEEDBACK = text("feedback_items.state = 'unread'")
RUN_NEEDS_ATTENTION = text("routine_runs.status IN ('failed', 'partial')")


def served_ids(staff_id: uuid.UUID, *, all_tenants: bool) -> Select | None:
    """The tenants a staff member serves, as a subquery for the operators (assigned now); None for a provider
    admin, who serves every tenant (every row's tenant_id names one: no filter to apply)."""
    if all_tenants:
        return None
    return select(Assignment.tenant_id).where(Assignment.staff_id == staff_id, Assignment.ended_at.is_(None))


def _within(column, served: Select | None, only: list[uuid.UUID] | None):
    """The explicit tenant filter every statement carries: served (None: every tenant), and, for a page's
    refresh, only these ids."""
    conditions = []
    if served is not None:
        conditions.append(column.in_(served))
    if only is not None:
        conditions.append(column.in_(only))
    return and_(*conditions) if conditions else literal(True)


@dataclass(frozen=True)
class TenantRow:
    id: uuid.UUID
    slug: str
    display_name: str
    status: str


async def tenant_rows(session: AsyncSession, served: Select | None, only: list[uuid.UUID] | None = None
                      ) -> list[TenantRow]:
    query = select(Tenant.id, Tenant.slug, Tenant.display_name, Tenant.status).where(_within(Tenant.id, served, only))
    return [TenantRow(r.id, r.slug, r.display_name, str(getattr(r.status, "value", r.status)))
            for r in await session.execute(query.order_by(Tenant.display_name))]


@dataclass
class Backlog:
    waiting: int = 0
    oldest_waiting_at: datetime | None = None
    unmatched: int = 0
    failed: int = 0


def backlog_query(served: Select | None, only: list[uuid.UUID] | None = None) -> Select:
    pending = Event.status == EventStatus.PENDING
    return (
        select(Event.tenant_id.label("tenant_id"), func.count().filter(pending).label("waiting"),
               func.min(Event.received_at).filter(pending).label("oldest"),
               func.count().filter(Event.status == EventStatus.UNMATCHED).label("unmatched"),
               func.count().filter(Event.status == EventStatus.FAILED).label("failed"))
        .where(OPEN_EVENTS, _within(Event.tenant_id, served, only)).group_by(Event.tenant_id)
    )


async def event_backlog(session: AsyncSession, served: Select | None, only: list[uuid.UUID] | None = None
                        ) -> dict[uuid.UUID, Backlog]:
    """Events waiting for their step (and the oldest one's arrival), unmatched, failed for good."""
    return {row[0]: Backlog(row[1], row[2], row[3], row[4]) for row in await session.execute(backlog_query(served, only))}


def dead_query(served: Select | None, only: list[uuid.UUID] | None = None) -> Select:
    messages = select(OutboundMessage.tenant_id.label("tenant_id")).where(
        DEAD_MESSAGES, _within(OutboundMessage.tenant_id, served, only))
    webhooks = select(WebhookDelivery.tenant_id.label("tenant_id")).where(
        DEAD_WEBHOOKS, _within(WebhookDelivery.tenant_id, served, only))
    both = union_all(messages, webhooks).subquery()
    return select(both.c.tenant_id.label("tenant_id"), func.count().label("dead")).group_by(both.c.tenant_id)


async def dead_deliveries(session: AsyncSession, served: Select | None, only: list[uuid.UUID] | None = None
                          ) -> dict[uuid.UUID, int]:
    """Deliveries that gave up (e-mails, platform commands, chat, webhooks): the dead letters besides the
    failed events, which ``event_backlog`` counts."""
    return {row[0]: row[1] for row in await session.execute(dead_query(served, only))}


def risk_query(served: Select | None, only: list[uuid.UUID] | None = None) -> Select:
    return (
        select(Customer.tenant_id.label("tenant_id"),
               func.count().filter(Customer.lifecycle == Lifecycle.IN_GRACE).label("in_grace"),
               func.count().filter(Customer.lifecycle == Lifecycle.BLOCKED).label("blocked"))
        .where(AT_RISK, _within(Customer.tenant_id, served, only)).group_by(Customer.tenant_id)
    )


async def customers_at_risk(session: AsyncSession, served: Select | None, only: list[uuid.UUID] | None = None
                            ) -> dict[uuid.UUID, tuple[int, int]]:
    """(in grace, blocked) customers per tenant."""
    return {row[0]: (row[1], row[2]) for row in await session.execute(risk_query(served, only))}


def overdue_query(served: Select | None, only: list[uuid.UUID] | None = None) -> Select:
    return (
        select(Charge.tenant_id.label("tenant_id"), func.count().label("overdue_charges"),
               func.coalesce(func.sum(Charge.amount_cents), 0).label("overdue_cents"))
        .where(OVERDUE, _within(Charge.tenant_id, served, only)).group_by(Charge.tenant_id)
    )


async def overdue_amounts(session: AsyncSession, served: Select | None, only: list[uuid.UUID] | None = None
                          ) -> dict[uuid.UUID, tuple[int, int]]:
    """(overdue charges, their amount in cents) per tenant."""
    return {row[0]: (row[1], int(row[2])) for row in await session.execute(overdue_query(served, only))}


def routines_query(served: Select | None, now: datetime, only: list[uuid.UUID] | None = None) -> Select:
    later = aliased(RoutineRun)
    failing = select(RoutineRun.tenant_id.label("tenant_id")).where(
        RUN_NEEDS_ATTENTION, RoutineRun.created_at >= now - ROUTINE_WINDOW,
        _within(RoutineRun.tenant_id, served, only),
        ~exists().where(later.tenant_id == RoutineRun.tenant_id, later.routine == RoutineRun.routine,
                        later.created_at > RoutineRun.created_at))
    paused = select(RoutineSetting.tenant_id.label("tenant_id")).where(
        RoutineSetting.paused.is_(True), _within(RoutineSetting.tenant_id, served, only))
    both = union_all(failing, paused).subquery()
    return select(both.c.tenant_id.label("tenant_id"), func.count().label("routines")).group_by(both.c.tenant_id)


async def routines_needing_attention(session: AsyncSession, served: Select | None, now: datetime,
                                     only: list[uuid.UUID] | None = None) -> dict[uuid.UUID, int]:
    """Routines whose latest run failed or partly failed (a failed run with no later run of the same routine:
    the few failed runs are read from their partial index, each checked against the routine's newest run),
    plus routines paused for the tenant."""
    return {row[0]: row[1] for row in await session.execute(routines_query(served, now, only))}


def feedback_query(served: Select | None, only: list[uuid.UUID] | None = None) -> Select:
    """Front-office notes and feedback no staff member has read yet (the feedback inbox's state, kept on
    ``feedback_items``). Rows of (tenant_id, count)."""
    return (
        select(FeedbackItem.tenant_id.label("tenant_id"), func.count().label("feedback"))
        .where(UNREAD_FEEDBACK, _within(FeedbackItem.tenant_id, served, only))
        .group_by(FeedbackItem.tenant_id)
    )


async def unread_feedback(session: AsyncSession, served: Select | None,
                          only: list[uuid.UUID] | None = None) -> dict[uuid.UUID, int]:
    return {row[0]: row[1] for row in await session.execute(feedback_query(served, only))}


@dataclass
class Day:
    day: date
    events: int = 0
    failures: int = 0


@dataclass
class Activity:
    days: list[Day] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(d.events for d in self.days)

    @property
    def failures(self) -> int:
        return sum(d.failures for d in self.days)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def activity(session: AsyncSession, tenant_ids: list[uuid.UUID], now: datetime,
                   days: int = CHART_DAYS) -> dict[uuid.UUID, Activity]:
    """Events received and failures (events failed, deliveries dead) per UTC day over the last ``days`` days,
    for the given tenants (a page of the overview: callers pass ids they already filtered by ``served``)."""
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    if not tenant_ids:
        return {}
    received = (
        select(Event.tenant_id.label("tenant_id"), func.date(Event.received_at).label("day"),
               func.count().label("events"), func.count().filter(Event.status == EventStatus.FAILED).label("failures"))
        .where(Event.tenant_id.in_(tenant_ids), Event.received_at >= since)
        .group_by(Event.tenant_id, func.date(Event.received_at))
    )
    dead = (
        select(OutboundMessage.tenant_id.label("tenant_id"), func.date(OutboundMessage.created_at).label("day"),
               literal(0).label("events"), func.count().label("failures"))
        .where(OutboundMessage.tenant_id.in_(tenant_ids), OutboundMessage.created_at >= since, DEAD_MESSAGES)
        .group_by(OutboundMessage.tenant_id, func.date(OutboundMessage.created_at))
    )
    rows = await session.execute(union_all(received, dead))
    counts: dict[uuid.UUID, dict[date, Day]] = defaultdict(dict)
    for tenant_id, day, n_events, n_failures in rows:
        key = _as_date(day)
        entry = counts[tenant_id].setdefault(key, Day(key))
        entry.events += n_events
        entry.failures += n_failures
    calendar = [first + timedelta(days=n) for n in range(days)]
    return {tid: Activity([counts.get(tid, {}).get(d, Day(d)) for d in calendar]) for tid in tenant_ids}


# --- the overview's lines ---------------------------------------------------------------------------

@dataclass
class Line:
    """One tenant's line of the overview (connectors are merged in by the caller: they sit a layer above)."""

    tenant: TenantRow
    backlog: Backlog
    dead_deliveries: int = 0
    in_grace: int = 0
    blocked: int = 0
    overdue_charges: int = 0
    overdue_cents: int = 0
    routines: int = 0
    feedback: int = 0
    connectors_failing: int = 0
    circuits_open: int = 0
    connector_error: str | None = None
    activity: Activity | None = None

    @property
    def dead_letters(self) -> int:
        return self.backlog.failed + self.dead_deliveries

    def waiting_age(self, now: datetime) -> timedelta | None:
        oldest = self.backlog.oldest_waiting_at
        return now - oldest if oldest and self.backlog.waiting else None

    def severity(self, now: datetime) -> float:
        """Worst first: broken things (dead letters, failing connectors, failed routines) before things that
        wait, then customers at risk and money overdue, then feedback."""
        age = self.waiting_age(now)
        minutes = age.total_seconds() / 60 if age else 0.0
        return (1000 * (self.connectors_failing + self.circuits_open) + 100 * self.dead_letters
                + 100 * self.routines + 10 * self.backlog.unmatched + min(minutes, 1440) + self.backlog.waiting / 10
                + 5 * self.blocked + 2 * self.in_grace + self.overdue_cents / 1_000_000 + self.feedback)


async def lines(session: AsyncSession, served: Select | None, now: datetime,
                only: list[uuid.UUID] | None = None) -> list[Line]:
    """Every panel for the served tenants (or only the given ones), one statement each, merged per tenant."""
    tenants = await tenant_rows(session, served, only)
    backlog = await event_backlog(session, served, only)
    dead = await dead_deliveries(session, served, only)
    risk = await customers_at_risk(session, served, only)
    overdue = await overdue_amounts(session, served, only)
    routines = await routines_needing_attention(session, served, now, only)
    feedback = await unread_feedback(session, served, only)
    result = []
    for tenant in tenants:
        grace, blocked = risk.get(tenant.id, (0, 0))
        charges, cents = overdue.get(tenant.id, (0, 0))
        result.append(Line(tenant, backlog.get(tenant.id) or Backlog(), dead.get(tenant.id, 0), grace, blocked,
                           charges, cents, routines.get(tenant.id, 0), feedback.get(tenant.id, 0)))
    return result


__all__ = ["Activity", "Backlog", "Day", "Line", "TenantRow", "activity", "customers_at_risk", "dead_deliveries",
           "event_backlog", "feedback_query", "lines", "overdue_amounts", "routines_needing_attention",
           "served_ids", "tenant_rows", "unread_feedback"]


# --- one page of the overview, ranked by the database -------------------------------------------------

# Columns a page may be sorted by (besides "worst", the severity); each an expression of the joined panels.
SORT_KEYS = ("worst", "name", "waiting", "age", "dead", "unmatched", "connectors", "routines", "grace", "blocked",
             "overdue", "feedback")


@dataclass
class Page:
    lines: list[Line]
    shown: int  # companies matching the filter
    totals: dict[str, int]  # over every served company


def _minutes_since(oldest, now: datetime, dialect: str):
    if dialect == "postgresql":
        return func.extract("epoch", literal(now) - oldest) / 60
    return (func.julianday(literal(now.replace(tzinfo=None).isoformat(sep=" "))) - func.julianday(oldest)) * 1440


async def page(session: AsyncSession, served: Select | None, now: datetime, *, connectors: Select | None = None,
               q: str = "", problems_only: bool = False, sort: str = "worst", descending: bool = True,
               limit: int = 50, offset: int = 0) -> Page:
    """One page of lines, the panels joined to the served tenants, ranked and filtered by the database, so
    the page costs the panels' statements and 50 rows whatever the number of tenants (a list of 10,000 lines
    built in Python cost more than the statements themselves). ``connectors`` is the connectors layer's
    panel (``connectors/overview.failing_query``: rows of tenant_id, failing), joined like the others."""
    panels = {
        "backlog": backlog_query(served).subquery("backlog"), "dead": dead_query(served).subquery("dead"),
        "risk": risk_query(served).subquery("risk"), "overdue": overdue_query(served).subquery("overdue"),
        "routines": routines_query(served, now).subquery("routines"),
        "feedback": feedback_query(served).subquery("feedback"),
    }
    if connectors is not None:
        panels["connectors"] = connectors.subquery("connectors")
    b, d, r, o, ru, f = (panels[k].c for k in ("backlog", "dead", "risk", "overdue", "routines", "feedback"))
    zero = literal(0)
    conn = func.coalesce(panels["connectors"].c.failing, zero) if connectors is not None else zero
    values = {
        "waiting": func.coalesce(b.waiting, zero), "unmatched": func.coalesce(b.unmatched, zero),
        "failed": func.coalesce(b.failed, zero), "dead": func.coalesce(d.dead, zero),
        "grace": func.coalesce(r.in_grace, zero), "blocked": func.coalesce(r.blocked, zero),
        "overdue_charges": func.coalesce(o.overdue_charges, zero), "overdue": func.coalesce(o.overdue_cents, zero),
        "routines": func.coalesce(ru.routines, zero), "feedback": func.coalesce(f.feedback, zero),
        "connectors": conn,
    }
    # Minutes the oldest waiting event has waited, capped at a day (PostgreSQL's LEAST skips NULLs: 0 first).
    waited = func.coalesce(_minutes_since(b.oldest, now, session.bind.dialect.name), 0)
    minutes = func.least(waited, 1440) if session.bind.dialect.name == "postgresql" else func.min(waited, 1440)
    severity = (1000 * values["connectors"] + 100 * (values["failed"] + values["dead"]) + 100 * values["routines"]
                + 10 * values["unmatched"] + minutes + values["waiting"] / 10.0 + 5 * values["blocked"]
                + 2 * values["grace"] + values["overdue"] / 1_000_000.0 + values["feedback"])
    joined = Tenant.__table__
    for name, panel in panels.items():
        joined = joined.outerjoin(panel, panel.c.tenant_id == Tenant.id)
    conditions = [_within(Tenant.id, served, None)]
    if q:
        needle = q.lower()
        conditions.append(func.lower(Tenant.display_name).contains(needle, autoescape=True)
                          | Tenant.slug.contains(needle, autoescape=True))
    if problems_only:
        conditions.append((values["failed"] + values["dead"] + values["unmatched"] + values["connectors"]
                           + values["routines"] + values["blocked"] + values["waiting"]) > 0)
    order_by = {
        "worst": severity, "name": func.lower(Tenant.display_name), "age": minutes,
        "dead": values["failed"] + values["dead"], **{k: values[k] for k in
                                                      ("waiting", "unmatched", "connectors", "routines", "grace",
                                                       "blocked", "overdue", "feedback")},
    }[sort if sort in SORT_KEYS else "worst"]
    query = (
        select(Tenant.id, Tenant.slug, Tenant.display_name, Tenant.status, b.oldest, func.count().over().label("shown"),
               *(value.label(name) for name, value in values.items()))
        .select_from(joined).where(*conditions)
        .order_by(order_by.desc() if descending else order_by.asc(), func.lower(Tenant.display_name), Tenant.id)
        .limit(limit).offset(offset)
    )
    rows = (await session.execute(query)).all()
    result = []
    for row in rows:
        line = Line(TenantRow(row.id, row.slug, row.display_name, str(getattr(row.status, "value", row.status))),
                    Backlog(row.waiting, row.oldest, row.unmatched, row.failed), row.dead, row.grace, row.blocked,
                    row.overdue_charges, int(row.overdue), row.routines, row.feedback, row.connectors)
        result.append(line)
    shown = rows[0].shown if rows else 0
    if not rows and offset:  # past the last page: how many there are, for the pager
        shown = (await session.execute(select(func.count()).select_from(joined).where(*conditions))).scalar_one()
    # Totals over every served tenant (not only the filtered ones): the same join, summed, one statement.
    summed = ("waiting", "failed", "dead", "unmatched", "routines", "grace", "blocked", "overdue", "feedback",
              "connectors")
    t = (await session.execute(
        select(func.count(), *(func.coalesce(func.sum(values[name]), 0) for name in summed))
        .select_from(joined).where(_within(Tenant.id, served, None)))).one()
    total = {name: int(value) for name, value in zip(("tenants", *summed), t)}
    totals = {"tenants": total["tenants"], "waiting": total["waiting"], "dead": total["failed"] + total["dead"],
              "unmatched": total["unmatched"], "routines": total["routines"],
              "at_risk": total["grace"] + total["blocked"], "overdue": int(total["overdue"]),
              "feedback": total["feedback"], "connectors": total["connectors"]}
    return Page(result, shown, totals)
