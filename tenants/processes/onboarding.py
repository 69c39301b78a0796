"""Start of a customer: a cleared first payment, an issued nota fiscal or a signed contract (the tenant's
policy picks which) tells the responsible person everything about the purchase, opens the onboarding task
and provisions the customer on the tenant's platform."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.tenants.billing.models import ContractStatus
from backoffice.tenants.billing.service import ensure_contract, record_payment, upsert_charge
from backoffice.tenants.customers.lifecycle import transition
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.fiscal.models import FiscalDocument, FiscalStatus
from backoffice.tenants.processes import late_payment
from backoffice.tenants.processes.context import charge_view, documents_view, payment_view, plan_view
from backoffice.tenants.processes.engine import Step, handles
from backoffice.tenants.signatures.models import Signature, SignatureStatus
from backoffice.tenants.timeline.messages import Msg, in_language

TRIGGER_NAMES = {"payment.cleared": Msg("first payment cleared"), "invoice.issued": Msg("nota fiscal issued"),
                 "contract.signed": Msg("contract signed")}
# Why a customer started, per trigger (a sentence each: a translation needs the whole of it).
STARTED_BY = {
    "payment.cleared": Msg("First payment cleared: this company's policy starts customers on the first payment"),
    "invoice.issued": Msg("Nota fiscal issued: this company's policy starts customers on the nota fiscal"),
    "contract.signed": Msg("Contract signed: this company's policy starts customers on the signed contract"),
}


@handles("payment.created")
async def on_payment_created(step: Step) -> None:
    await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)


@handles("payment.cleared")
async def on_payment_cleared(step: Step) -> None:
    data = step.data
    charge = await upsert_charge(step.session, step.customer, step.event.source, data["charge"], known=step.known)
    payment_id = data["payment"].get("external_id") or step.event.external_id
    payment = await record_payment(step.session, step.customer, charge, step.event.source, payment_id, data["payment"],
                                   known=step.known)
    await start_if_trigger(step, "payment.cleared", charge=charge_view(charge), payment=payment_view(payment))
    await late_payment.resolve_after_payment(step, charge)


@handles("invoice.issued")
async def on_invoice_issued(step: Step) -> None:
    doc = step.data["document"]
    fiscal = await _fiscal(step, doc)
    fiscal.status = FiscalStatus.AUTHORIZED
    fiscal.number, fiscal.series = doc.get("number"), doc.get("series")
    fiscal.verification_code = doc.get("verification_code")
    fiscal.amount_cents = doc.get("amount_cents", fiscal.amount_cents)  # Focus NFe's status omits it; keep what was issued
    fiscal.pdf_url, fiscal.xml_url = doc.get("pdf_url"), doc.get("xml_url")
    fiscal.issued_at = datetime.fromisoformat(doc["issued_at"]) if doc.get("issued_at") else step.event.occurred_at
    step.known.add(fiscal)
    await start_if_trigger(step, "invoice.issued")


@handles("invoice.rejected")
async def on_invoice_rejected(step: Step) -> None:
    doc = step.data["document"]
    fiscal = await _fiscal(step, doc)
    fiscal.status = FiscalStatus.REJECTED
    fiscal.message = step.data["message"]
    reason = Msg("The fiscal issuer rejected the nota fiscal: {message}", message=step.data["message"])
    context = {**step.base_context(), "message": step.data["message"], "document": doc, "reason": reason}
    await step.tell_responsible("invoice_rejected", kind="invoice.rejected", context=context, reason=reason)


@handles("contract.signed")
async def on_contract_signed(step: Step) -> None:
    data = step.data
    signature = (await step.session.execute(select(Signature).where(
        Signature.source == step.event.source, Signature.external_id == data["envelope_id"]))).scalar_one_or_none()
    if signature is None:
        signature = Signature(id=new_id(), customer_id=step.customer.id, source=step.event.source,
                              external_id=data["envelope_id"], created_at=clock.now())
        step.session.add(signature)
    signature.status = SignatureStatus.SIGNED
    signature.document_url = data.get("document_url")
    signature.signed_at = datetime.fromisoformat(data["signed_at"]) if data.get("signed_at") else step.event.occurred_at
    step.known.add(signature)
    await start_if_trigger(step, "contract.signed")


async def _fiscal(step: Step, doc: dict) -> FiscalDocument:
    fiscal = (await step.session.execute(select(FiscalDocument).where(
        FiscalDocument.source == step.event.source, FiscalDocument.external_id == doc["external_id"]
    ))).scalar_one_or_none()
    if fiscal is None:
        fiscal = FiscalDocument(id=new_id(), customer_id=step.customer.id, source=step.event.source, external_id=doc["external_id"],
                                created_at=clock.now())
        step.session.add(fiscal)
    return fiscal


async def start_if_trigger(step: Step, trigger: str, *, charge: dict | None = None, payment: dict | None = None) -> None:
    """Start the customer when ``trigger`` is this tenant's start trigger and the customer is onboarding."""
    customer = step.customer
    if customer.lifecycle != Lifecycle.ONBOARDING:
        return
    if step.policy.start_trigger != trigger:
        step.effects.timeline(
            Msg("Recorded {what}; the customer starts on: {trigger}", what=TRIGGER_NAMES[trigger],
                trigger=TRIGGER_NAMES[step.policy.start_trigger]),
            reason=Msg("policy v{version}: start trigger is {trigger}", version=step.policy_version,
                       trigger=step.policy.start_trigger))
        return
    reason = STARTED_BY[trigger]
    await transition(step.session, customer, Lifecycle.ACTIVE, reason=reason, event_id=step.event.id)
    contract = await ensure_contract(step.session, customer, step.data.get("plan"), known=step.known)
    if contract is not None and contract.status == ContractStatus.PENDING:
        contract.status = ContractStatus.ACTIVE
        contract.started_at = step.now
    due = step.now + timedelta(days=step.policy.onboarding_task_due_days)
    title = Msg("Onboarding: {customer}", customer=customer.name)
    context = {
        **step.base_context(), "trigger": trigger, "plan": plan_view(contract or step.data.get("plan")),
        "charge": charge, "payment": payment, "started_at": step.now.isoformat(),
        "documents": documents_view(*await step.known.documents(customer), step.data.get("documents")),
        "reason": reason,
        # The company's texts (rendered from its templates, in its language) name the task in that language too.
        "task": {"title": in_language(title, step.tenant.locale), "due_date": due.date().isoformat(),
                 "said": title.stored()},  # so a reader of another language reads the title in theirs
    }
    await step.tell_responsible("start:notify", kind="customer.started", context=context, reason=reason)
    people = await step.responsible()
    if people:
        await step.effects.task(
            "start:task", kind="onboarding", assignee=people[0], title=title,
            description=step.render("customer.started", context).body, checklist=step.policy.onboarding_checklist,
            due_at=due, reason=reason)
    if step.policy.provision_on_start:
        await step.effects.command("start:provision", command="provision", reason=reason,
                                   data={"plan": plan_view(contract or step.data.get("plan"))})
