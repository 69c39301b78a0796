"""Invoice issuing as a routine: every morning at 07:00 local, each cleared payment whose charge has no
nota fiscal yet gets one, issued through the tenant's Focus NFe connector and followed until the city
hall authorises or rejects it.

Period: the local day (``YYYY-MM-DD``). Items: one per charge paid in the 35 days up to the end of that
day whose charge has no fiscal document of any status (a payment without a charge, or of a refunded or
canceled charge, is skipped; two payments of one charge make one item, the first). The window keeps a
tenant that switches the routine on from invoicing years of history, and lets a day the scheduler missed
be caught up by the next day's run.

An item's life (``work``):

1. send: the charge's Focus NFe ``ref`` is ``<customer hex>-<payment hex>-<n>``, where ``n`` counts the
   charge's Focus NFe documents that ended rejected or canceled, plus one. The fiscal document (status
   processing, ``external_id`` = ref) is written with the POST in one transaction; Focus NFe dedupes by
   ref, so a crash after its answer and before our commit re-sends the same ref, which it refuses as
   already held (422), and the item goes on following that nota (``FocusNfe.submit``);
2. follow: the item waits (30 s first, then half the time since sending, at most an hour) and reads the
   nota's status. ``autorizado`` and ``erro_autorizacao`` are stored as the canonical events the hook
   path makes (``FocusNfe.normalise``: same external ids, so a hook and a poll never double up); their
   process steps mark the document authorised (and may start the customer) or rejected (and tell the
   front office the city hall's words, which is why the failed item does not tell them again).
   A nota still processing after 48 h fails the item; its document stays processing, so retrying the
   item follows the same ref again rather than issuing a second nota.

A rejected nota's ref stays with Focus NFe, and a rejected or canceled document no longer counts as the
charge's live one: retrying the failed item (``engine.retry_failed``) issues under the next ``n``, a new
ref and a new document, and the rejected one stays on record with the city hall's message. A re-run of a
period does not pick a rejected charge again (it has a document): retrying is a person's decision, after
fixing what the city hall refused, not something a daily run repeats every morning.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.billing.models import Charge, ChargeStatus, Payment
from backoffice.tenants.connections import CallFailed
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.fiscal.models import FiscalDocument, FiscalStatus
from backoffice.tenants.fiscal.ports import FiscalIssuer, Nota, NotaState, Tomador
from backoffice.tenants.policies.templates import format_money
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.catalogue import Daily, ItemSpec, Outcome, Plan, Routine
from backoffice.tenants.routines.engine import RoutineUnavailable, tenant_of
from backoffice.tenants.routines.gateways import connection_for, open_port
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunItem

log = logging.getLogger(__name__)

KINDS = ("focusnfe",)
SOURCE = "focusnfe"
PURPOSE = "fiscal issuer"
LOOKBACK = timedelta(days=35)  # the period's day and the 34 before it: older payments are not invoiced here
FIRST_CHECK = timedelta(seconds=30)
LONGEST_CHECK = timedelta(hours=1)
GIVE_UP = timedelta(hours=48)  # a nota processing this long is handed to people
DESCRIPTION = "Prestação de serviços"
SETTLED = (FiscalStatus.REJECTED, FiscalStatus.CANCELED)  # documents that no longer hold the charge's ref


# --- plan -------------------------------------------------------------------------------------------------

async def _issuer(session: AsyncSession) -> FiscalIssuer:
    """The tenant's Focus NFe connector, opened, with what issuing needs filled in."""
    connection = await connection_for(session, KINDS, PURPOSE)
    issuer: FiscalIssuer = await open_port(session, connection)
    missing = issuer.missing_for_issuing()
    if missing:
        raise RoutineUnavailable(f"connector {connection.name!r} cannot issue notas yet: fill in "
                                 f"{', '.join(missing)} in its configuration")
    return issuer


