"""The run engine with a routine of the test's own, through the real spine (relay, broker, workers):
items spread and counted, provider failures retried then listed with the provider's words, a failed
customer item reaching the front office, retry of the failed items as a new run, pause and resume, one
run per period at a time, a crash mid-item that resumes without doing the item twice, and isolation."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from backoffice.connectors.http import ProviderError
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.events.models import Event
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.routines import engine
from backoffice.tenants.routines.catalogue import CATALOGUE, Daily, ItemSpec, Outcome, Plan, Routine
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunItem, RunStatus, Trigger
from tests.tenants.routines.runs import run_and_items

STAFF = Actor(type="staff", label="staff:ana@provider.test", id="ana")


class FakeProvider:
    """What the test routine's items do, by item key, and what was done (thread-safe: worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.script: dict[str, list[str]] = {}
        self.effects: Counter = Counter()
        self.crash_after_effect: set[str] = set()

    def act(self, key: str) -> str:
        with self.lock:
            steps = self.script.get(key) or ["ok"]
            step = steps.pop(0) if len(steps) > 1 else steps[0]
            if step == "ok":
                if self.effects[key] == 0:  # idempotent towards the provider: the effect happens once
                    self.effects[key] += 1
                if key in self.crash_after_effect:
                    self.crash_after_effect.discard(key)
                    raise ConnectionResetError("worker lost its connection after the provider acted")
            return step


PROVIDER = FakeProvider()


async def _plan(session, run) -> Plan:
    rows = (await session.execute(select(Customer).order_by(Customer.name))).scalars().all()
    return Plan(items=[ItemSpec(key=f"customer:{c.id}", label=f"{c.name}, {run.period}", customer_id=c.id,
                                data={"amount_cents": 9900, "due_date": "2026-11-10"}) for c in rows])


async def _work(session, run, item) -> Outcome:
    step = PROVIDER.act(f"{run.tenant_id}:{item.key}")
    if step == "ok":
        return Outcome.done(reference=f"ref-{item.key}")
    if step == "refuse":
        raise ProviderError("POST test charge: provider refused with 400: customer tax id invalid", retryable=False,
                            status=400)
    if step == "hiccup":
        raise ProviderError("POST test charge: provider answered 503", retryable=True)
    raise AssertionError(step)


ROUTINE = Routine(name="test_engine", title={"en": "Test billing", "pt-BR": "Faturamento de teste"},
                  item_noun={"en": "charges"}, schedule=Daily(hour=5), plan=_plan, work=_work, max_attempts=3)


@pytest.fixture(autouse=True)
def routine():
    CATALOGUE[ROUTINE.name] = ROUTINE
    PROVIDER.__init__()
    yield ROUTINE
    CATALOGUE.pop(ROUTINE.name, None)


async def start(spine, tenant_id, period="2026-11-02", **kwargs) -> uuid.UUID:
    async with spine.database.provider(tenant_id) as session:
        return (await engine.start_run(session, ROUTINE.name, period=period, actor=STAFF, **kwargs)).id


def key_of(tenant, index: int) -> str:
    return f"{tenant.id}:customer:{tenant.customer_ids[index]}"


