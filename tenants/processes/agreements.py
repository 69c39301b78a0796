"""Renegotiation (acordo), the process steps: an agreement recorded, its instalments paid, one missed.

- ``agreement.made`` (from ``tenants/agreements/service.py``): the customer's timeline says what was
  agreed and by whom; the responsible people are told.
- ``payment.cleared`` of an instalment (the gateway's webhook, seen before the payment process records
  the payment as for any charge): the first one paid unblocks the customer (or ends the grace) and tells
  the responsible people; the last one completes the agreement and resolves the cases that waited on it.
- ``payment.overdue`` of an instalment: the agreement is broken and its cases reopen under the tenant's
  current policy (``tenants/dunning/agreements.py``: a fresh grace deadline, then the usual block; a
  customer never unblocked stays blocked). The overdue instalment opens no case of its own: the debt's
  case is the one reopened.

A payment of a customer with no case waiting on an agreement costs nothing here (the cases are read for
the batch already); an overdue charge costs one indexed lookup.
"""

from __future__ import annotations

import uuid
from typing import Any

from backoffice.platform.audit.service import Actor, record
from backoffice.tenants.agreements.models import Agreement, AgreementStatus, InstalmentStatus
from backoffice.tenants.agreements.queries import agreement_parts
from backoffice.tenants.billing.models import Charge, ChargeStatus, ContractStatus
from backoffice.tenants.billing.service import upsert_charge
from backoffice.tenants.customers.lifecycle import (
    SERVICE_STAGES, contract_transition, stage_from, summarise, transition,
)
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.dunning.agreements import reopen_case, resolve_after_agreement
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.effects.service import Rendered
from backoffice.tenants.policies.templates import format_date, format_money
from backoffice.tenants.processes.context import charge_view
from backoffice.tenants.processes.late_payment import deadline_for, follow_cases, reminder_times, scope_of
from backoffice.tenants.processes.engine import Step, handles, intercepts
from backoffice.tenants.timeline.messages import Day, Money, Msg

PROCESS = Actor.system("process:agreements")
# What the responsible people read, in the tenant's language (pt-BR first).
MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    "agreement.made": {
        "pt-BR": ("Acordo registrado: {customer}",
                  "{actor} registrou um acordo com {customer}: {count} parcela(s), total de {total}, primeira "
                  "parcela em {first_due}. As cobranças vencidas substituídas ({replaced}) foram canceladas no "
                  "gateway; o caso de inadimplência aguarda o acordo e não bloqueia enquanto ele estiver em dia."
                  "\n\nFicha do cliente: {url}"),
        "en": ("Agreement recorded: {customer}",
               "{actor} recorded an agreement with {customer}: {count} instalment(s), {total} in all, the first "
               "due on {first_due}. The overdue charges it replaces ({replaced}) were cancelled at the gateway; the "
               "late-payment case waits on the agreement and blocks nothing while it is kept.\n\nCustomer record: {url}"),
    },
    "agreement.first_paid": {
        "pt-BR": ("Primeira parcela do acordo paga: {customer}",
                  "{customer} pagou a parcela 1 de {count} do acordo ({amount}). {unblock}\n\nFicha do cliente: {url}"),
        "en": ("First instalment of the agreement paid: {customer}",
               "{customer} paid instalment 1 of {count} of the agreement ({amount}). {unblock}\n\nCustomer record: {url}"),
    },
    "agreement.completed": {
        "pt-BR": ("Acordo quitado: {customer}",
                  "{customer} pagou a última das {count} parcelas do acordo ({total} no total). O caso de "
                  "inadimplência foi encerrado.\n\nFicha do cliente: {url}"),
        "en": ("Agreement paid in full: {customer}",
               "{customer} paid the last of the agreement's {count} instalments ({total} in all). The late-payment "
               "case is closed.\n\nCustomer record: {url}"),
    },
    "agreement.broken": {
        "pt-BR": ("Acordo descumprido: {customer}",
                  "A parcela {number} de {count} do acordo ({amount}, vencimento {due}) venceu sem pagamento. "
                  "{reopened}\n\nFicha do cliente: {url}"),
        "en": ("Agreement broken: {customer}",
               "Instalment {number} of {count} of the agreement ({amount}, due {due}) passed its due date unpaid. "
               "{reopened}\n\nCustomer record: {url}"),
    },
}
# The "why" line of each notification, in the tenant's language (the English reason stays on the effect).
WHY: dict[str, dict[str, str]] = {
    "agreement.made": {"pt-BR": "Acordo registrado por {actor}: {count} parcela(s) substituem as cobranças vencidas",
                       "en": "Agreement recorded by {actor}: {count} instalment(s) replace the overdue charges"},
    "agreement.first_paid": {"pt-BR": "A primeira parcela do acordo foi paga",
                             "en": "The first instalment of the agreement was paid"},
    "agreement.completed": {"pt-BR": "Todas as parcelas do acordo foram pagas",
                            "en": "Every instalment of the agreement was paid"},
    "agreement.broken": {"pt-BR": "A parcela {number} de {count} do acordo venceu sem pagamento",
                         "en": "Instalment {number} of {count} of the agreement passed its due date unpaid"},
}
PHRASES: dict[str, dict[str, str]] = {
    "unblocked": {"pt-BR": "O serviço foi desbloqueado automaticamente.",
                  "en": "The service was unblocked automatically."},
    "unblock_by_hand": {"pt-BR": "A política não desbloqueia automaticamente: desbloqueie manualmente.",
                        "en": "The policy does not unblock automatically: unblock by hand."},
    "grace_ended": {"pt-BR": "O cliente volta a ficar ativo.", "en": "The customer is active again."},
    "nothing": {"pt-BR": "Nenhuma ação é necessária.", "en": "No action is needed."},
    "reopened": {"pt-BR": "O caso de inadimplência foi reaberto pela política atual (v{version}): novo prazo até "
                          "{deadline}; sem pagamento, o serviço será bloqueado.",
                 "en": "The late-payment case was reopened under the current policy (v{version}): new deadline "
                       "{deadline}; unpaid, the service will be blocked."},
    "still_blocked": {"pt-BR": "O cliente continua bloqueado: o caso de inadimplência foi reaberto pela política atual "
                               "(v{version}).",
                      "en": "The customer stays blocked: the late-payment case was reopened under the current policy "
                            "(v{version})."},
}


