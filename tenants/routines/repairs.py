"""A reconciliation finding repaired: the payment event the gateway's webhook never delivered, ingested
from the finding (see ``reconciliation.repair_finding``). One row per finding: repairing twice does
nothing more."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String, UniqueConstraint, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import Base, TenantOwned, utcnow
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import Conflict, FieldError
from backoffice.tenants.billing.ports import PaymentGateway
from backoffice.tenants.connections import CallFailed, Unusable, directory
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.routines.models import FindingKind, ReconciliationFinding


class FindingRepair(TenantOwned, Base):
    __tablename__ = "reconciliation_repairs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "finding_id"],
                             ["reconciliation_findings.tenant_id", "reconciliation_findings.id"]),
        UniqueConstraint("tenant_id", "finding_id"),
    )

    finding_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    reference: Mapped[str] = mapped_column(String(128))  # the gateway's payment id
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid())  # the ingested event (or the one already there)
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | duplicate (the webhook had arrived meanwhile)
    repaired_by: Mapped[str] = mapped_column(String(254))  # the actor's label (staff, policy)
    repaired_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- repairing ---------------------------------------------------------------------------------------------

REPAIRABLE = (FindingKind.UNRECORDED, FindingKind.UNKNOWN)


class RepairFailed(Exception):
    """The gateway could not be asked for the payment now (``retryable``) or refused; nothing was written."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


async def _gateway(session: AsyncSession, finding: ReconciliationFinding) -> PaymentGateway:
    connection = await directory().connection(session, finding.connector_id) if finding.connector_id else None
    if connection is None or not connection.enabled:
        raise Conflict(FieldError("finding", "the gateway account of this finding is gone or disabled"))
    try:
        return await directory().open(session, connection)
    except Unusable:
        raise Conflict(FieldError("finding", "the gateway's credentials can no longer be read")) from None


async def repair_finding(session: AsyncSession, finding_id: uuid.UUID, *, acting: Actor,
                         gateway: PaymentGateway | None = None) -> FindingRepair:
    """Ingest the ``payment.cleared`` event the gateway's lost webhook would have produced, through the normal
    intake (same external id: a webhook arriving later is a duplicate), so the processes run as if it had
    arrived; the finding is marked repaired, audited. A finding repaired before is answered as it was."""
    finding = (await session.execute(select(ReconciliationFinding).where(ReconciliationFinding.id == finding_id)
                                      .with_for_update())).scalar_one_or_none()
    if finding is None:
        raise NotFound(ReconciliationFinding, finding_id)
    done = (await session.execute(select(FindingRepair).where(FindingRepair.finding_id == finding.id))).scalar_one_or_none()
    if done is not None:
        return done
    if finding.kind not in REPAIRABLE:
        raise Conflict(FieldError("finding", "only a payment the gateway received and the platform did not record "
                                             "(unrecorded, unknown) can be repaired"))
    gateway = gateway or await _gateway(session, finding)
    try:
        event = await gateway.cleared_event(finding.reference)
    except CallFailed as error:
        raise RepairFailed(f"asking the gateway for {finding.reference}: {error}", retryable=error.retryable) from None
    if event is None:
        raise Conflict(FieldError("finding", "the gateway no longer has this payment as received"))
    result = await ingest(session, finding.tenant_id, event)
    repair = FindingRepair(finding_id=finding.id, reference=finding.reference, event_id=result.event_id,
                           outcome=result.status, repaired_by=acting.label[:254], repaired_at=clock.now())
    session.add(repair)
    await session.flush()
    await record(session, actor=acting, action="reconciliation.repair", target_type="reconciliation_finding",
                 target_id=finding.id, tenant_id=finding.tenant_id,
                 detail={"reference": finding.reference, "kind": finding.kind.value, "event_id": str(result.event_id),
                         "outcome": result.status, "day": finding.day})
    return repair


async def repairable_findings(session: AsyncSession, run_id: uuid.UUID | None = None
                              ) -> list[tuple[ReconciliationFinding, FindingRepair | None]]:
    """Findings that can be repaired (newest day first), each with its repair when it has one."""
    query = (select(ReconciliationFinding, FindingRepair)
             .outerjoin(FindingRepair, (FindingRepair.tenant_id == ReconciliationFinding.tenant_id)
                        & (FindingRepair.finding_id == ReconciliationFinding.id))
             .where(ReconciliationFinding.kind.in_(REPAIRABLE))
             .order_by(ReconciliationFinding.day.desc(), ReconciliationFinding.reference))
    if run_id is not None:
        query = query.where(ReconciliationFinding.run_id == run_id)
    return [(finding, repair) for finding, repair in (await session.execute(query.limit(500))).all()]


async def repair_all(session: AsyncSession, *, acting: Actor, run_id: uuid.UUID | None = None
                     ) -> tuple[list[FindingRepair], dict[str, str]]:
    """Every repairable finding not repaired yet (of one run, or all): the repairs made and, per reference,
    why one could not be (each in its own savepoint, so one failure keeps the others)."""
    repaired, failed = [], {}
    for finding, repair in await repairable_findings(session, run_id):
        if repair is not None:
            continue
        try:
            async with session.begin_nested():
                repaired.append(await repair_finding(session, finding.id, acting=acting))
        except (RepairFailed, Conflict) as error:
            failed[finding.reference] = str(error)
    return repaired, failed
