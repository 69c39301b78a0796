"""The outbox backlog as the metrics show it: one set-based statement over every tenant, run by the leading
scheduler (``web/entry/loops.py``), never a statement per tenant.

A row is in the backlog while it is due (``available_at`` has passed) and not completed: waiting for the
relay, handed over, or running. Its age counts from when it became due, so a delivery waiting out its retry
delay is not late until its time comes.
"""

from __future__ import annotations

from sqlalchemy import func, literal_column, or_, select

from backoffice.platform import clock, metrics
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry


def backlog_statement(now, worst: int = metrics.WORST_TENANTS):
    """Per tenant with due rows: its count and oldest due time, plus the totals over all tenants (window
    sums), keeping only the ``worst`` tenants by count and the ``worst`` by age."""
    due = (select(OutboxEntry.tenant_id, func.count().label("n"), func.min(OutboxEntry.available_at).label("oldest"))
           .where(OutboxEntry.completed_at.is_(None), OutboxEntry.available_at <= now)
           .group_by(OutboxEntry.tenant_id).subquery())
    ranked = select(
        due.c.tenant_id, due.c.n, due.c.oldest,
        func.row_number().over(order_by=(due.c.n.desc(), due.c.tenant_id)).label("by_count"),
        func.row_number().over(order_by=(due.c.oldest, due.c.tenant_id)).label("by_age"),
        func.sum(due.c.n).over().label("total"),
    ).subquery()
    return select(ranked).where(or_(ranked.c.by_count <= worst, ranked.c.by_age <= worst)) \
        .order_by(literal_column("by_age"))


async def measure_backlog(database: Database) -> None:
    """Measure the outbox once and publish it (``platform/metrics.py``)."""
    now = clock.now()
    async with database.system() as session:
        rows = (await session.execute(backlog_statement(now))).all()
    oldest = min((row.oldest for row in rows), default=None)
    total = int(rows[0].total) if rows else 0
    worst_backlog = {str(row.tenant_id): row.n for row in rows if row.by_count <= metrics.WORST_TENANTS}
    worst_age = {str(row.tenant_id): max(0.0, (now - row.oldest).total_seconds())
                 for row in rows if row.by_age <= metrics.WORST_TENANTS}
    metrics.set_outbox(total, oldest, worst_backlog, worst_age, now)
