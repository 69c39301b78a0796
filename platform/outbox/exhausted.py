"""Giving up on outbox rows whose job never completes, with the reason, so nothing loops forever.

A row is re-dispatched each time its lease runs out. A job that fails every time (a bug, a row its job
cannot handle) would otherwise be sent again every lease period for ever. After ``MAX_DISPATCHES``, and
no sooner than ``GIVE_UP_AFTER`` after the row was written (leases are 30 s: a backlog in the broker longer
than that re-dispatches rows that merely wait, and those must not be given up on), the row is closed with the reason in ``last_error``; if it was an event's process step, the event is marked
``failed`` with that reason, so staff see it among the dead letters and can replay it; if it was a
routine's item (or a run's planning), the item (or run) fails with that reason, so the run finishes and
staff can retry its failed items. What "fails" means belongs to the domain: the composition root
(``web/entry/wiring.py``) registers a hook per job with :func:`on_give_up`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock, metrics
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry

log = logging.getLogger(__name__)
MAX_DISPATCHES = 12
GIVE_UP_AFTER = timedelta(hours=1)

GiveUpHook = Callable[[AsyncSession, uuid.UUID, dict[str, Any], str], Awaitable[None]]
"""``hook(session, tenant_id, payload, reason)``: the domain's side of giving up on one of its job's rows."""

_HOOKS: dict[str, tuple[GiveUpHook, bool]] = {}


def on_give_up(job: str, hook: GiveUpHook, *, tenant_session: bool = False) -> None:
    """Register what giving up on ``job``'s rows does. By default the hook runs in the system transaction
    that closes the row (nothing can close one without the other); ``tenant_session=True`` runs it after,
    in a session of the row's tenant, as the job itself would have run."""
    _HOOKS[job] = (hook, tenant_session)


async def give_up_exhausted(database: Database, *, max_dispatches: int = MAX_DISPATCHES, limit: int = 200) -> int:
    now = clock.now()
    afterwards: list[tuple[GiveUpHook, OutboxEntry, str]] = []
    async with database.system() as session:
        query = (
            select(OutboxEntry)
            .where(OutboxEntry.completed_at.is_(None), OutboxEntry.attempts >= max_dispatches,
                   OutboxEntry.created_at <= now - GIVE_UP_AFTER,
                   or_(OutboxEntry.lease_until.is_(None), OutboxEntry.lease_until < now))
            .limit(limit)
        )
        if database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list((await session.execute(query)).scalars())
        for row in rows:
            reason = f"gave up after {row.attempts} dispatches: the {row.job} job never completed"
            row.completed_at = now
            row.last_error = ((row.last_error + " | ") if row.last_error else "") + reason
            log.error("outbox %s (tenant %s): %s", row.id, row.tenant_id, reason)
            hook, tenant_session = _HOOKS.get(row.job, (None, False))
            if hook is None:
                continue
            if tenant_session:
                afterwards.append((hook, row, reason))
            else:
                await hook(session, row.tenant_id, row.payload, reason)
    for hook, row, reason in afterwards:
        async with database.provider(row.tenant_id) as session:
            await hook(session, row.tenant_id, row.payload, reason)
    metrics.DEAD_LETTERS.labels("outbox").inc(len(rows))
    return len(rows)
