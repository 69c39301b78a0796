"""The overview at ``/staff/``: every tenant the staff member serves, one dense line each, worst first; the
company list at ``/staff/tenants``; one tenant's line with its 14-day chart at ``/staff/overview/tenants/<id>``;
and the rows' live refresh (htmx polls ``/staff/overview/live`` for the lines on the page).

The numbers come from ``tenants/overview/queries.py`` and ``connectors/overview.py`` (one statement per
panel, the system session with the served-tenants filter); this module sorts, filters, pages and draws.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Redirect
from markupsafe import Markup

from backoffice.connectors.overview import failing_connectors, failing_query
from backoffice.platform import clock
from backoffice.platform.db.session import NotFound
from backoffice.tenants.overview import queries
from backoffice.tenants.policies.templates import format_money
from backoffice.tenants.registry.models import Tenant
from backoffice.web.console.charts import activity_chart, sparkline
from backoffice.web.console.render import console_locale, gettext_for, render
from backoffice.web.console.session import StaffUser

PAGE_SIZE = 50
LIST_PAGE_SIZE = 200
LIVE_SECONDS = 15
MAX_LIVE_IDS = PAGE_SIZE


# Sort keys: each column, and "worst" (the default: Line.severity, computed by the database).
SORTS = queries.SORT_KEYS


def short_age(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@dataclass(frozen=True)
class Query:
    q: str = ""
    sort: str = "worst"
    order: str = "desc"
    problems: bool = False
    page: int = 1

    @classmethod
    def parse(cls, q: str | None, sort: str | None, order: str | None, problems: str | None, page: str | None) -> Query:
        sort_key = sort if sort in SORTS else "worst"
        default_order = "asc" if sort_key == "name" else "desc"
        try:
            number = max(1, min(10_000, int(page or 1)))
        except ValueError:
            number = 1
        return cls((q or "").strip()[:100], sort_key, order if order in ("asc", "desc") else default_order,
                   problems in ("1", "on", "true"), number)

    def url(self, **changes: Any) -> str:
        values = {"q": self.q, "sort": self.sort, "order": self.order, "problems": "1" if self.problems else "",
                  "page": str(self.page), **{k: str(v) for k, v in changes.items()}}
        return "/staff/?" + urlencode({k: v for k, v in values.items() if v and not (k == "page" and v == "1")})

    def sort_url(self, key: str) -> str:
        if self.sort == key:
            return self.url(sort=key, order="asc" if self.order == "desc" else "desc", page=1)
        return self.url(sort=key, order="asc" if key == "name" else "desc", page=1)


async def _lines(state: State, staff: StaffUser, now: datetime, only: list[uuid.UUID] | None = None
                 ) -> list[queries.Line]:
    served = queries.served_ids(staff.id, all_tenants=staff.is_admin)
    async with state.database.system() as session:
        result = await queries.lines(session, served, now, only)
        connectors = await failing_connectors(session, served, state.settings, only)
    for line in result:
        health = connectors.get(line.tenant.id)
        if health:
            line.connectors_failing, line.circuits_open = health.failing, health.circuits_open
            line.connector_error = f"{health.last_kind}: {health.last_error}" if health.last_error else health.last_kind
    return result


async def _with_connectors(state: State, served, page: list[queries.Line]) -> None:
    """The circuits and the newest error of the page's failing connectors (the count came with the page)."""
    ids = [line.tenant.id for line in page if line.connectors_failing]
    if not ids:
        return
    async with state.database.system() as session:
        connectors = await failing_connectors(session, served, state.settings, ids)
    for line in page:
        health = connectors.get(line.tenant.id)
        if health:
            line.circuits_open = health.circuits_open
            line.connector_error = f"{health.last_kind}: {health.last_error}" if health.last_error else health.last_kind


async def _with_charts(state: State, page: list[queries.Line], now: datetime, locale: str) -> None:
    async with state.database.system() as session:
        charts = await queries.activity(session, [line.tenant.id for line in page], now)
    for line in page:
        line.activity = charts.get(line.tenant.id)


def _row_context(request: Request, now: datetime) -> dict[str, Any]:
    locale = console_locale(request)
    _ = gettext_for(request)
    return {
        "now": now, "age": lambda line: short_age(line.waiting_age(now)),
        "money": lambda cents: format_money(cents, locale),
        "spark": lambda line: Markup(sparkline(line.activity, _)) if line.activity else "",
        "live_seconds": LIVE_SECONDS,
    }


