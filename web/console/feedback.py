"""The feedback inbox at ``/staff/feedback``: the notes and feedback front-office users record on customers,
across every company the staff member serves, newest first, filterable by company, kind, state and text; one
item at ``/staff/feedback/<tenant_id>/<item_id>`` with its replies, where staff mark it read or acknowledged and
answer. The answer lands on the customer's timeline, which the front office reads on the portal.

The list is one set-based query through ``Database.system()`` filtered to the served companies
(``tenants/timeline/queries.py``); each change goes through ``Database.provider(tenant_id)`` behind the door
(``console_tenant``): an operator's request for an item of a company not theirs is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect

from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.staff.service import assigned_tenant_ids
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.timeline.models import FeedbackState
from backoffice.tenants.timeline.queries import feedback_filter, feedback_inbox, feedback_thread
from backoffice.tenants.timeline.service import NOTE_KINDS, mark_feedback, reply_to_feedback
from backoffice.web.console.onboarding import field_errors
from backoffice.web.console.people import served_tenant_by_slug
from backoffice.web.console.render import gettext_for, render
from backoffice.web.console.session import StaffUser

STATES = [state.value for state in FeedbackState]


async def served_scope(state: State, staff: StaffUser) -> list[uuid.UUID] | None:
    """The companies whose data the staff member reads: None (every one) for a provider admin."""
    if staff.is_admin:
        return None
    async with state.database.system() as session:
        return await assigned_tenant_ids(session, staff)  # type: ignore[arg-type]


@get("/feedback", name="console:feedback")
async def inbox(request: Request, staff: StaffUser, state: State, company: str = "", kind: str = "", q: str = "",
                cursor: str | None = None) -> Response:
    # ``?state=``: read from the query itself, since Litestar gives a handler's ``state`` parameter the app's.
    feedback_state = request.query_params.get("state") or ""
    company = company.strip()
    rows, next_cursor, filter_errors, status_code = [], None, {}, 200
    try:
        tenant = await served_tenant_by_slug(state.database, staff, company, "company")
        filters = feedback_filter(tenant=str(tenant.id) if tenant else "", kind=kind, state=feedback_state, text=q)
        scope = await served_scope(state, staff)
        async with state.database.system() as session:
            rows, next_cursor = await feedback_inbox(session, tenant_ids=scope, filters=filters, cursor=cursor)
    except ValidationFailed as error:  # the page again, with each problem under its filter's name
        filter_errors, status_code = field_errors(request, error), error.status
    current = {"company": company, "kind": kind, "state": feedback_state, "q": q}
    more = "/staff/feedback?" + urlencode({**{k: v for k, v in current.items() if v}, "cursor": next_cursor}) \
        if next_cursor else None
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "console/feedback.html", status_code=status_code, filter_errors=filter_errors, rows=rows,
                  more=more, kinds=NOTE_KINDS, states=STATES, current=current, here=here, paged=bool(cursor))


def _back(form: dict[str, str], tenant_id: uuid.UUID, item_id: uuid.UUID) -> str:
    """Where to go after an action: the inbox page it came from, else the item."""
    target = form.get("next", "")
    if target.startswith("/staff/feedback") and "//" not in target and "\\" not in target:
        return target
    return f"/staff/feedback/{tenant_id}/{item_id}"


async def _form(request: Request) -> dict[str, str]:
    return {key: value for key, value in (await request.form()).items() if isinstance(value, str)}


async def _item_page(request: Request, state: State, tenant: Tenant, item_id: uuid.UUID, *, status_code: int = 200,
                     errors: dict[str, str] | None = None, text: str = "", done: str | None = None) -> Response:
    _ = gettext_for(request)
    async with state.database.provider(tenant.id) as session:
        thread = await feedback_thread(session, item_id)
    notices = {"replied": _("Reply recorded on the customer's timeline."), "marked": _("State changed.")}
    return render(request, "console/feedback_item.html", status_code=status_code, tenant=tenant, thread=thread,
                  errors=errors or {}, text=text, notice=notices.get(done or ""), states=STATES)


@get("/feedback/{tenant_id:uuid}/{item_id:uuid}", name="console:feedback_item")
async def item_page(request: Request, tenant_id: uuid.UUID, item_id: uuid.UUID, console_tenant: Tenant,
                    state: State, done: str | None = None) -> Response:
    return await _item_page(request, state, console_tenant, item_id, done=done)


@post("/feedback/{tenant_id:uuid}/{item_id:uuid}/state", name="console:feedback_state")
async def change_state(request: Request, tenant_id: uuid.UUID, item_id: uuid.UUID, console_tenant: Tenant,
                       staff: StaffUser, state: State) -> Response:
    form = await _form(request)
    async with state.database.provider(console_tenant.id) as session:
        await mark_feedback(session, item_id, state=form.get("state", ""), acting=staff.actor)
    target = _back(form, console_tenant.id, item_id)
    if target == f"/staff/feedback/{console_tenant.id}/{item_id}":
        target += "?done=marked"
    return Redirect(target, status_code=303)


@post("/feedback/{tenant_id:uuid}/{item_id:uuid}/reply", name="console:feedback_reply")
async def reply(request: Request, tenant_id: uuid.UUID, item_id: uuid.UUID, console_tenant: Tenant,
                staff: StaffUser, state: State) -> Response:
    form = await _form(request)
    try:
        async with state.database.provider(console_tenant.id) as session:
            await reply_to_feedback(session, item_id, text=form.get("text", ""), author_name=staff.name,
                                    acting=staff.actor)
    except ValidationFailed as error:
        return await _item_page(request, state, console_tenant, item_id, status_code=error.status,
                                errors=field_errors(request, error), text=form.get("text", ""))
    return Redirect(f"/staff/feedback/{console_tenant.id}/{item_id}?done=replied", status_code=303)


ROUTES: list[Any] = [inbox, item_page, change_state, reply]
