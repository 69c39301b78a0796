"""What a batch's process steps will read, read before they run: one statement per table for the batch.

A started customer's step asks for its charge and payment by the gateway's ids, the customer's contracts,
its authorised notas fiscais and signed contracts (the documents its notification links), and its
late-payment cases. Asked one event at a time, that was six statements per event; here it is one per
table per batch. For a key the batch read, a row that is not here does not exist; a step that creates or
changes such a row tells ``Known`` (``add``), so the next event of the batch sees it. A key the batch did
not read (a charge named only inside a handler) falls back to a query.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.agreements.models import Agreement, AgreementInstalment
from backoffice.tenants.agreements.queries import instalment_of, instalments_of
from backoffice.tenants.billing.models import Charge, Contract, Payment
from backoffice.tenants.billing.service import SessionLookups
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.dunning.models import DunningCase
from backoffice.tenants.events.models import Event
from backoffice.tenants.fiscal.models import FiscalDocument, FiscalStatus
from backoffice.tenants.signatures.models import Signature, SignatureStatus


def _charge_key(event: Event) -> tuple[str, str] | None:
    charge = (event.data or {}).get("charge")
    if not isinstance(charge, dict) or not charge.get("external_id"):
        return None
    return (charge.get("source") or event.source, str(charge["external_id"]))  # as upsert_charge looks it up


def _payment_key(event: Event) -> tuple[str, str] | None:
    payment = (event.data or {}).get("payment")
    if not isinstance(payment, dict):
        return None
    return (event.source, str(payment.get("external_id") or event.external_id))


@dataclass
class Known(SessionLookups):
    session: AsyncSession
    customers: set[uuid.UUID] = field(default_factory=set)
    charges: dict[tuple[str, str], Charge | None] = field(default_factory=dict)
    payments: dict[tuple[str, str], Payment | None] = field(default_factory=dict)
    _contracts: dict[uuid.UUID, list[Contract]] = field(default_factory=lambda: defaultdict(list))
    _fiscal: dict[uuid.UUID, list[FiscalDocument]] = field(default_factory=lambda: defaultdict(list))
    _signatures: dict[uuid.UUID, list[Signature]] = field(default_factory=lambda: defaultdict(list))
    _cases: dict[uuid.UUID, list[DunningCase]] = field(default_factory=lambda: defaultdict(list))
    # The agreement instalment each charge the batch read belongs to (instalments are made by the agreements
    # service in its own transaction, never by a step: what was read stays true for the batch).
    _instalments: dict[uuid.UUID, tuple[AgreementInstalment, Agreement] | None] = field(default_factory=dict)

    @classmethod
    async def read(cls, session: AsyncSession, events: list[Event], customers: dict[uuid.UUID, Customer]) -> Known:
        """Read afresh (what the session holds of these rows is overwritten: this also runs after a rolled
        back savepoint, whose rows are expired or gone)."""
        known = cls(session, customers={c.id for c in customers.values()})
        fresh = {"populate_existing": True}
        ids = sorted(known.customers)
        charge_keys = {k for e in events if (k := _charge_key(e))}
        payment_keys = {k for e in events if (k := _payment_key(e))}
        known.charges = dict.fromkeys(charge_keys)
        known.payments = dict.fromkeys(payment_keys)
        if charge_keys:
            for charge in (await session.execute(select(Charge).where(
                    tuple_(Charge.source, Charge.external_id).in_(sorted(charge_keys))).execution_options(**fresh))).scalars():
                known.charges[(charge.source, charge.external_id)] = charge
            charge_ids = [charge.id for charge in known.charges.values() if charge is not None]
            known._instalments = dict.fromkeys(charge_ids)
            if charge_ids:
                known._instalments.update(await instalments_of(session, charge_ids))
        if payment_keys:
            for payment in (await session.execute(select(Payment).where(
                    tuple_(Payment.source, Payment.external_id).in_(sorted(payment_keys))).execution_options(**fresh))).scalars():
                known.payments[(payment.source, payment.external_id)] = payment
        if ids:
            for model, into in ((Contract, known._contracts), (DunningCase, known._cases)):
                query = select(model).where(model.customer_id.in_(ids)).execution_options(**fresh)
                for row in (await session.execute(query)).scalars():
                    into[row.customer_id].append(row)
            fiscal = select(FiscalDocument).where(FiscalDocument.customer_id.in_(ids),
                                                  FiscalDocument.status == FiscalStatus.AUTHORIZED
                                                  ).execution_options(**fresh)
            for doc in (await session.execute(fiscal)).scalars():
                known._fiscal[doc.customer_id].append(doc)
            signed = select(Signature).where(Signature.customer_id.in_(ids), Signature.status == SignatureStatus.SIGNED
                                             ).execution_options(**fresh)
            for sig in (await session.execute(signed)).scalars():
                known._signatures[sig.customer_id].append(sig)
        return known

    # --- the lookups of tenants/billing/service.py ---------------------------------------------------

    async def charge(self, source: str, external_id: str) -> Charge | None:
        key = (source, str(external_id))
        return self.charges[key] if key in self.charges else await super().charge(source, external_id)

    async def payment(self, source: str, external_id: str) -> Payment | None:
        key = (source, str(external_id))
        return self.payments[key] if key in self.payments else await super().payment(source, external_id)

    async def contracts(self, customer: Customer) -> list[Contract]:
        if customer.id in self.customers:
            return list(self._contracts[customer.id])
        return await super().contracts(customer)

    def add(self, row: Any) -> None:
        if isinstance(row, Charge):
            self.charges[(row.source, row.external_id)] = row
        elif isinstance(row, Payment):
            self.payments[(row.source, row.external_id)] = row
        elif isinstance(row, Contract):
            self._add(self._contracts, row)
        elif isinstance(row, DunningCase):
            self._add(self._cases, row)
        elif isinstance(row, FiscalDocument):
            self._add(self._fiscal, row)
        elif isinstance(row, Signature):
            self._add(self._signatures, row)

    @staticmethod
    def _add(into: dict[uuid.UUID, list], row: Any) -> None:
        if row not in into[row.customer_id]:
            into[row.customer_id].append(row)

    # --- what the process steps ask besides ---------------------------------------------------------

    async def instalment(self, charge: Charge) -> tuple[AgreementInstalment, Agreement] | None:
        """The agreement instalment the charge is, with its agreement; None for a plain charge."""
        if charge.id in self._instalments:
            return self._instalments[charge.id]
        return await instalment_of(self.session, charge.id)

    async def cases(self, customer: Customer) -> list[DunningCase]:
        """Every late-payment case of the customer, whatever its status (callers filter)."""
        if customer.id in self.customers:
            return list(self._cases[customer.id])
        query = select(DunningCase).where(DunningCase.customer_id == customer.id)
        return list((await self.session.execute(query)).scalars())

    async def documents(self, customer: Customer) -> tuple[list[FiscalDocument], list[Signature]]:
        """The customer's authorised notas fiscais and signed contracts, as of now in this transaction."""
        if customer.id not in self.customers:
            fiscal = (await self.session.execute(select(FiscalDocument).where(
                FiscalDocument.customer_id == customer.id, FiscalDocument.status == FiscalStatus.AUTHORIZED))).scalars()
            signed = (await self.session.execute(select(Signature).where(
                Signature.customer_id == customer.id, Signature.status == SignatureStatus.SIGNED))).scalars()
            return list(fiscal), list(signed)
        return ([d for d in self._fiscal[customer.id] if d.status == FiscalStatus.AUTHORIZED],
                [s for s in self._signatures[customer.id] if s.status == SignatureStatus.SIGNED])