def _locale(step: Step) -> str:
    return step.tenant.locale if step.tenant.locale in ("pt-BR", "en") else "pt-BR"


def _money(step: Step, cents: int) -> str:
    return format_money(cents, _locale(step))


def _day(step: Step, value) -> str:
    return format_date(value, step.tenant.timezone, _locale(step))


async def _tell(step: Step, kind: str, values: dict[str, Any], detail: dict[str, Any], reason: str, *,
                line: str) -> None:
    """One step of the agreement: on the customer's timeline, in the audit log (as the process), and told to
    the responsible people."""
    agreement = detail.get("agreement") or {}
    step.effects.timeline(line, reason=reason, ref={"agreement_id": agreement.get("id")})
    await record(step.session, actor=PROCESS, action=kind, target_type="agreement", target_id=agreement.get("id"),
                 tenant_id=step.tenant.id, reason=reason[:500],
                 detail={"customer_id": str(step.customer.id), "event_id": str(step.event.id),
                         "status": agreement.get("status")})
    title, body = MESSAGES[kind][_locale(step)]
    values = {"customer": step.customer.name, "url": step.base_context()["customer_url"], **values}
    rendered = Rendered(title.format(**values), body.format(**values))
    context = {**step.base_context(), **detail, "kind": kind, "reason": WHY[kind][_locale(step)].format(**values)}
    for person in await step.responsible():
        await step.effects.notify(kind, kind=kind, recipient=person, rendered=rendered, detail=context, reason=reason)


def _agreement_view(agreement: Agreement) -> dict[str, Any]:
    return {"id": str(agreement.id), "status": agreement.status.value, "instalments": agreement.instalment_count,
            "total_cents": agreement.total_cents, "first_due_date": agreement.first_due_date.isoformat()}


async def _waiting_cases(step: Step, case_ids: set[uuid.UUID]) -> list[DunningCase]:
    return [case for case in await step.known.cases(step.customer) if case.id in case_ids]


