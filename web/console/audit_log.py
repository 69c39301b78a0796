"""The audit log at ``/staff/audit``: who did what, to what, where and why, across the companies the staff member
serves (provider admins: every company and the provider-wide entries), searchable by actor, action, company and
time, paged by cursor; ``/staff/audit/export.csv`` streams the current filter as CSV, page by page, with cells
that a spreadsheet would run as formulas escaped (``platform/audit/export.py``).

Both read through ``platform/audit/queries.search_audit``, the query ``GET /api/v1/staff/audit`` runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.response import Stream

from backoffice.platform.audit.export import csv_text
from backoffice.platform.audit.queries import PAGE_MAX, PROVIDER, AuditFilter, AuditPage, audit_filter, search_audit
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.routines.queries import tenants_by_id
from backoffice.web.console.feedback import served_scope
from backoffice.web.console.onboarding import field_errors
from backoffice.web.console.people import served_tenant_by_slug
from backoffice.web.console.render import render
from backoffice.web.console.session import StaffUser


async def _filters(state: State, staff: StaffUser, *, actor: str, action: str, company: str, since: str,
                   until: str) -> AuditFilter:
    company = company.strip()
    if company == PROVIDER:
        if not staff.is_admin:
            raise ValidationFailed(FieldError("company", "no company you serve has this slug"))
        return audit_filter(actor=actor, action=action, tenant=PROVIDER, since=since, until=until)
    tenant = await served_tenant_by_slug(state.database, staff, company, "company")
    return audit_filter(actor=actor, action=action, tenant=tenant.id if tenant else None, since=since, until=until)


@get("/audit", name="console:audit")
async def audit_page(request: Request, staff: StaffUser, state: State, actor: str = "", action: str = "",
                     company: str = "", since: str = "", until: str = "", cursor: str | None = None) -> Response:
    page, names, filter_errors, status_code = AuditPage([], None), {}, {}, 200
    try:
        filters = await _filters(state, staff, actor=actor, action=action, company=company, since=since,
                                 until=until)
        scope = await served_scope(state, staff)
        async with state.database.system() as session:
            page = await search_audit(session, tenant_ids=scope, filters=filters, cursor=cursor)
            names = await tenants_by_id(session, {e.tenant_id for e in page.entries if e.tenant_id})
    except ValidationFailed as error:  # the page again, with each problem under its filter's name
        filter_errors, status_code = field_errors(request, error), error.status
    current = {k: v for k, v in {"actor": actor, "action": action, "company": company.strip(), "since": since,
                                 "until": until}.items() if v}
    more = "/staff/audit?" + urlencode({**current, "cursor": page.next_cursor}) if page.next_cursor else None
    export = "/staff/audit/export.csv" + (f"?{urlencode(current)}" if current else "")
    return render(request, "console/audit.html", status_code=status_code, filter_errors=filter_errors,
                  entries=page.entries, names=names, more=more, export=export,
                  current=current, paged=bool(cursor), provider=PROVIDER)


@get("/audit/export.csv", name="console:audit_export")
async def audit_export(staff: StaffUser, state: State, actor: str = "", action: str = "", company: str = "",
                       since: str = "", until: str = "") -> Response:
    # Filters are checked before the first byte goes out: a bad one is a 422, not a broken download.
    filters = await _filters(state, staff, actor=actor, action=action, company=company, since=since, until=until)
    scope = await served_scope(state, staff)

    async def lines() -> AsyncIterator[str]:
        cursor, header = None, True
        while True:
            async with state.database.system() as session:  # one short transaction per page
                page = await search_audit(session, tenant_ids=scope, filters=filters, cursor=cursor, limit=PAGE_MAX)
            yield csv_text(page.entries, header=header)
            header = False
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    return Stream(lines(), media_type="text/csv; charset=utf-8",
                  headers={"content-disposition": 'attachment; filename="audit.csv"', "cache-control": "no-store",
                           "x-content-type-options": "nosniff"})


ROUTES: list[Any] = [audit_page, audit_export]
