"""What the portal's open pages are told, after commit (platform/live.py carries it): a person's new
notifications, and a routine run's progress (every user of the tenant may follow a run)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.live import publish_after_commit

NOTIFICATION = "notification"
RUN = "run"


def announce_notifications(session: AsyncSession, tenant_id: uuid.UUID, rows: Iterable[dict[str, Any]]) -> None:
    """One message per recipient of ``rows`` (notification rows as written), however many they got."""
    per_person = Counter(row["recipient_id"] for row in rows)
    for recipient_id, count in per_person.items():
        publish_after_commit(session, tenant_id, {"type": NOTIFICATION, "user_id": str(recipient_id),
                                                  "data": {"new": count}})


def announce_read(session: AsyncSession, tenant_id: uuid.UUID, recipient_id: uuid.UUID) -> None:
    publish_after_commit(session, tenant_id, {"type": NOTIFICATION, "user_id": str(recipient_id),
                                              "data": {"read": 1}})


def announce_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, *, settled: int, total: int,
                 finished: bool) -> None:
    publish_after_commit(session, tenant_id, {"type": RUN, "data": {
        "run_id": str(run_id), "settled": settled, "total": total, "finished": finished}})