@handles("agreement.made")
async def on_agreement_made(step: Step) -> None:
    agreement = await step.session.get(Agreement, (step.tenant.id, uuid.UUID(step.data["agreement_id"])))
    if agreement is None:
        step.effects.timeline(Msg("Agreement not found"),
                              reason=Msg("the agreement named by the event does not exist"))
        return
    instalments, replaced = await agreement_parts(step.session, agreement.id)
    replaced_charges = [await step.session.get(Charge, (step.tenant.id, link.charge_id)) for link in replaced]
    reason = Msg("Agreement by {actor}: {count} instalment(s) of {total} in all replace {replaced} overdue charge(s)",
                 actor=agreement.proposed_by, count=agreement.instalment_count, total=Money(agreement.total_cents),
                 replaced=len(replaced))
    await _tell(step, "agreement.made", {
        "actor": agreement.proposed_by, "count": agreement.instalment_count, "total": _money(step, agreement.total_cents),
        "first_due": _day(step, agreement.first_due_date),
        "replaced": ", ".join(f"{_money(step, c.amount_cents)} ({_day(step, c.due_date)})" for c in replaced_charges),
    }, {"agreement": _agreement_view(agreement), "charges": [charge_view(c) for c in replaced_charges],
        "instalments": [{"number": i.number, "amount_cents": i.amount_cents, "due_date": i.due_date.isoformat()}
                        for i in instalments]}, reason,
        line=Msg("Agreement recorded: {count} instalment(s), first due {due}", count=agreement.instalment_count,
                 due=Day(agreement.first_due_date)))


async def _instalment(step: Step, *, only_if_waiting: bool):
    if only_if_waiting and not any(case.status == CaseStatus.AGREEMENT for case in await step.known.cases(step.customer)):
        return None
    data = step.data["charge"]
    charge = await step.known.charge(data.get("source") or step.event.source, data["external_id"])
    if charge is None:
        return None
    found = await step.known.instalment(charge)
    return (charge, *found) if found else None


async def _release(step: Step, cases: list[DunningCase], policy, charge: Charge, agreement: Agreement,
                   reason: str) -> str:
    """The first instalment paid: what the waiting cases reached (their contract, or every active contract
    and the customer) goes back to the stage the customer's other open cases give it; a blocked case gets
    its ``unblock`` command (scoped as the block was). The cases keep waiting until the last instalment."""
    if not policy.auto_unblock and any(case.blocked_at for case in cases):
        return "unblock_by_hand"
    contracts = await step.known.contracts(step.customer)
    others = [c for c in await step.known.cases(step.customer)
              if c.status in (CaseStatus.GRACE, CaseStatus.BLOCKED) and c not in cases]
    wide = [c.status == CaseStatus.BLOCKED for c in others if c.contract_id is None]
    unblocked = False
    for case in cases:
        reached = [c for c in contracts if c.status == ContractStatus.ACTIVE
                   and (case.contract_id is None or c.id == case.contract_id)]
        for contract in reached:
            own = [c.status == CaseStatus.BLOCKED for c in others if c.contract_id == contract.id]
            contract_transition(step.session, step.customer, contract, stage_from(wide + own), reason=reason,
                                event_id=step.event.id)
        if case.blocked_at is not None and not any(wide):
            await step.effects.command(f"agreement:unblock:{case.id}", command="unblock", reason=reason,
                                       data={"charge": charge_view(charge), "case_id": str(case.id),
                                             "agreement_id": str(agreement.id), **scope_of(case, contracts)})
            unblocked = True
    before = step.customer.lifecycle
    if before in SERVICE_STAGES:
        target = summarise(contracts, stage_from(wide))
        if target != before:
            await transition(step.session, step.customer, target, reason=reason, event_id=step.event.id)
    if unblocked:
        return "unblocked"
    return "grace_ended" if before == Lifecycle.IN_GRACE and step.customer.lifecycle == Lifecycle.ACTIVE else "nothing"


