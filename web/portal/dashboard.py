"""The figures a front-office lead wants at a glance, and the bar chart drawn as server-side SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import TENANT_KEY
from backoffice.platform.timers.clock import tenant_now
from backoffice.tenants.billing.queries import overdue_amounts
from backoffice.tenants.customers.queries import count_by_lifecycle, count_created_since

AGE_BUCKETS = (("0–30", 0, 30), ("31–60", 31, 60), ("61–90", 61, 90), ("90+", 91, None))


@dataclass(frozen=True)
class Figures:
    new_this_week: int
    in_grace: int
    blocked: int
    by_lifecycle: dict[str, int]
    overdue_by_age: list[tuple[str, int, int]]  # (label, cents, charges)

    @property
    def overdue_total(self) -> int:
        return sum(cents for _, cents, _ in self.overdue_by_age)


async def figures(session: AsyncSession, timezone: str) -> Figures:
    """The week of new customers is real time (when they were recorded); the overdue charges' age counts from
    the company's own today, by its clock (``platform/timers/clock.py``: a demo or staging company moved
    forward sees its charges age as its grace deadlines do)."""
    today = clock.now().astimezone(ZoneInfo(timezone)).date()
    business_today = (await tenant_now(session, session.info[TENANT_KEY])).astimezone(ZoneInfo(timezone)).date()
    week_start_local = datetime.combine(today - timedelta(days=today.weekday()), datetime.min.time(),
                                        tzinfo=ZoneInfo(timezone))
    new = await count_created_since(session, week_start_local)
    by_lifecycle = await count_by_lifecycle(session)
    return Figures(new, by_lifecycle["in_grace"], by_lifecycle["blocked"], by_lifecycle,
                   _by_age(business_today, await overdue_amounts(session)))


def _by_age(today: date, charges: list[tuple[date, int]]) -> list[tuple[str, int, int]]:
    result = []
    for label, low, high in AGE_BUCKETS:
        picked = [cents for due, cents in charges if (today - due).days >= low and (high is None or (today - due).days <= high)]
        result.append((label, sum(picked), len(picked)))
    return result


def bar_chart(rows: list[tuple[str, int, str]], *, title: str, width: int = 420, bar_height: int = 26) -> str:
    """A horizontal bar chart as SVG markup; ``rows`` are (label, value, shown value), all escaped here."""
    from markupsafe import escape

    top = max((value for _, value, _ in rows), default=0) or 1
    label_w, gap = 70, 8
    height = len(rows) * (bar_height + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" class="chart"><title>{escape(title)}</title>']
    for index, (label, value, shown) in enumerate(rows):
        y = gap + index * (bar_height + gap)
        bar = int((width - label_w - 120) * value / top)
        parts.append(
            f'<text x="0" y="{y + bar_height * 0.7:.0f}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(bar, 2)}" height="{bar_height}" rx="3" class="chart-bar"/>'
            f'<text x="{label_w + max(bar, 2) + 6}" y="{y + bar_height * 0.7:.0f}" class="chart-value">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
