"""Reading agreements: a customer's agreements with their instalments and replaced charges, the charges an
agreement may take, and which agreement a gateway charge is an instalment of."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.agreements.models import Agreement, AgreementCharge, AgreementInstalment
from backoffice.tenants.billing.models import Charge, ChargeStatus


@dataclass
class AgreementView:
    agreement: Agreement
    instalments: list[tuple[AgreementInstalment, Charge]] = field(default_factory=list)
    replaced: list[Charge] = field(default_factory=list)

    @property
    def paid(self) -> int:
        return sum(1 for instalment, _ in self.instalments if instalment.status == "paid")


async def customer_agreements(session: AsyncSession, customer_id: uuid.UUID) -> list[AgreementView]:
    """The customer's agreements, newest first, in three statements."""
    agreements = list((await session.execute(select(Agreement).where(Agreement.customer_id == customer_id)
                                              .order_by(Agreement.proposed_at.desc(), Agreement.id))).scalars())
    if not agreements:
        return []
    views = {a.id: AgreementView(a) for a in agreements}
    ids = list(views)
    for instalment, charge in (await session.execute(
            select(AgreementInstalment, Charge).join(Charge, (Charge.tenant_id == AgreementInstalment.tenant_id)
                                                     & (Charge.id == AgreementInstalment.charge_id))
            .where(AgreementInstalment.agreement_id.in_(ids)).order_by(AgreementInstalment.number))).all():
        views[instalment.agreement_id].instalments.append((instalment, charge))
    for link, charge in (await session.execute(
            select(AgreementCharge, Charge).join(Charge, (Charge.tenant_id == AgreementCharge.tenant_id)
                                                 & (Charge.id == AgreementCharge.charge_id))
            .where(AgreementCharge.agreement_id.in_(ids)).order_by(Charge.due_date))).all():
        views[link.agreement_id].replaced.append(charge)
    return [views[a.id] for a in agreements]


async def renegotiable_charges(session: AsyncSession, customer_id: uuid.UUID) -> list[Charge]:
    """The customer's overdue charges no agreement has taken yet: what the form offers."""
    taken = select(AgreementCharge.charge_id)
    query = (select(Charge).where(Charge.customer_id == customer_id, Charge.status == ChargeStatus.OVERDUE,
                                  Charge.id.not_in(taken)).order_by(Charge.due_date, Charge.id))
    return list((await session.execute(query)).scalars())


async def instalment_of(session: AsyncSession, charge_id: uuid.UUID) -> tuple[AgreementInstalment, Agreement] | None:
    row = (await session.execute(
        select(AgreementInstalment, Agreement).join(Agreement, (Agreement.tenant_id == AgreementInstalment.tenant_id)
                                                    & (Agreement.id == AgreementInstalment.agreement_id))
        .where(AgreementInstalment.charge_id == charge_id))).first()
    return (row[0], row[1]) if row else None


async def instalments_of(session: AsyncSession, charge_ids: list[uuid.UUID]
                         ) -> dict[uuid.UUID, tuple[AgreementInstalment, Agreement]]:
    """:func:`instalment_of` for many charges in one statement, by charge id (a plain charge is absent)."""
    rows = (await session.execute(
        select(AgreementInstalment, Agreement).join(Agreement, (Agreement.tenant_id == AgreementInstalment.tenant_id)
                                                    & (Agreement.id == AgreementInstalment.agreement_id))
        .where(AgreementInstalment.charge_id.in_(charge_ids))
        .execution_options(populate_existing=True))).all()  # fresh: a batch reads again after a rollback
    return {row[0].charge_id: (row[0], row[1]) for row in rows}


async def agreement_parts(session: AsyncSession, agreement_id: uuid.UUID
                          ) -> tuple[list[AgreementInstalment], list[AgreementCharge]]:
    instalments = list((await session.execute(select(AgreementInstalment).where(
        AgreementInstalment.agreement_id == agreement_id).order_by(AgreementInstalment.number))).scalars())
    replaced = list((await session.execute(select(AgreementCharge).where(
        AgreementCharge.agreement_id == agreement_id))).scalars())
    return instalments, replaced