@intercepts("payment.cleared")
async def on_instalment_paid(step: Step) -> bool:
    found = await _instalment(step, only_if_waiting=True)
    if found is None:
        return False
    charge, instalment, agreement = found
    if instalment.status == InstalmentStatus.PAID:
        return False
    instalment.status = InstalmentStatus.PAID
    instalment.paid_at = step.now
    instalments, replaced = await agreement_parts(step.session, agreement.id)
    cases = await _waiting_cases(step, {link.case_id for link in replaced if link.case_id})
    detail = {"agreement": _agreement_view(agreement), "charge": charge_view(charge), "instalment": instalment.number}
    if agreement.status == AgreementStatus.PROPOSED:
        agreement.status = AgreementStatus.ACTIVE
        agreement.first_paid_at = step.now
        policy = await step.policy_of(max((c.policy_version for c in cases), default=step.policy_version))
        reason = Msg("The first instalment of the agreement was paid (instalment {number})", number=instalment.number)
        phrase = await _release(step, cases, policy, charge, agreement, reason)
        await _tell(step, "agreement.first_paid", {
            "count": agreement.instalment_count, "amount": _money(step, instalment.amount_cents),
            "unblock": PHRASES[phrase][_locale(step)]}, {**detail, "unblocked": phrase == "unblocked"}, reason,
            line=Msg("Agreement: instalment {number} of {count} paid, the first", number=instalment.number,
                     count=agreement.instalment_count))
    if all(i.status == InstalmentStatus.PAID for i in instalments):
        agreement.status = AgreementStatus.COMPLETED
        agreement.completed_at = step.now
        resolve_after_agreement(cases, step.now)
        reason = Msg("Every instalment of the agreement is paid ({count})", count=agreement.instalment_count)
        await follow_cases(step, reason=reason)
        await _tell(step, "agreement.completed", {"count": agreement.instalment_count,
                                                  "total": _money(step, agreement.total_cents)}, detail, reason,
                    line=Msg("Agreement paid in full: {count} instalment(s)", count=agreement.instalment_count))
    else:
        step.effects.timeline(Msg("Agreement instalment {number} of {count} paid", number=instalment.number,
                                  count=agreement.instalment_count),
                              reason=Msg("paid at the gateway"), ref={"agreement_id": str(agreement.id)})
    return False  # the payment itself is recorded by the payment process, as for any charge


@intercepts("payment.overdue")
async def on_instalment_missed(step: Step) -> bool:
    found = await _instalment(step, only_if_waiting=False)
    if found is None:
        return False
    charge, instalment, agreement = found
    await upsert_charge(step.session, step.customer, step.event.source, step.data["charge"], known=step.known)
    if charge.status == ChargeStatus.PAID or instalment.status == InstalmentStatus.PAID:
        step.effects.timeline(Msg("Overdue notice ignored: the instalment is already paid"),
                              reason=Msg("payment already cleared"))
        return True
    charge.status = ChargeStatus.OVERDUE
    instalment.status = InstalmentStatus.OVERDUE
    if agreement.status not in (AgreementStatus.PROPOSED, AgreementStatus.ACTIVE):
        title = (Msg("Agreement instalment {number} overdue; the agreement was already completed",
                     number=instalment.number) if agreement.status == AgreementStatus.COMPLETED else
                 Msg("Agreement instalment {number} overdue; the agreement was already broken",
                     number=instalment.number))
        step.effects.timeline(title, reason=Msg("its case was reopened before"),
                              ref={"agreement_id": str(agreement.id)})
        return True
    agreement.status = AgreementStatus.BROKEN
    agreement.broken_at = step.now
    _, replaced = await agreement_parts(step.session, agreement.id)
    cases = await _waiting_cases(step, {link.case_id for link in replaced if link.case_id})
    policy = step.policy
    deadline = deadline_for(step.now, step.tenant.timezone, policy.grace_days)
    still_blocked = step.customer.lifecycle == Lifecycle.BLOCKED
    reason = Msg("Instalment {number} of the agreement is overdue: the agreement is broken and its case reopens "
                 "under policy v{version}", number=instalment.number, version=step.policy_version)
    for case in cases:
        await reopen_case(step.session, step.tenant.id, case, agreement_id=agreement.id,
                          policy_version=step.policy_version, deadline_at=deadline,
                          reminders=reminder_times(deadline, step.tenant.timezone, policy, step.now),
                          still_blocked=still_blocked)
    await follow_cases(step, reason=reason)  # the reopened cases reach their contracts (or the customer) again
    phrase = PHRASES["still_blocked" if still_blocked else "reopened"][_locale(step)].format(
        version=step.policy_version, deadline=format_date(deadline, step.tenant.timezone, _locale(step)))
    await _tell(step, "agreement.broken", {
        "number": instalment.number, "count": agreement.instalment_count, "amount": _money(step, instalment.amount_cents),
        "due": _day(step, instalment.due_date), "reopened": phrase},
        {"agreement": _agreement_view(agreement), "charge": charge_view(charge), "instalment": instalment.number,
         "deadline_at": None if still_blocked else deadline.isoformat()}, reason,
        line=Msg("Agreement broken: instalment {number} of {count} overdue", number=instalment.number,
                 count=agreement.instalment_count))
    return True