@get("/", name="console:overview")
async def overview_page(request: Request, staff: StaffUser, state: State, q: str | None = None,
                        sort: str | None = None, order: str | None = None, problems: str | None = None,
                        page: str | None = None) -> Response:
    now = clock.now()
    query = Query.parse(q, sort, order, problems, page)
    served = queries.served_ids(staff.id, all_tenants=staff.is_admin)
    async with state.database.system() as session:
        result = await queries.page(session, served, now, connectors=failing_query(served), q=query.q,
                                    problems_only=query.problems, sort=query.sort, descending=query.order == "desc",
                                    limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE)
    pages = max(1, -(-result.shown // PAGE_SIZE))
    if query.page > pages and result.shown:  # past the end (an old link): the last page
        return Redirect(query.url(page=pages), status_code=303)
    on_page = result.lines
    await _with_connectors(state, served, on_page)
    await _with_charts(state, on_page, now, console_locale(request))
    live = "/staff/overview/live?" + urlencode([("ids", str(line.tenant.id)) for line in on_page])
    return render(request, "console/overview.html", lines=on_page, query=query, totals=result.totals,
                  shown=result.shown, page=min(query.page, pages), pages=pages, live_url=live,
                  **_row_context(request, now))


@get("/overview/live", name="console:overview_live")
async def overview_live(request: Request, staff: StaffUser, state: State, ids: list[str] | None = None) -> Response:
    """The rows on the page, fresh: the panels filtered to these tenants (and, as always, to the served ones:
    an id the staff member does not serve is simply not there)."""
    wanted: list[uuid.UUID] = []
    for value in (ids or [])[:MAX_LIVE_IDS]:
        try:
            wanted.append(uuid.UUID(value))
        except ValueError:
            continue
    now = clock.now()
    found = {line.tenant.id: line for line in await _lines(state, staff, now, only=wanted)} if wanted else {}
    ordered = [found[i] for i in wanted if i in found]
    await _with_charts(state, ordered, now, console_locale(request))
    return render(request, "console/overview_rows.html", lines=ordered, live_url=request.url.path + (
        f"?{request.url.query}" if request.url.query else ""), **_row_context(request, now))


@get("/overview/tenants/{tenant_id:uuid}", name="console:overview_tenant")
async def overview_tenant(request: Request, staff: StaffUser, state: State, console_tenant: Tenant) -> Response:
    """One tenant's line of the overview, with its 14-day chart drawn large."""
    now = clock.now()
    found = await _lines(state, staff, now, only=[console_tenant.id])
    if not found:  # unassigned between the door and here
        raise NotFound(Tenant, console_tenant.id)
    line = found[0]
    await _with_charts(state, [line], now, console_locale(request))
    _ = gettext_for(request)
    chart = Markup(activity_chart(line.activity, _, console_locale(request))) if line.activity else ""
    return render(request, "console/overview_tenant.html", tenant=console_tenant, line=line, chart=chart,
                  **_row_context(request, now))


@get("/tenants", name="console:tenants")
async def tenant_list(request: Request, staff: StaffUser, state: State, q: str | None = None,
                      page: str | None = None) -> Response:
    served = queries.served_ids(staff.id, all_tenants=staff.is_admin)
    async with state.database.system() as session:
        tenants = await queries.tenant_rows(session, served)
    needle = (q or "").strip().lower()
    if needle:
        tenants = [t for t in tenants if needle in t.display_name.lower() or needle in t.slug]
    pages = max(1, -(-len(tenants) // LIST_PAGE_SIZE))
    current = min(Query.parse(None, None, None, None, page).page, pages)
    shown = tenants[(current - 1) * LIST_PAGE_SIZE: current * LIST_PAGE_SIZE]

    def page_url(number: int) -> str:
        return "/staff/tenants?" + urlencode({k: v for k, v in (("q", q or ""), ("page", str(number))) if v})

    return render(request, "console/tenants.html", tenants=shown, q=q or "", total=len(tenants), page=current,
                  pages=pages, page_url=page_url)


ROUTES = [overview_page, overview_live, overview_tenant, tenant_list]
