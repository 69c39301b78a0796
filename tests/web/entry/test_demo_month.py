"""The demo's month of activity (issue 15, item 8): after seeding, each demo tenant has what its screens show,
made by the real spine from events that went through the intake (the providers' through their webhook
routes, verified and read back from the demo's stand-ins), and nothing of one tenant in the other's."""

from __future__ import annotations

from sqlalchemy import func, select

from backoffice.web.entry.demo import demo_counts
from backoffice.platform.timers.clock import offsets
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.tenants.billing.models import Charge, Contract, ContractStatus
from backoffice.tenants.customers.models import Customer, Lifecycle, LifecycleTransition
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.events.models import Event, EventStatus
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.models import RoutineRun, RunStatus
from backoffice.tenants.signatures.models import Signature, SignatureStatus
from backoffice.tenants.tasks.models import Task
from backoffice.tenants.timeline.models import TimelineEntry
from tests.demo_support import replay_month_for_test, seed_demo_for_test


async def _tenants(database) -> dict[str, Tenant]:
    async with database.system() as session:
        return {t.slug: t for t in (await session.execute(select(Tenant))).scalars()}


async def _all(database, tenant_id, model, *where):
    async with database.tenant(tenant_id) as session:
        return list((await session.execute(select(model).where(*where))).scalars())


async def test_the_seeded_month_gives_each_tenant_its_own_activity(database):
    await seed_demo_for_test(database)
    tenants = await _tenants(database)
    aurora, vitta = tenants["aurora"].id, tenants["vitta"].id

    for tenant_id in (aurora, vitta):
        events = await _all(database, tenant_id, Event)
        statuses = {e.status for e in events}
        assert EventStatus.PENDING not in statuses and EventStatus.FAILED not in statuses
        assert sum(e.status == EventStatus.PROCESSED for e in events) >= 6
        assert [e.source for e in events if e.status == EventStatus.UNMATCHED] == ["asaas"]
        # The timers fired on the tenant's clock: reminders and the grace deadline are processed events.
        assert {"dunning.reminder_due", "dunning.deadline_reached"} <= {e.type for e in events}
        runs = await _all(database, tenant_id, RoutineRun, RoutineRun.routine == "dunning_sweep")
        assert len(runs) >= 5 and {r.status for r in runs} == {RunStatus.SUCCEEDED}
        notes = {n.kind for n in await _all(database, tenant_id, Notification)}
        assert {"customer.started", "dunning.grace_started", "dunning.blocked"} <= notes
        assert {t.kind for t in await _all(database, tenant_id, Task)} >= {"onboarding"}
        assert len(await _all(database, tenant_id, TimelineEntry)) >= 10
        reminders = await _all(database, tenant_id, OutboundMessage, OutboundMessage.channel == Channel.EMAIL)
        assert any(m.payload.get("kind") == "dunning.reminder" for m in reminders)
        # Nothing of the other tenant is in this one's rows (each read through the tenant's own door).
        for model in (Event, Notification, Task, TimelineEntry, OutboundMessage, Customer):
            assert {row.tenant_id for row in await _all(database, tenant_id, model)} == {tenant_id}

    async with database.system() as session:
        shifted = await offsets(session, [aurora, vitta])
    assert shifted[aurora].days == 28 and shifted[vitta].days == 28

    # Aurora: Oficina Rápida blocked after the grace deadline, then paid and unblocked; Bistrô Lua terminated;
    # Casa do Pão in grace at the month's end; the rejected nota issued on the retry.
    customers = {c.name: c for c in await _all(database, aurora, Customer)}
    assert customers["Oficina Rápida ME"].lifecycle == Lifecycle.ACTIVE
    path = [t.to_state for t in await _all(database, aurora, LifecycleTransition,
                                           LifecycleTransition.customer_id == customers["Oficina Rápida ME"].id,
                                           LifecycleTransition.contract_id.is_(None))]  # the customer's own stages
    assert path[-3:] == ["in_grace", "blocked", "active"], path
    assert customers["Bistrô Lua Ltda"].lifecycle == Lifecycle.TERMINATED
    assert customers["Casa do Pão Ltda"].lifecycle == Lifecycle.IN_GRACE
    # One row per charge, whatever told of it (created, then overdue at the gateway; the daily check).
    charges = [c.external_id for c in await _all(database, aurora, Charge)]
    assert sorted(charges) == sorted(set(charges)) and "pay_aur_casa_2" in charges
    assert "invoice.rejected" in {n.kind for n in await _all(database, aurora, Notification)}
    assert "offboarding" in {t.kind for t in await _all(database, aurora, Task)}
    nota = [e for e in await _all(database, aurora, Event) if e.data.get("document", {}).get("external_id")
            == "aurora-nf-0002"]
    assert sorted(e.type for e in nota) == ["invoice.issued", "invoice.rejected"]

    # Vitta: Studio Fit still blocked; the block its platform refused during maintenance is a dead letter.
    studio = [c for c in await _all(database, vitta, Customer) if c.name == "Studio Fit Eireli"][0]
    assert studio.lifecycle == Lifecycle.BLOCKED
    [dead] = await _all(database, vitta, OutboundMessage, OutboundMessage.status == DeliveryStatus.DEAD,
                        OutboundMessage.channel == Channel.PLATFORM)
    assert dead.target == "block" and "423" in dead.last_error

    # What the providers told arrived as their webhooks, through the connectors: their ids and shapes (Asaas's
    # payment and event ids, Focus NFe's ref and status, Clicksign's envelope), each accepted (health ok).
    keys = {(e.source, e.external_id) for e in await _all(database, aurora, Event)}
    assert {("asaas", "pay_aur_casa_1:cleared"), ("asaas", "evt_aur-005"), ("focusnfe", "aurora-nf-0002:autorizado"),
            ("focusnfe", "aurora-nf-0002:erro_autorizacao"), ("clicksign", "aurora-contrato-casa-do-pao:closed")} <= keys
    [stranger] = await _all(database, aurora, Event, Event.status == EventStatus.UNMATCHED)
    assert "cus_aur_avulso" in stranger.error and "CPF/CNPJ" in stranger.error  # looked up at the stand-in
    # Payers linked to the company's customers by CPF/CNPJ at their first payment; the subscription started.
    assert customers["Casa do Pão Ltda"].external_ids == {"asaas": "cus_aur_casa"}
    contracts = {c.external_id: c for c in await _all(database, aurora, Contract)}
    assert contracts["sub_aur_maria"].status == ContractStatus.ACTIVE and contracts["sub_aur_maria"].plan_name == "Plano Pro"
    [signature] = await _all(database, aurora, Signature)
    assert signature.status == SignatureStatus.SIGNED and signature.customer_id == customers["Casa do Pão Ltda"].id
    for tenant_id in (aurora, vitta):
        providers = {i.name: i for i in await _all(database, tenant_id, ConnectorInstance)
                     if i.kind in ("asaas", "focusnfe", "clicksign")}
        # The stand-ins are gone: the connectors that would call them are off; Clicksign only receives.
        assert {name: i.enabled for name, i in providers.items()} == {"Asaas": False, "Focus NFe": False,
                                                                     "Clicksign": True}
        assert {i.health for i in providers.values()} == {Health.OK}

    # Seeding again on the same data changes nothing; nor does playing the month again (every webhook a
    # duplicate, every timer and daily check done).
    before = await demo_counts(database)
    await seed_demo_for_test(database)
    assert await demo_counts(database) == before
    effects = [len(await _all(database, t, model)) for t in (aurora, vitta)
               for model in (Notification, OutboundMessage, Task, RoutineRun, Contract)]
    await replay_month_for_test(database)
    assert await demo_counts(database) == before
    assert [len(await _all(database, t, model)) for t in (aurora, vitta)
            for model in (Notification, OutboundMessage, Task, RoutineRun, Contract)] == effects
    async with database.system() as session:
        messages = (await session.execute(select(func.count()).select_from(OutboundMessage))).scalar_one()
    assert messages == len(await _all(database, aurora, OutboundMessage)) + len(await _all(database, vitta, OutboundMessage))


