"""The portal's routines pages (read only): each back-office routine with its schedule, a paused notice and
its last runs told as sentences ("Faturamento de novembro: 1.240 cobranças, 3 com falha, concluído às
06:12"), and a run's page listing its failed items with the provider's words and the customer.

Numbers and times are the reader's locale and the company's time zone; a run id of another company is a
404 like a missing one (the tenant session's door).
"""

from __future__ import annotations

from dataclasses import dataclass
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date
from babel.numbers import format_decimal
from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import NotFound
from backoffice.tenants.notifications import service as notifications
from backoffice.tenants.policies.templates import format_date
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines import queries
from backoffice.tenants.routines.catalogue import Routine, get_routine
from backoffice.tenants.routines.models import ACTIVE_STATUSES, ItemStatus, RoutineRun, RunStatus
from backoffice.web.portal.auth import PortalUser
from backoffice.web.portal.render import page, pick_locale, translations

RECENT_RUNS = 5
FAILED_SHOWN = 500
BADGES = {"queued": "onboarding", "running": "onboarding", "paused": "in_grace", "succeeded": "active",
          "partial": "in_grace", "failed": "blocked"}


@dataclass(frozen=True)
class RunLine:
    """One run as the front office reads it."""

    run: RoutineRun
    heading: str  # "Faturamento de novembro"
    sentence: str  # "1.240 cobranças, 3 com falha, concluído às 06:12"
    status: str  # the status in words
    badge: str  # the badge's colour class
    trigger: str  # scheduled, by hand, retry
    active: bool
    settled: int

    @property
    def text(self) -> str:
        return f"{self.heading}: {self.sentence}"


def _number(value: int, locale: str) -> str:
    return format_decimal(value, locale=locale.replace("-", "_"))


def _period(routine: Routine, period: str, locale: str, today: date) -> str:
    """'novembro' / 'November' for this year's month; 'novembro de 2025'; a day as the locale writes dates."""
    if routine.schedule.kind == "monthly":
        month = date.fromisoformat(f"{period}-01")
        if month.year == today.year:
            return babel_date(month, "LLLL", locale=locale.replace("-", "_"))
        return babel_date(month, "LLLL 'de' y" if locale == "pt-BR" else "LLLL y", locale=locale.replace("-", "_"))
    return format_date(date.fromisoformat(period), None, locale)


def describe_run(run: RoutineRun, routine: Routine, locale: str, tz: str, now: datetime) -> RunLine:
    _ = translations(locale).gettext
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    noun = routine.item_noun.get(locale) or routine.item_noun["en"]
    settled = run.items_done + run.items_failed
    values = {"done": _number(run.items_done, locale), "failed": _number(run.items_failed, locale),
              "settled": _number(settled, locale), "total": _number(run.items_total, locale), "noun": noun,
              "error": run.error or "", "time": "", "date": ""}
    same_day = True
    if run.finished_at is not None:
        local = run.finished_at.astimezone(zone)
        values["time"] = local.strftime("%H:%M")
        values["date"] = format_date(local.date(), None, locale)
        same_day = local.date() == today
    if run.status == RunStatus.QUEUED:
        sentence = _("waiting to start")
    elif run.status == RunStatus.RUNNING:
        sentence = (_("in progress: %(settled)s of %(total)s %(noun)s, %(failed)s failed") if run.items_failed
                    else _("in progress: %(settled)s of %(total)s %(noun)s")) % values
    elif run.status == RunStatus.PAUSED:
        sentence = _("paused at %(settled)s of %(total)s %(noun)s") % values
    elif run.status == RunStatus.FAILED and run.error:
        sentence = (_("failed at %(time)s: %(error)s") if same_day
                    else _("failed on %(date)s at %(time)s: %(error)s")) % values
    elif run.items_failed:
        sentence = (_("%(done)s %(noun)s, %(failed)s failed, done at %(time)s") if same_day
                    else _("%(done)s %(noun)s, %(failed)s failed, done on %(date)s at %(time)s")) % values
    else:
        sentence = (_("%(done)s %(noun)s, done at %(time)s") if same_day
                    else _("%(done)s %(noun)s, done on %(date)s at %(time)s")) % values
    heading = _("%(title)s for %(period)s") % {"title": routine.label(locale),
                                               "period": _period(routine, run.period, locale, today)}
    statuses = {"queued": _("queued"), "running": _("running"), "paused": _("paused"), "succeeded": _("succeeded"),
                "partial": _("partly failed"), "failed": _("failed")}
    triggers = {"schedule": _("scheduled"), "manual": _("started by hand"), "retry": _("retry of failed items")}
    return RunLine(run, heading, sentence, statuses[run.status.value], BADGES[run.status.value],
                   triggers[run.trigger.value], run.status in ACTIVE_STATUSES, settled)


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(RoutineRun, value) from None


def describe_schedule(status: dict, locale: str) -> str:
    _ = translations(locale).gettext
    values = {"time": f"{status['hour']:02d}:00", "day": status["day"], "tz": status["timezone"]}
    if status["schedule_kind"] == "monthly":
        return _("Every month on day %(day)s at %(time)s (%(tz)s)") % values
    return _("Every day at %(time)s (%(tz)s)") % values


@get("/routines", name="portal:routines")
async def routine_list(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession) -> Response:
    locale = pick_locale(request, tenant)
    now = clock.now()
    entries = []
    for status in await queries.routine_statuses(db, locale=locale):
        routine = get_routine(status["routine"])
        runs = await queries.recent_runs(db, routine.name, RECENT_RUNS)
        entries.append({"status": status, "schedule": describe_schedule(status, locale),
                        "runs": [describe_run(run, routine, locale, tenant.timezone, now) for run in runs]})
    return page(request, tenant, "portal/routines.html", user=user, routines=entries, section="routines",
                unread=await notifications.unread_count(db, user.id))


@get("/routines/runs/{run_id:str}", name="portal:routine_run")
async def routine_run(request: Request, tenant: Tenant, user: PortalUser, db: AsyncSession, run_id: str) -> Response:
    locale = pick_locale(request, tenant)
    detail = await queries.run_detail(db, _run_id(run_id), item_status=ItemStatus.FAILED, limit=FAILED_SHOWN)
    line = describe_run(detail.run, get_routine(detail.run.routine), locale, tenant.timezone, clock.now())
    return page(request, tenant, "portal/routine_run.html", user=user, line=line, detail=detail,
                failed_count=_number(detail.item_counts["failed"], locale), section="routines",
                unread=await notifications.unread_count(db, user.id))


ROUTINE_HANDLERS = [routine_list, routine_run]
