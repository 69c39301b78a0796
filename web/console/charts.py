"""Server-side SVG charts for the console (no JavaScript): a per-row 14-day sparkline and a larger chart.

Only numbers and translated labels go into the SVG, and labels are escaped; the markup is built here, once.
"""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import escape

from backoffice.tenants.overview.queries import Activity


def _scale(activity: Activity) -> int:
    return max([1] + [day.events for day in activity.days] + [day.failures for day in activity.days])


def sparkline(activity: Activity, _: Callable[[str], str], width: int = 112, height: int = 22) -> str:
    """Events per day as teal bars, failures as red bars in front of them; the title says the totals."""
    top = _scale(activity)
    step = width / max(1, len(activity.days))
    bar = max(1.0, step - 2)
    parts = []
    for n, day in enumerate(activity.days):
        x = n * step + 1
        h = round(height * day.events / top, 1) if day.events else 0
        if h:
            parts.append(f'<rect class="ev" x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}"/>')
        f = round(height * day.failures / top, 1) if day.failures else 0
        if f:
            f = max(f, 2.0)
            parts.append(f'<rect class="fail" x="{x:.1f}" y="{height - f:.1f}" width="{bar:.1f}" height="{f:.1f}"/>')
    title = escape(_("Last 14 days: %(events)d events, %(failures)d failures")
                   % {"events": activity.events, "failures": activity.failures})
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{title}"><title>{title}</title>'
            f'<line x1="0" y1="{height - .5}" x2="{width}" y2="{height - .5}" stroke="#e2e8f0"/>{"".join(parts)}</svg>')


def activity_chart(activity: Activity, _: Callable[[str], str], locale: str, width: int = 640,
                   height: int = 180) -> str:
    """The same 14 days drawn large, with day labels and the daily numbers."""
    top = _scale(activity)
    left, bottom, plot_h = 8, 34, height - 44
    step = (width - 2 * left) / max(1, len(activity.days))
    bar = max(2.0, step * 0.7)
    parts = []
    for n, day in enumerate(activity.days):
        x = left + n * step + (step - bar) / 2
        h = plot_h * day.events / top
        f = plot_h * day.failures / top
        base = height - bottom
        parts.append(f'<rect class="ev" x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}"/>')
        if day.failures:
            parts.append(f'<rect class="fail" x="{x:.1f}" y="{base - max(f, 2):.1f}" width="{bar:.1f}" '
                         f'height="{max(f, 2):.1f}"/>')
        label = day.day.strftime("%d/%m") if locale == "pt-BR" else day.day.strftime("%m/%d")
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 18}" text-anchor="middle" class="axis">{label}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 4}" text-anchor="middle" class="axis num">'
                     f'{day.events}{"/" + str(day.failures) if day.failures else ""}</text>')
    title = escape(_("Last 14 days: %(events)d events, %(failures)d failures")
                   % {"events": activity.events, "failures": activity.failures})
    return (f'<svg class="chart spark" width="100%" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
            f'<title>{title}</title><line x1="{left}" y1="{height - bottom + .5}" x2="{width - left}" '
            f'y2="{height - bottom + .5}" stroke="#cbd5e1"/>{"".join(parts)}</svg>')