def _window(timezone: str, period: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    day = date.fromisoformat(period)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return end - LOOKBACK, end


async def _plan(session: AsyncSession, run: RoutineRun) -> Plan:
    await _issuer(session)
    tenant = await session.get(Tenant, tenant_of(session))
    start, end = _window(tenant.timezone, run.period)
    has_document = select(FiscalDocument.id).where(FiscalDocument.charge_id == Payment.charge_id).exists()
    rows = (await session.execute(
        select(Payment, Customer.name)
        .join(Charge, and_(Charge.tenant_id == Payment.tenant_id, Charge.id == Payment.charge_id))
        .join(Customer, and_(Customer.tenant_id == Payment.tenant_id, Customer.id == Payment.customer_id))
        .where(Payment.paid_at >= start, Payment.paid_at < end, Charge.status == ChargeStatus.PAID, ~has_document)
        .order_by(Payment.paid_at, Payment.id)
    )).all()
    zone, items, charges = ZoneInfo(tenant.timezone), [], set()
    for payment, name in rows:
        if payment.charge_id in charges:
            continue
        charges.add(payment.charge_id)
        paid = payment.paid_at.astimezone(zone).date().isoformat()
        items.append(ItemSpec(
            key=f"payment:{payment.id}", label=f"{name} — {format_money(payment.amount_cents, tenant.locale)}, paid {paid}",
            customer_id=payment.customer_id,
            data={"payment_id": str(payment.id), "charge_id": str(payment.charge_id),
                  "amount_cents": payment.amount_cents}))
    return Plan(items=items)


# --- work -------------------------------------------------------------------------------------------------

async def _work(session: AsyncSession, run: RoutineRun, item: RunItem) -> Outcome:
    try:
        issuer = await _issuer(session)
    except RoutineUnavailable as error:
        # The connector went away or lost its prestador data after the plan (or a retry run, which has
        # no plan step): staff's to fix, nothing the customer's front office can act on.
        return Outcome.failed(str(error), notify=False)
    if item.status == ItemStatus.WAITING:
        return await _follow(session, item, issuer)
    return await _send(session, item, issuer)


async def _send(session: AsyncSession, item: RunItem, issuer: FiscalIssuer) -> Outcome:
    try:
        payment = await get_owned(session, Payment, uuid.UUID(item.data["payment_id"]))
        charge = await get_owned(session, Charge, payment.charge_id)
        customer = await get_owned(session, Customer, payment.customer_id)
    except NotFound as error:
        return Outcome.failed(f"nothing to invoice: {error}")
    documents = list((await session.execute(
        select(FiscalDocument).where(FiscalDocument.charge_id == charge.id)
        .order_by(FiscalDocument.created_at, FiscalDocument.id))).scalars())
    issued = next((d for d in documents if d.status == FiscalStatus.AUTHORIZED), None)
    if issued is not None:  # a hook, or an earlier run, got there first
        return Outcome.done(ref=issued.external_id, number=issued.number, pdf_url=issued.pdf_url)
    ours = [d for d in documents if d.source == issuer.source]
    document = next((d for d in reversed(ours) if d.status == FiscalStatus.PROCESSING), None)
    if document is None:
        if charge.status != ChargeStatus.PAID:  # refunded or canceled since the plan: nothing to invoice
            return Outcome.done(skipped=f"the charge is {charge.status.value}; no nota issued")
        attempt = sum(1 for d in ours if d.status in SETTLED) + 1
        document = FiscalDocument(
            customer_id=customer.id, charge_id=charge.id, kind="nfse", status=FiscalStatus.PROCESSING,
            amount_cents=payment.amount_cents, source=issuer.source,
            external_id=issuer.ref_for(customer.id, f"{payment.id.hex}-{attempt}"), created_at=clock.now())
        session.add(document)
        await session.flush()
    tenant = await session.get(Tenant, tenant_of(session))
    tomador = Tomador(tax_id_kind=customer.tax_id_kind, tax_id=customer.tax_id, name=customer.name,
                      email=customer.email)
    nota = await issuer.submit(
        document.external_id, issued_at=clock.now().astimezone(ZoneInfo(tenant.timezone)), tomador=tomador,
        amount_cents=payment.amount_cents,
        description=_description(issuer.description_opening(), charge, payment, tenant.timezone))
    sent = {"ref": document.external_id, "sent_at": clock.now().isoformat()}
    return await _outcome(session, item, issuer, document, nota, sent)


def _description(opening: str | None, charge: Charge, payment: Payment, timezone: str) -> str:
    paid = payment.paid_at.astimezone(ZoneInfo(timezone)).strftime("%d/%m/%Y")
    text = opening or DESCRIPTION
    if charge.description:
        text = f"{text}: {charge.description}"
    return f"{text} (pagamento recebido em {paid})"


async def _follow(session: AsyncSession, item: RunItem, issuer: FiscalIssuer) -> Outcome:
    ref = item.result["ref"]
    document = (await session.execute(select(FiscalDocument).where(
        FiscalDocument.source == issuer.source, FiscalDocument.external_id == ref))).scalar_one_or_none()
    try:
        nota = await issuer.status(ref)
        if nota is None or document is None:
            # Focus NFe does not know a ref it accepted (or our document of it is gone): send it again,
            # under the same ref, which makes a repeat harmless.
            log.warning("focusnfe ref %s: %s; sending it again", ref,
                        "unknown to Focus NFe" if nota is None else "no fiscal document")
            return await _send(session, item, issuer)
    except CallFailed as error:
        if not error.retryable:
            raise
        # Focus NFe is down for a moment: looking again later is all there is to do (the send is done).
        return _wait(item, problem=str(error))
    # Whatever a hook recorded meanwhile, the nota's status at Focus NFe decides (and its events dedupe).
    return await _outcome(session, item, issuer, document, nota, {})


async def _outcome(session: AsyncSession, item: RunItem, issuer: FiscalIssuer, document: FiscalDocument,
                   nota: Nota, sent: dict[str, Any]) -> Outcome:
    ref, status = document.external_id, nota.word
    if nota.state == NotaState.PROCESSING:
        return _wait(item, **sent)
    if nota.state in (NotaState.AUTHORIZED, NotaState.REJECTED):
        try:
            for event in nota.events:
                await ingest(session, tenant_of(session), event)
        except ValidationFailed as error:
            return Outcome.failed(f"{issuer.title}'s answer for nota {ref} cannot be recorded: {error}", ref=ref)
        if nota.state == NotaState.AUTHORIZED:
            return Outcome.done(ref=ref, number=nota.number, pdf_url=nota.pdf_url,
                                verification_code=nota.verification_code, status=status, problem=None)
        message = nota.events[0]["data"]["message"]
        # Marked now as well as by the event's process step: a retry of this item must find the ref used up.
        document.status, document.message = FiscalStatus.REJECTED, message
        return Outcome.failed(f"the city hall rejected the nota fiscal: {message}", notify=False, ref=ref,
                              status=status)
    if nota.state == NotaState.CANCELED:
        document.status = FiscalStatus.CANCELED
        return Outcome.failed(f"nota {ref} is {status} at {issuer.title}; retrying issues a new one", ref=ref,
                              status=status)
    return Outcome.failed(f"{issuer.title} answered an unknown status {status!r} for nota {ref}", ref=ref)


def _wait(item: RunItem, problem: str | None = None, **sent: Any) -> Outcome:
    started = datetime.fromisoformat(sent.get("sent_at") or item.result["sent_at"])
    waited = clock.now() - started
    if waited >= GIVE_UP:
        ref = sent.get("ref") or item.result["ref"]
        return Outcome.failed(
            f"Focus NFe has been processing nota {ref} for {waited.total_seconds() / 3600:.0f} h without an answer "
            f"from the city hall; retry the item to follow it again (the same nota, nothing is issued twice)")
    delay = min(max(waited / 2, FIRST_CHECK), LONGEST_CHECK)
    return Outcome.waiting(delay, status="processando_autorizacao", problem=problem, **sent)


INVOICES = Routine(
    name="invoices",
    title={"pt-BR": "Emissão de notas fiscais", "en": "Invoice issuing"},
    item_noun={"pt-BR": "notas fiscais emitidas", "en": "notas fiscais issued"},
    schedule=Daily(hour=7),
    plan=_plan,
    work=_work,
    # Sends Focus NFe could not take (5xx, timeouts) before the item fails; a failed status check only waits.
    max_attempts=6,
    requires=KINDS,
)
