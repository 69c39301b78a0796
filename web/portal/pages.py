"""The portal's pages: dashboard, inbox, tasks, customers and each customer's timeline.

Controllers stay thin: they read the form, call a service on the request's tenant session, and render.
Every id in a URL is looked up through the tenant door, so another tenant's id is a 404 like a missing one.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.db.session import NotFound, get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.customers.file import customer_file
from backoffice.tenants.customers.models import Customer, Lifecycle
from backoffice.tenants.customers.queries import SEARCH_MAX, customer_search_query
from backoffice.tenants.notifications import service as notifications
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.notifications.reading import Shown, company_wording, in_reader_locale, written_in
from backoffice.tenants.policies.templates import format_money
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.tasks import service as tasks
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.timeline import service as timeline
from backoffice.tenants.users.models import TenantUser
from backoffice.tenants.users.queries import user_names
from backoffice.web.portal.auth import Form, PortalUser
from backoffice.web.portal.dashboard import bar_chart, figures
from backoffice.web.portal.refusals import readable_errors
from backoffice.web.portal.render import base_path, page, pick_locale, translations
from backoffice.web.portal.wording import said_reason


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(object, value) from None


def _back(request: Request, tenant: Tenant, path: str) -> Redirect:
    return Redirect(f"{base_path(request, tenant)}{path}", status_code=303)


@get("/dashboard", name="portal:dashboard")
async def dashboard(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession) -> Response:
    locale = pick_locale(request, tenant)
    _ = translations(locale).gettext
    numbers = await figures(db, tenant.timezone)
    chart = bar_chart([(label, cents, format_money(cents, locale)) for label, cents, _n in numbers.overdue_by_age],
                      title=_("Overdue amount by age (days)"))
    unread = await notifications.unread_count(db, user.id)
    mine = await tasks.list_tasks(db, assignee_id=user.id, limit=5)
    return page(request, tenant, "portal/dashboard.html", user=user, figures=numbers, chart=Markup(chart),
                unread=unread, tasks=mine, section="dashboard")


async def _shown(request: Request, tenant: Tenant, db: AsyncSession,
                 items: list[Notification]) -> dict[uuid.UUID, Shown]:
    """Each notification's title and body in the reader's locale (tenants/notifications/reading.py)."""
    locale = pick_locale(request, tenant)
    gettext = translations(locale).gettext
    # The company's templates are read only when some notification was written in another language.
    foreign = any(written_in(n, tenant.locale) != locale for n in items)
    wording = await company_wording(db) if foreign else {}
    return {n.id: in_reader_locale(n, locale, wording, company_locale=tenant.locale,
                                   reason=said_reason(n.detail, gettext, locale)) for n in items}


@get("/inbox", name="portal:inbox")
async def inbox(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, show: str = "all") -> Response:
    items = await notifications.inbox(db, user.id, unread_only=show == "unread")
    return page(request, tenant, "portal/inbox.html", user=user, items=items, show=show, section="inbox",
                shown=await _shown(request, tenant, db, items), unread=await notifications.unread_count(db, user.id))


@get("/inbox/poll", name="portal:inbox_poll")
async def inbox_poll(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession) -> Response:
    """What the page's small polling script asks every few seconds: this user's unread count and newest."""
    latest = await notifications.inbox(db, user.id, unread_only=True, limit=5)
    shown = await _shown(request, tenant, db, latest)
    body: dict[str, Any] = {"unread": await notifications.unread_count(db, user.id),
                            "latest": [{"id": str(n.id), "title": shown[n.id].title, "lang": shown[n.id].lang}
                                       for n in latest]}
    return Response(body, headers={"cache-control": "no-store"})


@get("/inbox/{notification_id:str}", name="portal:notification")
async def notification_detail(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession,
                              notification_id: str) -> Response:
    item = await notifications.get_notification(db, user.id, _uuid(notification_id))
    customer = await db.get(Customer, (tenant.id, item.customer_id)) if item.customer_id else None
    return page(request, tenant, "portal/notification.html", user=user, item=item, detail=item.detail or {},
                shown=(await _shown(request, tenant, db, [item]))[item.id], customer=customer, section="inbox",
                unread=await notifications.unread_count(db, user.id))


@post("/inbox/{notification_id:str}/read", name="portal:notification_read")
async def notification_read(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession,
                            notification_id: str) -> Response:
    await notifications.mark_read(db, user.id, _uuid(notification_id))
    return _back(request, tenant, "/inbox")


@get("/tasks", name="portal:tasks")
async def task_list(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, whose: str = "mine",
                    status: str = "open") -> Response:
    # The filter is "whose", not "scope": Litestar hands a parameter named scope the ASGI scope itself.
    wanted = None if status == "all" else TaskStatus(status) if status in TaskStatus._value2member_map_ else TaskStatus.OPEN
    items = await tasks.list_tasks(db, assignee_id=user.id if whose != "all" else None, status=wanted)
    people = await user_names(db)
    return page(request, tenant, "portal/tasks.html", user=user, items=items, whose=whose, status=status,
                people=people, section="tasks", unread=await notifications.unread_count(db, user.id))


@get("/tasks/{task_id:str}", name="portal:task")
async def task_detail(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, task_id: str) -> Response:
    return await _task_page(request, tenant, user, db, _uuid(task_id))


async def _task_page(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, task_id: uuid.UUID, *,
                     unticked: list[str] | None = None, status_code: int = 200) -> Response:
    task = await get_owned(db, Task, task_id)
    customer = await db.get(Customer, (tenant.id, task.customer_id)) if task.customer_id else None
    assignee = await db.get(TenantUser, (tenant.id, task.assignee_id))
    return page(request, tenant, "portal/task.html", user=user, task=task, customer=customer, assignee=assignee,
                unticked=unticked, status_code=status_code, section="tasks",
                unread=await notifications.unread_count(db, user.id))


@post("/tasks/{task_id:str}/checklist/{index:int}", name="portal:task_tick")
async def task_tick(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, task_id: str, index: int,
                    data: Form) -> Response:
    await tasks.tick_checklist_item(db, _uuid(task_id), index, done=data.get("done") == "1", acting=user.actor)
    return _back(request, tenant, f"/tasks/{task_id}")


@post("/tasks/{task_id:str}/complete", name="portal:task_complete")
async def task_complete(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, task_id: str,
                        data: Form) -> Response:
    try:
        await tasks.complete_task(db, _uuid(task_id), acting=user.actor,
                                  unticked_confirmed=data.get("unticked_confirmed") == "1")
    except tasks.UntickedItems as open_items:  # ask first: which items are open, complete anyway or go back
        return await _task_page(request, tenant, user, db, _uuid(task_id), unticked=open_items.items,
                                status_code=409)
    return _back(request, tenant, f"/tasks/{task_id}")


@get("/customers", name="portal:customers")
async def customer_list(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, stage: str = "",
                        q: str = "") -> Response:
    term = q.replace("\x00", "").strip()[:SEARCH_MAX]
    query = customer_search_query(term, stage).order_by(Customer.name).limit(500)
    items = list((await db.execute(query)).scalars())
    return page(request, tenant, "portal/customers.html", user=user, items=items, stage=stage, q=term,
                states=[s.value for s in Lifecycle], section="customers",
                unread=await notifications.unread_count(db, user.id))


async def _customer_page(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, customer_id: str,
                         *, status_code: int = 200, show: str = "all", **extra: Any) -> Response:
    customer = await get_owned(db, Customer, _uuid(customer_id))
    show = show if show in timeline.TIMELINE_FILTERS else "all"
    entries = await timeline.timeline(db, customer.id, show=show)
    file = await customer_file(db, customer.id)
    authors = await user_names(db)
    open_tasks = await tasks.list_tasks(db, assignee_id=None, customer_id=customer.id)
    return page(request, tenant, "portal/customer.html", status_code=status_code, user=user, customer=customer,
                entries=entries, authors=authors, tasks=open_tasks, file=file, show=show, section="customers",
                unread=await notifications.unread_count(db, user.id), **extra)


@get("/customers/{customer_id:str}", name="portal:customer")
async def customer_detail(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession,
                          customer_id: str, show: str = "all") -> Response:
    return await _customer_page(request, tenant, user, db, customer_id, show=show)


@post("/customers/{customer_id:str}/notes", name="portal:customer_note")
async def customer_note(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, customer_id: str,
                        data: Form) -> Response:
    try:
        await timeline.add_note(db, _uuid(customer_id), text=str(data.get("text", "")), author_id=user.id,
                                label=str(data.get("label") or "note"), acting=user.actor)
    except ValidationFailed as error:
        _ = translations(pick_locale(request, tenant)).gettext
        labels = {"text": _("What did you learn from the customer?"), "label": _("Kind")}
        errors = readable_errors(error.errors, _, labels)
        return await _customer_page(request, tenant, user, db, customer_id, status_code=422, errors=errors,
                                    note_text=str(data.get("text", "")))
    return _back(request, tenant, f"/customers/{customer_id}#timeline")


@get("/logo", name="portal:logo")
async def logo(tenant: Tenant) -> Response:
    if not tenant.logo:
        raise NotFound(Tenant, "logo")
    return Response(tenant.logo, media_type=tenant.logo_content_type or "application/octet-stream",
                    headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff",
                             "content-security-policy": "default-src 'none'"})


@get("/{rest:path}", name="portal:unknown_page")
async def unknown_page(tenant: Tenant, rest: str) -> Response:
    """Any other address under a company: its branded "page not found" (the tenant resolved first, so an
    unknown company is still "company not found", and a suspended one still says so)."""
    raise NotFoundException(f"no page {rest!r} in the portal")


PAGE_HANDLERS = [unknown_page, dashboard, inbox, inbox_poll, notification_detail, notification_read, task_list, task_detail, task_tick,
                 task_complete, customer_list, customer_detail, customer_note, logo]
