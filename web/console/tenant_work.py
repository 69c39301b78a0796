"""Working one tenant from the staff console, under ``/staff/tenants/<tenant_id>/``: its numbers at a glance,
its customers and each customer's timeline with the delivery details of every effect, its routines (start,
pause, resume, retry failed items, progress live), its dead letters and unmatched events with replay (one,
a selection, a time window) and what each replay did, and its outbound deliveries.

Every read goes through ``Database.provider(tenant_id)`` after the console's door (``console_tenant``: a
tenant this staff member may not act on is a 404 like a missing one); every action is the service call the
staff API and the CLI make, audited there with the staff member as actor. Lists are cursor-paginated, one
statement per panel. Live parts are htmx fragments polled every few seconds, with a plain refresh link for
a browser without scripts.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from backoffice.platform import clock
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.customers import queries as customer_queries
from backoffice.tenants.policies.templates import format_datetime
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.deadletters import queries as letters
from backoffice.tenants.deadletters import service as replays
from backoffice.tenants.deadletters.models import Replay
from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.events.models import Event
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines import engine
from backoffice.tenants.routines import queries as routine_queries
from backoffice.tenants.routines.catalogue import UnknownRoutine, get_routine
from backoffice.tenants.routines.models import ItemStatus, RoutineRun
from backoffice.tenants.timeline import service as timeline
from backoffice.tenants.webhooks.models import WebhookDelivery
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.web.api.pagination import paginate
from backoffice.web.console.render import console_locale, render
from backoffice.web.console.session import StaffUser
from backoffice.web.portal.render import lifecycle_badges
from backoffice.web.portal.routines import describe_run, describe_schedule

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PAGE = 50
FAILED_ITEMS_SHOWN = 200
REPLAY_ITEMS_SHOWN = 200
POLL = "every 2s"
# A run's page is pushed its progress (web/console/live.py, static/console-live.js); the poll runs only
# while that stream is not open.
RUN_POLL = "live, every 2s [!window.backofficeLive]"
BASE = "/staff/tenants/{tenant_id}"
DEAD_LETTER_TABS = ("events", "messages", "webhooks")
LETTER_SORT = {"events": ("received_at", Event.received_at), "unmatched": ("received_at", Event.received_at),
               "messages": ("created_at", OutboundMessage.created_at),
               "webhooks": ("created_at", WebhookDelivery.created_at)}


def _base(tenant: Tenant) -> str:
    return BASE.format(tenant_id=tenant.id)


def _page_of(request: Request, tenant: Tenant, template: str, section: str, **context: Any) -> Response:
    """A page of one tenant: its times in the tenant's own time zone (as its schedules are written)."""
    locale = console_locale(request)

    def when(value: datetime | str | None) -> str:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return format_datetime(value, tenant.timezone, locale) if isinstance(value, datetime) else ""

    return render(request, template, tenant=tenant, base=_base(tenant), tab=section, when=when, **context)


def _see(location: str) -> Response:
    return Redirect(location, status_code=303)


def _text(data: dict[str, Any], name: str, limit: int = 1000) -> str | None:
    value = data.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    value = (str(value) if value is not None else "").strip()
    if len(value) > limit:
        raise ValidationFailed(FieldError(name, f"expected at most {limit} characters"))
    return value or None


