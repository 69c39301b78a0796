"""A customer's file: what a front-office person needs in hand before calling the customer.

Plan and contracts, charges with their status and due dates, the open and overdue balance, how the
customer last paid, documents (notas fiscais, signed contracts) with their links, and the open
late-payment case with its deadline. One statement per table, all through the tenant's session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.billing.models import Charge, ChargeStatus, Contract, ContractStatus, Payment
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.fiscal.models import FiscalDocument
from backoffice.tenants.signatures.models import Signature, SignatureStatus

CHARGES_SHOWN = 24
OPEN_CHARGES = (ChargeStatus.PENDING, ChargeStatus.OVERDUE)
OPEN_CASES = (CaseStatus.GRACE, CaseStatus.BLOCKED)


@dataclass
class Document:
    kind: str  # nfse | nfe | contract
    number: str | None
    status: str
    url: str | None
    at: object | None  # issued or signed when known


@dataclass
class CustomerFile:
    contracts: list[Contract] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    open_cents: int = 0
    overdue_cents: int = 0
    oldest_overdue: date | None = None
    last_payment: Payment | None = None
    documents: list[Document] = field(default_factory=list)
    case: DunningCase | None = None
    case_charge: Charge | None = None

    @property
    def active_plans(self) -> list[Contract]:
        return [c for c in self.contracts if c.status == ContractStatus.ACTIVE]


async def customer_file(session: AsyncSession, customer_id: uuid.UUID) -> CustomerFile:
    def rows(query):
        return session.execute(query)

    contracts = (await rows(select(Contract).where(Contract.customer_id == customer_id)
                            .order_by(Contract.status != ContractStatus.ACTIVE, Contract.created_at.desc()))).scalars()
    charges = list((await rows(select(Charge).where(Charge.customer_id == customer_id)
                               .order_by(Charge.due_date.desc(), Charge.id.desc()).limit(CHARGES_SHOWN))).scalars())
    open_rows = (await rows(select(Charge.status, Charge.amount_cents, Charge.due_date).where(
        Charge.customer_id == customer_id, Charge.status.in_(OPEN_CHARGES)))).all()
    last_payment = (await rows(select(Payment).where(Payment.customer_id == customer_id)
                               .order_by(Payment.paid_at.desc()).limit(1))).scalar_one_or_none()
    fiscal = (await rows(select(FiscalDocument).where(FiscalDocument.customer_id == customer_id)
                         .order_by(FiscalDocument.created_at.desc()).limit(CHARGES_SHOWN))).scalars()
    signed = (await rows(select(Signature).where(Signature.customer_id == customer_id)
                         .order_by(Signature.created_at.desc()).limit(CHARGES_SHOWN))).scalars()
    case = (await rows(select(DunningCase).where(DunningCase.customer_id == customer_id,
                                                 DunningCase.status.in_(OPEN_CASES))
                       .order_by(DunningCase.deadline_at).limit(1))).scalar_one_or_none()

    overdue = [(cents, due) for status, cents, due in open_rows if status == ChargeStatus.OVERDUE]
    documents = [Document(d.kind, d.number, d.status.value, d.pdf_url, d.issued_at) for d in fiscal]
    documents += [Document("contract", s.external_id, s.status.value, s.document_url, s.signed_at)
                  for s in signed if s.status != SignatureStatus.CANCELED]
    return CustomerFile(
        contracts=list(contracts), charges=charges, open_cents=sum(cents for _s, cents, _d in open_rows),
        overdue_cents=sum(cents for cents, _d in overdue), oldest_overdue=min((d for _c, d in overdue), default=None),
        last_payment=last_payment, documents=documents, case=case,
        case_charge=next((c for c in charges if case and c.id == case.charge_id), None),
    )
