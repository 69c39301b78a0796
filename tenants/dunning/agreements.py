"""What a renegotiation (``tenants/agreements``) does to late-payment cases, in one place.

- :func:`wait_on_agreement`: the case stops its deadline, reminders and termination timers and waits
  (status ``agreement``); a customer in grace stays in grace, a blocked one stays blocked until the
  agreement's first instalment is paid.
- :func:`resolve_after_agreement`: every instalment paid closes the cases.
- :func:`reopen_case`: a missed instalment reopens the case under the tenant's current policy: a fresh
  grace deadline (and reminders) from now, after which the usual deadline step blocks (a customer still
  blocked, who never paid an instalment, stays blocked).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.timers.service import cancel_timers, schedule_timer
from backoffice.tenants.dunning.models import CaseStatus, DunningCase

WAITING = (CaseStatus.GRACE, CaseStatus.BLOCKED)


def case_timer_prefix(case: DunningCase) -> str:
    return f"case:{case.id}:"  # the same prefix the late-payment process names its timers with


async def wait_on_agreement(session: AsyncSession, tenant_id: uuid.UUID, cases: list[DunningCase]) -> None:
    for case in cases:
        if case.status not in WAITING:
            continue
        case.status = CaseStatus.AGREEMENT
        await cancel_timers(session, tenant_id, key_prefix=case_timer_prefix(case))


def resolve_after_agreement(cases: list[DunningCase], now: datetime) -> None:
    for case in cases:
        if case.status == CaseStatus.AGREEMENT:
            case.status = CaseStatus.RESOLVED
            case.resolved_at = now


async def reopen_case(session: AsyncSession, tenant_id: uuid.UUID, case: DunningCase, *, agreement_id: uuid.UUID,
                      policy_version: int, deadline_at: datetime, reminders: list[tuple[int, datetime]],
                      still_blocked: bool = False) -> bool:
    """Back to grace under ``policy_version`` with a new deadline; False when the case is not waiting.
    A customer the agreement never unblocked (no instalment paid) stays blocked: the case is blocked again
    at once, with no new grace."""
    if case.status != CaseStatus.AGREEMENT:
        return False
    case.policy_version = policy_version
    if still_blocked:
        case.status = CaseStatus.BLOCKED
        return True
    case.status = CaseStatus.GRACE
    case.deadline_at = deadline_at
    case.blocked_at = None
    prefix = f"{case_timer_prefix(case)}agreement:{agreement_id}:"
    for offset, at in reminders:
        await schedule_timer(session, tenant_id, key=f"{prefix}reminder:{offset}", event_type="dunning.reminder_due",
                             due_at=at, customer_id=case.customer_id,
                             payload={"case_id": str(case.id), "reminder": offset})
    await schedule_timer(session, tenant_id, key=f"{prefix}deadline", event_type="dunning.deadline_reached",
                         due_at=deadline_at, customer_id=case.customer_id, payload={"case_id": str(case.id)})
    return True