async def test_a_run_works_every_item_retries_hiccups_and_lists_refusals(spine):
    a, b = spine.tenants.a, spine.tenants.b
    PROVIDER.script[key_of(a, 0)] = ["hiccup", "ok"]
    PROVIDER.script[key_of(a, 1)] = ["refuse"]
    run_a = await start(spine, a.id)
    run_b = await start(spine, b.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_a)
    # The hiccup waits for its backoff; everything else settled.
    assert run.status == RunStatus.RUNNING and run.items_total == len(a.customer_ids)
    assert run.items_failed == 1 and run.items_done == len(a.customer_ids) - 2
    await spine.advance(seconds=15)
    run, items = await run_and_items(spine, a.id, run_a)
    assert run.status == RunStatus.PARTIAL and run.finished_at is not None
    assert (run.items_done, run.items_failed) == (len(a.customer_ids) - 1, 1)
    failed = [i for i in items if i.status == ItemStatus.FAILED]
    assert [(i.customer_id, i.error) for i in failed] == [
        (a.customer_ids[1], "POST test charge: provider refused with 400: customer tax id invalid")]
    hiccuped = next(i for i in items if i.customer_id == a.customer_ids[0])
    assert (hiccuped.status, hiccuped.attempts, hiccuped.result) == (ItemStatus.DONE, 2, {"reference": f"ref-customer:{a.customer_ids[0]}"})
    # Tenant B's run is its own, untouched by A's failures.
    other, _ = await run_and_items(spine, b.id, run_b)
    assert (other.status, other.items_done, other.items_failed) == (RunStatus.SUCCEEDED, len(b.customer_ids), 0)
    # Each provider effect happened once per item.
    assert set(PROVIDER.effects.values()) == {1}

    # The customer's front-office people are told, in their inbox, with the provider's words.
    async with spine.database.tenant(a.id) as session:
        event = (await session.execute(select(Event).where(Event.type == "routine.item_failed"))).scalar_one()
        notes = (await session.execute(select(Notification).where(Notification.kind == "routine.item_failed"))).scalars().all()
    assert event.customer_id == a.customer_ids[1] and event.data["run_id"] == str(run_a)
    assert notes and all("customer tax id invalid" in n.body for n in notes)
    assert all(n.customer_id == a.customer_ids[1] for n in notes)
    async with spine.database.tenant(b.id) as session:
        assert (await session.execute(select(Notification).where(Notification.kind == "routine.item_failed"))).first() is None


async def test_retrying_a_run_takes_only_its_failed_items_as_a_new_run(spine):
    a = spine.tenants.a
    PROVIDER.script[key_of(a, 1)] = ["refuse", "ok"]
    first = await start(spine, a.id)
    await spine.settle()
    async with spine.database.provider(a.id) as session:
        retry = await engine.retry_failed(session, first, actor=STAFF, reason="customer record fixed")
        retry_id = retry.id
    await spine.settle()
    run, items = await run_and_items(spine, a.id, retry_id)
    assert (run.trigger, run.parent_run_id, run.period, run.status) == (Trigger.RETRY, first, "2026-11-02", RunStatus.SUCCEEDED)
    assert [(i.customer_id, i.status) for i in items] == [(a.customer_ids[1], ItemStatus.DONE)]
    async with spine.database.provider(a.id) as session:
        with pytest.raises(Conflict, match="no failed items"):
            await engine.retry_failed(session, retry_id, actor=STAFF)
    async with spine.database.system() as session:
        actions = (await session.execute(select(AuditEntry.action, AuditEntry.actor_label, AuditEntry.reason)
                                         .where(AuditEntry.tenant_id == a.id))).all()
        assert ("routine.retry", STAFF.label, "customer record fixed") in actions
        assert ("routine.manual", STAFF.label, None) in actions


async def test_one_run_per_routine_tenant_and_period_at_a_time(spine):
    a, b = spine.tenants.a, spine.tenants.b
    await start(spine, a.id)
    with pytest.raises(Conflict, match="already queued"):
        await start(spine, a.id)
    await start(spine, b.id)  # another tenant's period is its own
    await start(spine, a.id, period="2026-11-03")  # and another period
    with pytest.raises(ValidationFailed, match="period: expected a daily period"):
        await start(spine, a.id, period="2026-11")
    await spine.settle()
    await start(spine, a.id)  # finished: the period may run again (and finds its effects already made)
    await spine.settle()
    assert set(PROVIDER.effects.values()) == {1}


async def test_pausing_holds_the_pending_items_and_resuming_finishes_the_run(spine):
    a = spine.tenants.a
    PROVIDER.script[key_of(a, 0)] = ["hiccup", "ok"]
    run_id = await start(spine, a.id)
    await spine.settle()
    async with spine.database.provider(a.id) as session:
        await engine.pause(session, ROUTINE.name, actor=STAFF, reason="gateway maintenance tonight")
        with pytest.raises(Conflict, match="paused"):
            await engine.start_run(session, ROUTINE.name, period="2026-11-09", actor=STAFF)
    await spine.advance(seconds=15)  # the hiccup's retry comes due while paused: it waits
    run, items = await run_and_items(spine, a.id, run_id)
    assert run.status == RunStatus.PAUSED
    assert [i.status for i in items if i.customer_id == a.customer_ids[0]] == [ItemStatus.PENDING]
    async with spine.database.provider(a.id) as session:
        await engine.resume(session, ROUTINE.name, actor=STAFF)
    await spine.settle()
    run, _ = await run_and_items(spine, a.id, run_id)
    assert (run.status, run.items_done) == (RunStatus.SUCCEEDED, len(a.customer_ids))


