"""The routine catalogue: what each back-office routine is, when it runs, and how its work is split.

A routine declares its schedule (daily or monthly, at a local hour of each tenant's time zone; a tenant
may move the hour and day, see ``RoutineSetting``) and three steps the engine (``engine.py``) drives:

- ``plan(session, run)``: list the run's items (one contract to bill, one payment to invoice); it may
  also do set-based work inline and say so (the dunning sweep does everything in one statement);
- ``work(session, run, item)``: do one item, idempotently: a crash after the provider acted and before
  the commit repeats the item, and the repeat must find what the first attempt did instead of doing it
  twice (the billing run looks its charge up at the gateway by reference; Focus NFe dedupes by ``ref``);
- ``finish(session, run)``: optional; the run's summary once every item is settled.

Routine modules declare their routine; the composition root (``web/entry/wiring.py``) registers each one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.routines.models import RoutineRun, RunItem


# --- schedules ------------------------------------------------------------------------------------------

def _local(zone: ZoneInfo, day: date, hour: int) -> datetime:
    # fold=0: a skipped hour maps past the gap, a repeated hour to its first occurrence.
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Daily:
    """Every day at ``hour`` local time; the period is the local date, shifted by ``offset_days`` (the
    reconciliation of a day runs the next morning: offset -1)."""

    hour: int
    offset_days: int = 0
    catch_up: timedelta = timedelta(hours=26)  # a scheduler down for less than this still runs the period
    kind: Literal["daily"] = "daily"

    def latest(self, tz: str, now: datetime, *, hour: int | None = None, day: int | None = None) -> tuple[str, datetime]:
        """The latest scheduled instant at or before ``now`` and the period it runs for."""
        zone, hour = ZoneInfo(tz), self.hour if hour is None else hour
        today = now.astimezone(zone).date()
        run_day = today if _local(zone, today, hour) <= now else today - timedelta(days=1)
        return (run_day + timedelta(days=self.offset_days)).isoformat(), _local(zone, run_day, hour)

    def next(self, tz: str, now: datetime, *, hour: int | None = None, day: int | None = None) -> datetime:
        zone, hour = ZoneInfo(tz), self.hour if hour is None else hour
        today = now.astimezone(zone).date()
        for offset in range(3):
            candidate = _local(zone, today + timedelta(days=offset), hour)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a local hour recurs within two days")

    def describe(self, *, hour: int | None = None, day: int | None = None) -> str:
        return f"daily at {self.hour if hour is None else hour:02d}:00"


@dataclass(frozen=True)
class Monthly:
    """Every month on ``day`` (1-28) at ``hour`` local time; the period is the month, ``YYYY-MM``."""

    day: int
    hour: int
    catch_up: timedelta = timedelta(days=3)
    kind: Literal["monthly"] = "monthly"

    def latest(self, tz: str, now: datetime, *, hour: int | None = None, day: int | None = None) -> tuple[str, datetime]:
        zone = ZoneInfo(tz)
        hour, day = self.hour if hour is None else hour, self.day if day is None else day
        local = now.astimezone(zone).date()
        this_month = _local(zone, local.replace(day=day), hour)
        if this_month <= now:
            return local.strftime("%Y-%m"), this_month
        previous = (local.replace(day=1) - timedelta(days=1)).replace(day=day)
        return previous.strftime("%Y-%m"), _local(zone, previous, hour)

    def next(self, tz: str, now: datetime, *, hour: int | None = None, day: int | None = None) -> datetime:
        zone = ZoneInfo(tz)
        hour, day = self.hour if hour is None else hour, self.day if day is None else day
        local = now.astimezone(zone).date()
        candidate = _local(zone, local.replace(day=day), hour)
        if candidate > now:
            return candidate
        following = (local.replace(day=28) + timedelta(days=4)).replace(day=day)
        return _local(zone, following, hour)

    def describe(self, *, hour: int | None = None, day: int | None = None) -> str:
        return f"monthly on day {self.day if day is None else day} at {self.hour if hour is None else hour:02d}:00"


Schedule = Daily | Monthly


def valid_period(schedule: Schedule, period: str) -> bool:
    try:
        if isinstance(schedule, Monthly):
            return len(period) == 7 and bool(datetime.strptime(period, "%Y-%m"))
        return len(period) == 10 and bool(date.fromisoformat(period))
    except ValueError:
        return False


# --- what a routine is ----------------------------------------------------------------------------------

@dataclass
class ItemSpec:
    """One unit of a run's work, as ``plan`` lists it."""

    key: str  # unique in the run: "contract:<id>", "payment:<id>", "instance:<id>"
    label: str  # what a person reads in the run's detail
    customer_id: uuid.UUID | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    items: list[ItemSpec] = field(default_factory=list)
    done_inline: int = 0  # work the plan step did itself (a set-based sweep), counted as done items
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What ``work`` made of one item."""

    status: Literal["done", "failed", "waiting"]
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # failed: the provider's words
    check_again_in: timedelta | None = None  # waiting: when to look at the provider's status again
    notify: bool = True  # failed: tell the customer's front-office people (False when an event already does)

    @classmethod
    def done(cls, **result: Any) -> Outcome:
        return cls("done", result)

    @classmethod
    def failed(cls, error: str, *, notify: bool = True, **result: Any) -> Outcome:
        return cls("failed", result, error=error[:2000], notify=notify)

    @classmethod
    def waiting(cls, check_again_in: timedelta, **result: Any) -> Outcome:
        return cls("waiting", result, check_again_in=check_again_in)


PlanFn = Callable[[AsyncSession, RoutineRun], Awaitable[Plan]]
WorkFn = Callable[[AsyncSession, RoutineRun, RunItem], Awaitable[Outcome]]
FinishFn = Callable[[AsyncSession, RoutineRun], Awaitable[None]]
# A set-based routine may also run for many tenants at once from the scheduler:
# (database, {tenant_id: period}) -> {tenant_id: how many it did}.
SetRunFn = Callable[[Any, dict[uuid.UUID, str]], Awaitable[dict[uuid.UUID, int]]]


@dataclass(frozen=True)
class Routine:
    name: str
    title: dict[str, str]  # by locale: {"pt-BR": "Faturamento", "en": "Billing"}
    item_noun: dict[str, str]  # what a done item is, plural, by locale: {"pt-BR": "cobranças emitidas", "en": "charges issued"}
    schedule: Schedule
    plan: PlanFn
    work: WorkFn | None = None
    finish: FinishFn | None = None
    run_for_tenants: SetRunFn | None = None
    max_attempts: int = 5  # retryable provider failures of one item before it is failed
    # Connector kinds the routine works through (any one enabled instance will do): the schedule skips a
    # tenant that has none, and the overview says the routine is not set up, instead of a failed run a day.
    requires: tuple[str, ...] = ()

    def label(self, locale: str) -> str:
        return self.title.get(locale) or self.title["en"]


CATALOGUE: dict[str, Routine] = {}


def register(*entries: Routine) -> None:
    """Put routines in the catalogue (the composition root, ``web/entry/wiring.py``, names every one)."""
    for routine in entries:
        if routine.name in CATALOGUE and CATALOGUE[routine.name] is not routine:
            raise RuntimeError(f"routine {routine.name!r} is registered twice")
        CATALOGUE[routine.name] = routine


class UnknownRoutine(LookupError):
    pass


def get_routine(name: str) -> Routine:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownRoutine(f"no routine named {name!r}; known: {', '.join(sorted(CATALOGUE))}") from None


def routines() -> list[Routine]:
    return list(CATALOGUE.values())
