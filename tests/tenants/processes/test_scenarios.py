"""The standard processes, end to end through the running spine, on PostgreSQL+Redis and embedded SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from backoffice.platform.errors import ValidationFailed
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.tenants.billing.models import Contract, ContractStatus
from backoffice.tenants.customers.models import Customer, Lifecycle, LifecycleTransition
from backoffice.tenants.dunning.models import CaseStatus, DunningCase
from backoffice.tenants.effects.models import Channel, Effect
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.deadletters.queries import unmatched_events_query
from backoffice.tenants.processes.engine import retry_event
from backoffice.tenants.tasks.models import Task
from backoffice.tenants.timeline.models import TimelineEntry
from tests.tenants.processes.conftest import new_customer

PLAN = {"code": "pro", "name": "Plano Pro", "price_cents": 19990}


def cleared(external_id: str, customer: dict, *, charge_id: str = "pay_1", amount: int = 19990,
            due: str = "2026-11-05", with_plan: bool = True) -> dict:
    event = {
        "type": "payment.cleared", "source": "asaas", "external_id": external_id, "customer": customer,
        "data": {
            "charge": {"external_id": charge_id, "amount_cents": amount, "due_date": due,
                       "description": "Mensalidade Plano Pro", "payment_url": "https://pay.example/i/abc"},
            "payment": {"amount_cents": amount, "paid_at": "2026-11-02T14:00:00+00:00", "method": "pix"},
            "documents": [{"kind": "boleto", "number": "34191.79001", "url": "https://pay.example/b/abc.pdf"}],
        },
    }
    if with_plan:
        event["data"]["plan"] = PLAN
    return event


def overdue(external_id: str, customer: dict, *, charge_id: str = "pay_2", due: str = "2026-11-01") -> dict:
    return {"type": "payment.overdue", "source": "asaas", "external_id": external_id, "customer": customer,
            "data": {"charge": {"external_id": charge_id, "amount_cents": 19990, "due_date": due}}}


async def rows(spine, tenant_id, model, *where):
    async with spine.database.tenant(tenant_id) as session:
        # ids are time-ordered (UUID v7 from the real clock): creation order, whatever the heap does
        return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())


async def active_customer(spine, tenant, **kw):
    return await new_customer(spine.database, tenant.id, tenant.admin_id, lifecycle=Lifecycle.ACTIVE, **kw)


# --- start of a customer -----------------------------------------------------------------------------

async def test_first_payment_starts_the_customer_with_every_detail(spine):
    a, b = spine.tenants.a, spine.tenants.b
    customer_id = await new_customer(spine.database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="11.222.333/0001-81", external={"asaas": "cus_77"})
    result = await spine.ingest(a.id, cleared("evt_1", {"external_id": "cus_77"}))
    assert result.status == "accepted"
    await spine.settle()

    [note] = await rows(spine, a.id, Notification)
    assert note.recipient_id == a.member_id and note.kind == "customer.started"
    for detail in ("Padaria Estrela Ltda", "11.222.333/0001-81", "Plano Pro", "199,90"):
        assert detail in note.body, detail
    assert note.detail["customer"]["tax_id"] == "11.222.333/0001-81"
    assert note.detail["plan"] == PLAN and note.detail["charge"]["due_date"] == "2026-11-05"
    assert note.detail["documents"][0]["url"] == "https://pay.example/b/abc.pdf"
    [task] = await rows(spine, a.id, Task)
    assert task.kind == "onboarding" and task.assignee_id == a.member_id and task.checklist
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    [contract] = await rows(spine, a.id, Contract)
    assert contract.status == ContractStatus.ACTIVE and contract.price_cents == 19990
    [command] = spine.sent(Channel.PLATFORM, a.id)
    assert command.payload["command"] == "provision" and command.payload["customer"]["id"] == str(customer_id)
    timeline = await rows(spine, a.id, TimelineEntry, TimelineEntry.customer_id == customer_id)
    kinds = {entry.kind for entry in timeline}
    assert {"event", "transition", "effect"} <= kinds and all(e.reason for e in timeline if e.kind != "event")
    # The other tenant saw nothing of it.
    assert await rows(spine, b.id, Notification) == [] and spine.sent(Channel.PLATFORM, b.id) == []


async def test_policy_picks_the_start_trigger(spine):
    a = spine.tenants.a
    await spine.set_policy(a.id, start_trigger="invoice.issued")
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Maria Souza", tax_id="390.533.447-05")
    await spine.ingest(a.id, cleared("evt_1", {"id": str(customer_id)}))
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ONBOARDING
    assert await rows(spine, a.id, Notification) == []

    await spine.ingest(a.id, {
        "type": "invoice.issued", "source": "focusnfe", "external_id": "nfse-1", "customer": {"tax_id": "39053344705"},
        "data": {"document": {"external_id": "ref-1", "number": "2026000123", "pdf_url": "https://nf.example/1.pdf",
                              "xml_url": "https://nf.example/1.xml"}}})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    [note] = await rows(spine, a.id, Notification)
    assert "2026000123" in note.body or any(d.get("number") == "2026000123" for d in note.detail["documents"])
    assert any(d.get("url") == "https://nf.example/1.pdf" for d in note.detail["documents"])


async def test_plan_change_notifies_before_and_after(spine):
    a = spine.tenants.a
    customer_id = await active_customer(spine, a, name="Academia Forte", tax_id="04.252.011/0001-10")
    await spine.ingest(a.id, {
        "type": "subscription.changed", "source": "api", "external_id": "chg-1", "customer": {"id": str(customer_id)},
        "data": {"before": PLAN, "after": {"code": "max", "name": "Plano Max", "price_cents": 29990}}})
    await spine.settle()
    [note] = await rows(spine, a.id, Notification)
    assert note.kind == "subscription.changed"
    assert note.detail["before"]["name"] == "Plano Pro" and note.detail["after"]["name"] == "Plano Max"
    assert "Plano Pro" in note.body and "Plano Max" in note.body
    [command] = spine.sent(Channel.PLATFORM, a.id)
    assert command.payload["data"]["plan"]["code"] == "max"


# --- late payment --------------------------------------------------------------------------------------

async def test_late_payment_grace_reminders_block_then_payment_unblocks(spine):
    a = spine.tenants.a
    customer_id = await active_customer(spine, a, name="Oficina Rápida", tax_id="12.ABC.345/01DE-35",
                                        email="financeiro@oficina.example")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(customer_id)}))
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.IN_GRACE
    [case] = await rows(spine, a.id, DunningCase)
    assert case.status == CaseStatus.GRACE
    [notice] = spine.sent(Channel.EMAIL, a.id)
    assert notice.payload["to"] == "financeiro@oficina.example" and notice.payload["kind"] == "dunning.notice"
    assert "07/11/2026" in notice.payload["text"] or "11/07/2026" in notice.payload["text"]  # 5 days of grace
    grace_notes = await rows(spine, a.id, Notification)
    assert [n.kind for n in grace_notes] == ["dunning.grace_started"]

    await spine.advance(days=3)  # reminders at deadline-3 and deadline-1 (09:00 local)
    emails = [m.payload["kind"] for m in spine.sent(Channel.EMAIL, a.id)]
    assert emails.count("dunning.reminder") >= 1
    assert spine.sent(Channel.PLATFORM, a.id) == []

    await spine.advance(days=1, hours=12)  # 00:00 of the deadline day in São Paulo: second reminder sent
    assert [m.payload["kind"] for m in spine.sent(Channel.EMAIL, a.id)].count("dunning.reminder") == 2
    await spine.advance(days=1)  # past the deadline (23:59 local), unpaid
    customer = await spine.customer(a.id, customer_id)
    assert customer.lifecycle == Lifecycle.BLOCKED
    [block] = spine.sent(Channel.PLATFORM, a.id)
    assert block.payload["command"] == "block" and "not paid" in block.payload["reason"]
    blocked_note = [n for n in await rows(spine, a.id, Notification) if n.kind == "dunning.blocked"]
    assert blocked_note and "not paid by the grace deadline" in blocked_note[0].detail["reason"]
    assert [m.payload["kind"] for m in spine.sent(Channel.EMAIL, a.id)].count("dunning.reminder") == 2

    await spine.ingest(a.id, cleared("evt_paid", {"id": str(customer_id)}, charge_id="pay_2", with_plan=False))
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "unblock"]
    assert any(n.kind == "dunning.unblocked" for n in await rows(spine, a.id, Notification))
    [case] = await rows(spine, a.id, DunningCase)
    assert case.status == CaseStatus.RESOLVED
    states = [t.to_state for t in await rows(spine, a.id, LifecycleTransition)]
    assert states == ["in_grace", "blocked", "active"]


async def test_payment_during_grace_cancels_the_block(spine):
    a = spine.tenants.a
    customer_id = await active_customer(spine, a, name="Loja Azul", tax_id="111.444.777-35")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(customer_id)}))
    await spine.settle()
    await spine.advance(days=1)
    await spine.ingest(a.id, cleared("evt_paid", {"id": str(customer_id)}, charge_id="pay_2", with_plan=False))
    await spine.settle()
    await spine.advance(days=10)
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.ACTIVE
    assert spine.sent(Channel.PLATFORM, a.id) == []
    kinds = [n.kind for n in await rows(spine, a.id, Notification)]
    assert kinds == ["dunning.grace_started", "dunning.resolved"]


async def test_a_policy_change_leaves_a_running_case_alone(spine):
    a = spine.tenants.a
    customer_id = await active_customer(spine, a, name="Bistrô Sol", tax_id="111.444.777-35")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(customer_id)}))
    await spine.settle()
    [case] = await rows(spine, a.id, DunningCase)
    version = await spine.set_policy(a.id, auto_block=False, grace_days=20)
    assert version == 1 and case.policy_version == 0
    await spine.advance(days=6)
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED  # the old policy blocks
    [case_after] = await rows(spine, a.id, DunningCase)
    assert case_after.deadline_at == case.deadline_at


# --- the spine's guarantees ----------------------------------------------------------------------------

async def test_the_same_webhook_twice_gives_one_effect(spine):
    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Cliente Dup", tax_id="390.533.447-05")
    first = await spine.ingest(a.id, cleared("evt_dup", {"id": str(customer_id)}))
    second = await spine.ingest(a.id, cleared("evt_dup", {"id": str(customer_id)}))
    await spine.settle()
    third = await spine.ingest(a.id, cleared("evt_dup", {"id": str(customer_id)}))
    await spine.settle()
    assert (first.status, second.status, third.status) == ("accepted", "duplicate", "duplicate")
    assert first.event_id == second.event_id == third.event_id
    assert len(await rows(spine, a.id, Notification)) == 1 and len(await rows(spine, a.id, Task)) == 1
    assert len(spine.sent(Channel.PLATFORM, a.id)) == 1


async def test_a_redelivered_message_gives_one_effect(spine):
    from backoffice.platform.worker.broker import enqueue

    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Cliente Redelivery",
                                     tax_id="390.533.447-05")
    result = await spine.ingest(a.id, cleared("evt_r", {"id": str(customer_id)}))
    await spine.settle()
    for _ in range(3):  # what a broker redelivery looks like to the job
        enqueue(spine.broker, "spine.process_event", tenant_id=a.id, event_id=str(result.event_id))
    await spine.settle()
    assert len(await rows(spine, a.id, Notification)) == 1
    assert len(spine.sent(Channel.PLATFORM, a.id)) == 1


async def test_a_worker_dying_mid_step_is_redelivered_and_gives_one_effect(spine, monkeypatch):
    """The first attempt writes its notification, then dies before the task: the transaction is rolled
    back, dramatiq redelivers, and the second attempt leaves exactly one of each effect."""
    from backoffice.tenants.effects.service import StepEffects

    a = spine.tenants.a
    original = StepEffects.task
    calls = {"n": 0}

    async def dies_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError("worker lost its connection mid-step")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(StepEffects, "task", dies_once)
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Cliente Crash", tax_id="390.533.447-05")
    await spine.ingest(a.id, cleared("evt_c", {"id": str(customer_id)}))
    for _ in range(3):
        await spine.settle()
        if calls["n"] >= 2:
            break
        spine.clock.advance(seconds=5)
    await spine.settle()
    assert calls["n"] == 2
    assert len(await rows(spine, a.id, Notification)) == 1 and len(await rows(spine, a.id, Task)) == 1
    assert len(spine.sent(Channel.PLATFORM, a.id)) == 1
    effects = await rows(spine, a.id, Effect)
    assert len({e.key for e in effects}) == len(effects)


async def test_an_unknown_customer_is_kept_as_unmatched_then_replayed(spine):
    a, b = spine.tenants.a, spine.tenants.b
    await spine.ingest(a.id, cleared("evt_u", {"external_id": "cus_unknown"}))
    await spine.settle()
    async with spine.database.tenant(a.id) as session:  # what the staff's unmatched list reads
        [event] = (await session.execute(unmatched_events_query())).scalars().all()
        assert event.status == EventStatus.UNMATCHED and "cus_unknown" in event.error
    async with spine.database.tenant(b.id) as session:
        assert (await session.execute(unmatched_events_query())).scalars().all() == []
    await new_customer(spine.database, a.id, a.admin_id, name="Agora Existe", tax_id="390.533.447-05",
                       external={"asaas": "cus_unknown"})
    async with spine.database.tenant(a.id) as session:
        await retry_event(session, await session.get(Event, (a.id, event.id)))
    await spine.settle()
    [note] = await rows(spine, a.id, Notification)
    assert note.kind == "customer.started"


async def test_a_malformed_event_is_refused_with_field_errors_and_nothing_stored(spine):
    a = spine.tenants.a
    bad = cleared("evt_bad", {"external_id": "cus_1"})
    bad["data"]["charge"]["amount_cents"] = -5
    del bad["data"]["payment"]["paid_at"]
    with pytest.raises(ValidationFailed) as refused:
        await spine.ingest(a.id, bad)
    fields = {error.field for error in refused.value.errors}
    assert {"data.charge.amount_cents", "data.payment.paid_at"} <= fields
    with pytest.raises(ValidationFailed) as unknown:
        await spine.ingest(a.id, {"type": "payment.teleported", "source": "asaas", "external_id": "x"})
    assert unknown.value.errors[0].field == "type"
    async with spine.database.tenant(a.id) as session:
        assert (await session.execute(select(func.count()).select_from(Event))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(OutboxEntry))).scalar_one() == 0


async def test_termination_revokes_access_and_opens_offboarding(spine):
    a = spine.tenants.a
    customer_id = await active_customer(spine, a, name="Cliente Saindo", tax_id="111.444.777-35")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(customer_id)}))
    await spine.settle()
    await spine.ingest(a.id, {"type": "subscription.canceled", "source": "api", "external_id": "cancel-1",
                              "customer": {"id": str(customer_id)}, "data": {"reason": "Cliente pediu cancelamento"}})
    await spine.settle()
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.TERMINATED
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["deprovision"]
    [task] = [t for t in await rows(spine, a.id, Task) if t.kind == "offboarding"]
    assert task.checklist
    [case] = await rows(spine, a.id, DunningCase)
    assert case.status == CaseStatus.TERMINATED
    await spine.advance(days=10)  # the case's timers were canceled: no block after termination
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["deprovision"]


async def test_terminate_after_days_blocked(spine):
    a = spine.tenants.a
    await spine.set_policy(a.id, terminate_after_days=10)
    customer_id = await active_customer(spine, a, name="Cliente Inadimplente", tax_id="111.444.777-35")
    await spine.ingest(a.id, overdue("evt_od", {"id": str(customer_id)}))
    await spine.settle()
    await spine.advance(days=6)
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.BLOCKED
    await spine.advance(days=11)
    assert (await spine.customer(a.id, customer_id)).lifecycle == Lifecycle.TERMINATED
    assert [m.payload["command"] for m in spine.sent(Channel.PLATFORM, a.id)] == ["block", "deprovision"]


async def test_notifications_fall_back_to_admins_when_nobody_is_responsible(spine):
    a = spine.tenants.a
    customer_id = await new_customer(spine.database, a.id, a.admin_id, name="Sem Gerente", tax_id="390.533.447-05")
    async with spine.database.tenant(a.id) as session:
        customer = await session.get(Customer, (a.id, customer_id))
        customer.account_manager_id = None
    await spine.ingest(a.id, cleared("evt_1", {"id": str(customer_id)}))
    await spine.settle()
    [note] = await rows(spine, a.id, Notification)
    assert note.recipient_id == a.admin_id

