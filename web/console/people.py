"""The people board at ``/staff/people``: who serves which company, since when, with the open routine work each
holds there; and one person in one company at ``/staff/people/<tenant_id>/<staff_id>``, where a provider admin
demobilises them (optionally handing their open work over in the same action) or hands the work over.

Provider admins act; an operator sees their own rows only (another person's is a 403; a company not theirs is
the door's 404). Every change is the service call the staff API and the CLI make
(``tenants/staff/service.py``), with its reason, audited there. Demobilising ends access at once: every
console request passes the door again (``door.py``), so the person's open session gets a 404 for the company
on its next request.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect

from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.input_rules import text_problem
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.service import assign_staff, can_act_on, hand_over, unassign_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.registry.service import get_tenant_by_slug
from backoffice.tenants.staff.queries import active_assignment_since, list_staff, people_board, serving_staff
from backoffice.tenants.routines.catalogue import UnknownRoutine, get_routine
from backoffice.tenants.routines.handover import OPEN_WORK, open_runs
from backoffice.web.console.onboarding import field_errors
from backoffice.web.console.render import console_locale, gettext_for, render
from backoffice.web.console.session import StaffUser


def _require_admin(staff: StaffUser) -> None:
    if not staff.is_admin:
        raise PermissionDeniedException(detail="Only provider admins change who serves a company")


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip()[:64])
    except (ValueError, AttributeError):
        raise ValidationFailed(FieldError(field, "expected a staff member from the list")) from None


async def _form(request: Request) -> dict[str, str]:
    return {key: value.strip() for key, value in (await request.form()).items() if isinstance(value, str)}


async def served_tenant_by_slug(database, staff: StaffUser, slug: str, field: str) -> Tenant | None:
    """The company a filter names by slug, if this staff member serves it; a missing and a foreign company are
    refused alike, naming the field (so the answer says nothing about companies the person does not serve)."""
    slug = slug.strip().lower()
    if not slug:
        return None
    problem = text_problem(slug, 63)
    if problem:
        raise ValidationFailed(FieldError(field, problem))
    async with database.system() as session:
        try:
            tenant = await get_tenant_by_slug(session, slug)
        except LookupError:
            tenant = None
        if tenant is None or not await can_act_on(session, staff, tenant.id):  # type: ignore[arg-type]
            raise ValidationFailed(FieldError(field, "no company you serve has this slug"))
    return tenant


async def _board_page(request: Request, state: State, staff: StaffUser, *, person: str = "", company: str = "",
                      status_code: int = 200, errors: dict[str, str] | None = None,
                      form: dict[str, str] | None = None, done: str | None = None) -> Response:
    _ = gettext_for(request)
    filter_errors: dict[str, str] = {}
    try:
        person_id = _uuid(person, "person") if person.strip() else None
        tenant = await served_tenant_by_slug(state.database, staff, company, "company")
    except ValidationFailed as error:
        person_id, tenant, filter_errors, status_code = None, None, field_errors(request, error), error.status
    if not staff.is_admin:
        if person_id is not None and person_id != staff.id:
            raise PermissionDeniedException(detail="Operators see their own assignments only")
        person_id = staff.id
    async with state.database.system() as session:
        board = await people_board(session, staff_id=person_id, tenant_id=tenant.id if tenant else None)
        people = await list_staff(session) if staff.is_admin else []
    if filter_errors:
        board = type(board)(rows=[], truncated=False)
    notices = {"assigned": _("Mobilised."), "unassigned": _("Demobilised: their access to the company ended."),
               "handed": _("Open work handed over.")}
    return render(request, "console/people.html", status_code=status_code, board=board, people=people,
                  person=str(person_id) if person_id and staff.is_admin else "", company=company.strip(),
                  errors=errors or {}, form=form or {}, notice=notices.get(done or ""), filter_errors=filter_errors)


@get("/people", name="console:people")
async def people_page(request: Request, staff: StaffUser, state: State, person: str = "", company: str = "",
                      done: str | None = None) -> Response:
    return await _board_page(request, state, staff, person=person, company=company, done=done)


@post("/people/assign", name="console:people_assign")
async def assign(request: Request, staff: StaffUser, state: State) -> Response:
    _require_admin(staff)
    form = await _form(request)
    try:
        member_id = _uuid(form.get("staff_id", ""), "staff_id")
        tenant = await served_tenant_by_slug(state.database, staff, form.get("company", ""), "company")
        if tenant is None:
            raise ValidationFailed(FieldError("company", "expected the company's slug"))
        async with state.database.system() as session:
            member = await session.get(Staff, member_id)
            if member is None:
                raise ValidationFailed(FieldError("staff_id", "expected a staff member from the list"))
            await assign_staff(session, staff=member, tenant=tenant, acting=staff.actor, reason=form.get("reason", ""))
    except ValidationFailed as error:
        return await _board_page(request, state, staff, status_code=error.status, errors=field_errors(request, error),
                                 form=form)
    return Redirect("/staff/people?" + urlencode({"company": tenant.slug, "done": "assigned"}), status_code=303)


# --- one person in one company ------------------------------------------------------------------

async def _member_page(request: Request, state: State, staff: StaffUser, tenant: Tenant, staff_id: uuid.UUID, *,
                       status_code: int = 200, errors: dict[str, str] | None = None,
                       form: dict[str, str] | None = None) -> Response:
    async with state.database.system() as session:
        member = await _member(session, staff, staff_id)
        since = await active_assignment_since(session, member.id, tenant.id)
        receivers = [s for s in await serving_staff(session, tenant.id) if s.id != member.id]
    async with state.database.provider(tenant.id) as session:
        runs = await open_runs(session, member.id)
    locale = console_locale(request)
    titles = {run.id: _routine_title(run.routine, locale) for run in runs}
    return render(request, "console/people_member.html", status_code=status_code, tenant=tenant, member=member,
                  since=since, runs=runs, titles=titles, receivers=receivers, errors=errors or {}, form=form or {})


async def _member(session, staff: StaffUser, staff_id: uuid.UUID) -> Staff:
    """The person of a ``/people/<tenant>/<staff>`` page: an operator has only their own (another person's is
    a 404, like a missing one)."""
    member = await session.get(Staff, staff_id)
    if member is None or (not staff.is_admin and member.id != staff.id):
        raise NotFound(Staff, staff_id)
    return member


def _routine_title(name: str, locale: str) -> str:
    try:
        return get_routine(name).title.get(locale, name)
    except UnknownRoutine:  # a routine no longer in the catalogue: its name is all there is
        return name


@get("/people/{tenant_id:uuid}/{staff_id:uuid}", name="console:people_member")
async def member_page(request: Request, tenant_id: uuid.UUID, staff_id: uuid.UUID, console_tenant: Tenant,
                      staff: StaffUser, state: State) -> Response:
    return await _member_page(request, state, staff, console_tenant, staff_id)


async def _member_action(request: Request, state: State, staff: StaffUser, tenant: Tenant, staff_id: uuid.UUID,
                         action: str) -> Response:
    async with state.database.system() as session:
        await _member(session, staff, staff_id)  # another person's page is a 404 for an operator, then a 403
    _require_admin(staff)
    form = await _form(request)
    try:
        async with state.database.system() as session:
            member = await _member(session, staff, staff_id)
            receiver = None
            if form.get("to_staff"):
                receiver = await session.get(Staff, _uuid(form["to_staff"], "to_staff"))
                if receiver is None:
                    raise ValidationFailed(FieldError("to_staff", "expected a staff member from the list"))
            if action == "unassign":
                await unassign_staff(session, staff=member, tenant=tenant, acting=staff.actor,
                                     reason=form.get("reason", ""), hand_over_to=receiver, work=OPEN_WORK)
            else:
                if receiver is None:
                    raise ValidationFailed(FieldError("to_staff", "expected a staff member from the list"))
                await hand_over(session, tenant=tenant, from_staff=member, to_staff=receiver, acting=staff.actor,
                                reason=form.get("reason", ""), work=OPEN_WORK)
    except ValidationFailed as error:
        return await _member_page(request, state, staff, tenant, staff_id, status_code=error.status,
                                  errors={action: field_errors(request, error)}, form=form)
    done = "unassigned" if action == "unassign" else "handed"
    return Redirect("/staff/people?" + urlencode({"company": tenant.slug, "done": done}), status_code=303)


@post("/people/{tenant_id:uuid}/{staff_id:uuid}/unassign", name="console:people_unassign")
async def unassign(request: Request, tenant_id: uuid.UUID, staff_id: uuid.UUID, console_tenant: Tenant,
                   staff: StaffUser, state: State) -> Response:
    return await _member_action(request, state, staff, console_tenant, staff_id, "unassign")


@post("/people/{tenant_id:uuid}/{staff_id:uuid}/handover", name="console:people_handover")
async def handover(request: Request, tenant_id: uuid.UUID, staff_id: uuid.UUID, console_tenant: Tenant,
                   staff: StaffUser, state: State) -> Response:
    return await _member_action(request, state, staff, console_tenant, staff_id, "handover")


ROUTES: list[Any] = [people_page, assign, member_page, unassign, handover]