def _values(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


async def _paged(state: State, tenant: Tenant, query, model, sort: tuple[str, Any], cursor: str | None):
    async with state.database.provider(tenant.id) as session:
        return await paginate(session, query, model, sorts={sort[0]: sort[1]}, sort=f"-{sort[0]}", limit=PAGE,
                              cursor=cursor or None)


# --- the tenant's home ----------------------------------------------------------------------------

@get("/tenants/{tenant_id:uuid}", name="console:tenant_home")
async def home(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
               state: State) -> Response:
    locale = console_locale(request)
    async with state.database.provider(tenant_id) as session:
        counts = await letters.counts(session)
        stages = await customer_queries.count_by_lifecycle(session)
        routines = await routine_queries.routine_statuses(session, locale=locale)
    attention = [r for r in routines if r["paused"] or (r["last_run"] or {}).get("status") in
                 ("failed", "partial", "paused")]
    waiting_for = None
    if counts.oldest_pending_at is not None:
        waiting_for = max(0, int((clock.now() - counts.oldest_pending_at).total_seconds() // 60))
    return _page_of(request, console_tenant, "console/tenant/home.html", "home", counts=counts, stages=stages,
                    badges=lifecycle_badges(locale), routines=routines, attention=attention,
                    waiting_minutes=waiting_for)


# --- customers ------------------------------------------------------------------------------------

@get("/tenants/{tenant_id:uuid}/customers", name="console:tenant_customers")
async def customers(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant, state: State,
                    q: str = "", stage: str = "", cursor: str = "") -> Response:
    query = customer_queries.customer_search_query(q, stage)
    async with state.database.provider(tenant_id) as session:
        page = await paginate(session, query, Customer, sorts={"name": Customer.name}, sort="name", limit=PAGE,
                              cursor=cursor or None)
    return _page_of(request, console_tenant, "console/tenant/customers.html", "customers", page=page,
                    q=q.strip()[:200], stage=stage, states=[s.value for s in Lifecycle],
                    badges=lifecycle_badges(console_locale(request)))


@get("/tenants/{tenant_id:uuid}/customers/{customer_id:uuid}", name="console:tenant_customer")
async def customer(request: Request, tenant_id: uuid.UUID, customer_id: uuid.UUID, staff: StaffUser,
                   console_tenant: Tenant, state: State) -> Response:
    async with state.database.provider(tenant_id) as session:
        row = await get_owned(session, Customer, customer_id)
        entries = await timeline.timeline(session, row.id)
        deliveries = await letters.customer_deliveries(session, row.id)
    return _page_of(request, console_tenant, "console/tenant/customer.html", "customers", customer=row,
                    entries=entries, deliveries=deliveries, badges=lifecycle_badges(console_locale(request)),
                    message_of=_message_of)


def _message_of(entry) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((entry.ref or {}).get("message_id")))
    except ValueError:
        return None


# --- routines -------------------------------------------------------------------------------------

def _routine_name(name: str) -> str:
    try:
        return get_routine(name).name
    except UnknownRoutine:
        raise NotFound(RoutineRun, name) from None


@get("/tenants/{tenant_id:uuid}/routines", name="console:tenant_routines")
async def routines_page(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                        state: State, cursor: str = "") -> Response:
    locale = console_locale(request)
    async with state.database.provider(tenant_id) as session:
        statuses = await routine_queries.routine_statuses(session, locale=locale)
        page = await paginate(session, routine_queries.runs_query(), RoutineRun,
                              sorts={"created_at": RoutineRun.created_at}, sort="-created_at", limit=PAGE,
                              cursor=cursor or None)
    now = clock.now()
    runs = [describe_run(run, get_routine(run.routine), locale, console_tenant.timezone, now) for run in page.items]
    entries = [{"status": s, "schedule": describe_schedule(s, locale)} for s in statuses]
    return _page_of(request, console_tenant, "console/tenant/routines.html", "routines", routines=entries,
                    runs=runs, next_cursor=page.next_cursor)


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/runs", name="console:tenant_routine_start")
async def routine_start(tenant_id: uuid.UUID, routine: str, staff: StaffUser, console_tenant: Tenant, state: State,
                        data: Form) -> Response:
    name = _routine_name(routine)
    period, reason = _text(data, "period", 10), _text(data, "reason", 500)
    async with state.database.provider(tenant_id) as session:
        run = await engine.start_run(session, name, period=period, actor=staff.actor, reason=reason)
    return _see(f"{_base(console_tenant)}/routine-runs/{run.id}")


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/pause", name="console:tenant_routine_pause")
async def routine_pause(tenant_id: uuid.UUID, routine: str, staff: StaffUser, console_tenant: Tenant, state: State,
                        data: Form) -> Response:
    name = _routine_name(routine)
    async with state.database.provider(tenant_id) as session:
        await engine.pause(session, name, actor=staff.actor, reason=_text(data, "reason", 500))
    return _see(f"{_base(console_tenant)}/routines")


@post("/tenants/{tenant_id:uuid}/routines/{routine:str}/resume", name="console:tenant_routine_resume")
async def routine_resume(tenant_id: uuid.UUID, routine: str, staff: StaffUser, console_tenant: Tenant, state: State,
                         data: Form) -> Response:
    name = _routine_name(routine)
    async with state.database.provider(tenant_id) as session:
        await engine.resume(session, name, actor=staff.actor, reason=_text(data, "reason", 500))
    return _see(f"{_base(console_tenant)}/routines")


async def _run_context(request: Request, state: State, tenant: Tenant, run_id: uuid.UUID) -> dict[str, Any]:
    locale = console_locale(request)
    async with state.database.provider(tenant.id) as session:
        detail = await routine_queries.run_detail(session, run_id, item_status=ItemStatus.FAILED,
                                                  limit=FAILED_ITEMS_SHOWN)
    line = describe_run(detail.run, get_routine(detail.run.routine), locale, tenant.timezone, clock.now())
    return {"line": line, "detail": detail, "poll": RUN_POLL if line.active else None}


@get("/tenants/{tenant_id:uuid}/routine-runs/{run_id:uuid}", name="console:tenant_run")
async def run_page(request: Request, tenant_id: uuid.UUID, run_id: uuid.UUID, staff: StaffUser,
                   console_tenant: Tenant, state: State) -> Response:
    context = await _run_context(request, state, console_tenant, run_id)
    return _page_of(request, console_tenant, "console/tenant/run.html", "routines", **context)


@get("/tenants/{tenant_id:uuid}/routine-runs/{run_id:uuid}/progress", name="console:tenant_run_progress")
async def run_progress(request: Request, tenant_id: uuid.UUID, run_id: uuid.UUID, staff: StaffUser,
                       console_tenant: Tenant, state: State) -> Response:
    """The run's progress block alone: what the page's htmx poll swaps in; it stops polling once finished."""
    context = await _run_context(request, state, console_tenant, run_id)
    return _page_of(request, console_tenant, "console/tenant/run_progress.html", "routines", **context)


@post("/tenants/{tenant_id:uuid}/routine-runs/{run_id:uuid}/retry", name="console:tenant_run_retry")
async def run_retry(tenant_id: uuid.UUID, run_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                    state: State, data: Form) -> Response:
    async with state.database.provider(tenant_id) as session:
        run = await engine.retry_failed(session, run_id, actor=staff.actor, reason=_text(data, "reason", 500))
    return _see(f"{_base(console_tenant)}/routine-runs/{run.id}")


# --- dead letters, unmatched events, replays ------------------------------------------------------

@get("/tenants/{tenant_id:uuid}/dead-letters", name="console:tenant_dead_letters")
async def dead_letters(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                       state: State, kind: str = "events", cursor: str = "") -> Response:
    kind = kind if kind in DEAD_LETTER_TABS else "events"
    query, model = {"events": (letters.failed_events_query(), Event),
                    "messages": (letters.dead_messages_query(), OutboundMessage),
                    "webhooks": (letters.dead_webhooks_query(), WebhookDelivery)}[kind]
    async with state.database.provider(tenant_id) as session:
        counts = await letters.counts(session)
        page = await paginate(session, query, model, sorts={LETTER_SORT[kind][0]: LETTER_SORT[kind][1]},
                              sort=f"-{LETTER_SORT[kind][0]}", limit=PAGE, cursor=cursor or None)
        urls = await letters.endpoint_urls(session, {d.endpoint_id for d in page.items}) if kind == "webhooks" else {}
    return _page_of(request, console_tenant, "console/tenant/dead_letters.html", "dead_letters", kind=kind,
                    counts=counts, page=page, urls=urls, item_kind={"events": "event", "messages": "message",
                                                                     "webhooks": "webhook"}[kind],
                    window_set="dead_letters")


@get("/tenants/{tenant_id:uuid}/unmatched", name="console:tenant_unmatched")
async def unmatched(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant, state: State,
                    cursor: str = "") -> Response:
    async with state.database.provider(tenant_id) as session:
        counts = await letters.counts(session)
        page = await paginate(session, letters.unmatched_events_query(), Event, sorts={"received_at": Event.received_at},
                              sort="-received_at", limit=PAGE, cursor=cursor or None)
    return _page_of(request, console_tenant, "console/tenant/dead_letters.html", "unmatched", kind="unmatched",
                    counts=counts, page=page, urls={}, item_kind="event", window_set="unmatched")


def _local_time(value: str | None, field: str, tz: str) -> datetime | None:
    """A ``datetime-local`` field (the tenant's wall clock) or an ISO time with its offset."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(FieldError(field, "expected a date and time (YYYY-MM-DDTHH:MM)")) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))


@post("/tenants/{tenant_id:uuid}/replays", name="console:tenant_replay")
async def replay(tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant, state: State,
                 data: Form) -> Response:
    """One form, three ways: a row's own button (``one``), the checked rows (``items``), or a window
    (``since``/``until`` in the tenant's time zone, ``what`` = dead_letters | unmatched)."""
    reason = _text(data, "reason", 1000)
    one = _text(data, "one", 80)
    async with state.database.provider(tenant_id) as session:
        if one:
            ref = replays.ItemRef.parse(one, "one")
            done = await replays.replay_one(session, ref.kind, ref.id, acting=staff.actor, reason=reason)
        elif _text(data, "mode", 16) == "window":
            done = await replays.replay_window(
                session, since=_local_time(_text(data, "since", 40), "since", console_tenant.timezone),
                until=_local_time(_text(data, "until", 40), "until", console_tenant.timezone),
                what=_text(data, "what", 16) or "dead_letters", acting=staff.actor, reason=reason)
        else:
            refs = [replays.ItemRef.parse(value) for value in _values(data, "items")[:replays.MAX_SELECTION + 1]]
            done = await replays.replay_selection(session, refs, acting=staff.actor, reason=reason)
    return _see(f"{_base(console_tenant)}/replays/{done.id}")


async def _replay_context(state: State, tenant: Tenant, replay_id: uuid.UUID) -> dict[str, Any]:
    async with state.database.provider(tenant.id) as session:
        outcome = await letters.replay_outcome(session, replay_id, limit=REPLAY_ITEMS_SHOWN)
    return {"outcome": outcome, "replay": outcome.replay, "poll": None if outcome.settled else POLL}


@get("/tenants/{tenant_id:uuid}/replays", name="console:tenant_replays")
async def replay_list(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                      state: State, cursor: str = "") -> Response:
    page = await _paged(state, console_tenant, letters.replays_query(), Replay, ("created_at", Replay.created_at),
                        cursor)
    return _page_of(request, console_tenant, "console/tenant/replays.html", "dead_letters", page=page)


@get("/tenants/{tenant_id:uuid}/replays/{replay_id:uuid}", name="console:tenant_replay_page")
async def replay_page(request: Request, tenant_id: uuid.UUID, replay_id: uuid.UUID, staff: StaffUser,
                      console_tenant: Tenant, state: State) -> Response:
    context = await _replay_context(state, console_tenant, replay_id)
    return _page_of(request, console_tenant, "console/tenant/replay.html", "dead_letters", **context)


@get("/tenants/{tenant_id:uuid}/replays/{replay_id:uuid}/progress", name="console:tenant_replay_progress")
async def replay_progress(request: Request, tenant_id: uuid.UUID, replay_id: uuid.UUID, staff: StaffUser,
                          console_tenant: Tenant, state: State) -> Response:
    context = await _replay_context(state, console_tenant, replay_id)
    return _page_of(request, console_tenant, "console/tenant/replay_progress.html", "dead_letters", **context)


# --- outbound deliveries --------------------------------------------------------------------------

@get("/tenants/{tenant_id:uuid}/deliveries", name="console:tenant_deliveries")
async def deliveries(request: Request, tenant_id: uuid.UUID, staff: StaffUser, console_tenant: Tenant,
                     state: State, status: str = "", channel: str = "", cursor: str = "") -> Response:
    """Outbound messages by status and channel; the webhook channel lists the deliveries to each endpoint
    (the attempts that left for the company's systems)."""
    status = status if status in letters.STATUSES else ""
    channel = channel if channel in letters.CHANNELS else ""
    async with state.database.provider(tenant_id) as session:
        if channel == "webhook":
            page = await paginate(session, letters.webhook_deliveries_query(status=status), WebhookDelivery,
                                  sorts={"created_at": WebhookDelivery.created_at}, sort="-created_at", limit=PAGE,
                                  cursor=cursor or None)
            urls = await letters.endpoint_urls(session, {d.endpoint_id for d in page.items})
        else:
            page = await paginate(session, letters.messages_query(status=status, channel=channel), OutboundMessage,
                                  sorts={"created_at": OutboundMessage.created_at}, sort="-created_at", limit=PAGE,
                                  cursor=cursor or None)
            urls = {}
    return _page_of(request, console_tenant, "console/tenant/deliveries.html", "deliveries", page=page, urls=urls,
                    status=status, channel=channel, statuses=letters.STATUSES, channels=letters.CHANNELS)


@get("/tenants/{tenant_id:uuid}/deliveries/{message_id:uuid}", name="console:tenant_delivery")
async def delivery(request: Request, tenant_id: uuid.UUID, message_id: uuid.UUID, staff: StaffUser,
                   console_tenant: Tenant, state: State) -> Response:
    async with state.database.provider(tenant_id) as session:
        message = await get_owned(session, OutboundMessage, message_id)
        webhooks = (await letters.webhook_deliveries_of(session, {message.id})).get(message.id, [])
    return _page_of(request, console_tenant, "console/tenant/delivery.html", "deliveries", message=message,
                    webhooks=webhooks, sent=_json(message.payload), answered=_json(message.response))


def _json(value: Any) -> str:
    """As the receiver reads it (accents as themselves); the template escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str) if value else ""


ROUTES = [home, customers, customer, routines_page, routine_start, routine_pause, routine_resume, run_page,
          run_progress, run_retry, dead_letters, unmatched, replay, replay_list, replay_page, replay_progress,
          deliveries, delivery]

__all__ = ["ROUTES"]