async def test_the_dead_letter_replays_once_the_platform_is_back(database):
    """The console's replay of Vitta's refused block: the maintenance is over (the connector is off), so in
    the embedded mode the command is recorded as sent."""
    from backoffice.platform.audit.service import Actor
    from backoffice.web.entry.demo_activity import Spine
    from backoffice.tenants.deadletters.service import replay_one

    await seed_demo_for_test(database)
    vitta = (await _tenants(database))["vitta"].id
    [dead] = await _all(database, vitta, OutboundMessage, OutboundMessage.status == DeliveryStatus.DEAD,
                        OutboundMessage.channel == Channel.PLATFORM)
    async with database.provider(vitta) as session:
        await replay_one(session, "message", dead.id, acting=Actor(type="staff", label="admin@provider.example"),
                         reason="Vitta's platform is back")
    with Spine(database, database.settings) as spine:
        await spine.settle()
    [again] = await _all(database, vitta, OutboundMessage, OutboundMessage.id == dead.id)
    if database.settings.embedded:
        assert again.status == DeliveryStatus.SENT and again.response.get("recorded") is True
    else:  # the test process's platform port may record (its default settings are the embedded ones)
        assert again.status == DeliveryStatus.SENT or "no platform connector" in again.last_error
    assert "423" not in (again.last_error or "")  # the replay did not go to the closed maintenance window