async def test_a_crash_after_the_provider_acted_resumes_without_doing_the_item_twice(spine):
    a = spine.tenants.a
    crashing = key_of(a, 1)
    PROVIDER.crash_after_effect.add(crashing)
    run_id = await start(spine, a.id)
    await spine.settle()
    run, items = await run_and_items(spine, a.id, run_id)
    # The crashed item's transaction rolled back; its message is redelivered by dramatiq (or, had the
    # worker died, its outbox lease runs out) and the item completes, the provider's effect still single.
    assert (run.status, run.items_done) == (RunStatus.SUCCEEDED, len(a.customer_ids))
    assert PROVIDER.effects[crashing] == 1
    # A stray duplicate message for a settled item changes nothing.
    async with spine.database.tenant(a.id) as session:
        await engine.work_item(session, items[0].id)
    again, _ = await run_and_items(spine, a.id, run_id)
    assert (again.items_done, again.items_failed) == (run.items_done, run.items_failed)


async def test_another_tenant_cannot_see_or_touch_a_run(spine):
    a, b = spine.tenants.a, spine.tenants.b
    run_id = await start(spine, a.id)
    await spine.settle()
    async with spine.database.provider(b.id) as session:
        with pytest.raises(NotFound):
            await get_owned(session, RoutineRun, run_id)
        with pytest.raises(NotFound):
            await engine.retry_failed(session, run_id, actor=STAFF)
        assert (await session.execute(select(RunItem))).first() is None
        assert await session.execute(select(RoutineRun)) is not None
        assert (await session.execute(select(RoutineRun))).first() is None


SIZES: dict[uuid.UUID, int] = {}


async def _bulk_plan(session, run) -> Plan:
    return Plan(items=[ItemSpec(key=f"n:{i}", label=f"item {i}") for i in range(SIZES[run.tenant_id])])


async def _bulk_work(session, run, item) -> Outcome:
    return Outcome.done()


BULK = Routine(name="test_bulk", title={"en": "Bulk"}, item_noun={"en": "items"}, schedule=Daily(hour=5),
               plan=_bulk_plan, work=_bulk_work)


async def test_a_large_run_does_not_hold_back_a_small_tenants_run(spine):
    """Items go through the relay, which hands work out round-robin by tenant: a tenant's 3-item run
    finishes while another tenant's 300-item run has barely started."""
    import asyncio

    from backoffice.platform.outbox.relay import relay_once

    a, b = spine.tenants.a, spine.tenants.b
    CATALOGUE[BULK.name] = BULK
    SIZES.update({a.id: 300, b.id: 3})
    try:
        async with spine.database.provider(a.id) as session:
            big = (await engine.start_run(session, BULK.name, period="2026-11-02", actor=STAFF)).id
        async with spine.database.provider(b.id) as session:
            small = (await engine.start_run(session, BULK.name, period="2026-11-02", actor=STAFF)).id
        for _ in range(10):
            await relay_once(spine.database, spine.broker, per_tenant_round=20)
            for queue in spine.broker.get_declared_queues():
                await asyncio.to_thread(spine.broker.join, queue, timeout=30_000)
            small_run, _ = await run_and_items(spine, b.id, small)
            if small_run.status == RunStatus.SUCCEEDED:
                break
        big_run, _ = await run_and_items(spine, a.id, big)
        assert small_run.status == RunStatus.SUCCEEDED
        assert big_run.status == RunStatus.RUNNING and big_run.items_done <= 40, big_run.items_done
        await spine.settle()
        big_run, _ = await run_and_items(spine, a.id, big)
        assert (big_run.status, big_run.items_done) == (RunStatus.SUCCEEDED, 300)
    finally:
        CATALOGUE.pop(BULK.name, None)
