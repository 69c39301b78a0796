"""The fault scenario: two tenants, a bounded load of several event kinds sent through the real intake
(the API and Asaas-shaped webhooks), faults injected at seeded random moments, then what the receivers
saw compared with what the events and the tenants' configuration say they must see.

Used by ``tests/faults/test_faults.py`` (CI size) and ``tests/perf/soak_faults.py`` (10,000 events).

The stories (each customer is in exactly one, so the expected effects follow from the events alone):

| story | tenant | events in | what must come out (besides portal rows) |
|---|---|---|---|
| start_api / start_asaas | alfa (starts on payment.cleared) | payment.cleared by API / Asaas PAYMENT_RECEIVED | `provision`, webhook |
| start | beta (starts on contract.signed, started notice by e-mail) | contract.signed | `provision`, e-mail to the manager, webhook |
| cleared | beta | payment.cleared (not its start trigger) | webhook |
| light | both | 3 × payment.created (due next year) | webhook (alfa; beta's endpoint does not subscribe) |
| change | both | subscription.changed | `provision` with the previous plan, webhook |
| cancel | both | subscription.canceled | `deprovision`, webhook |
| notice | both | payment.overdue (API; on alfa half by Asaas PAYMENT_OVERDUE) | grace e-mail to the customer, webhook |
| block | both | payment.overdue, then its grace deadline brought forward, then the payment | grace e-mail, `block` + blocked e-mail (+ beta: manager e-mail), `unblock`, a webhook for each of the three events |

Faults (each once per round, in a seeded random order, each at a random moment of its own slice of the
load): kill -9 of ``backoffice web``, of one of the two dramatiq worker processes (two worker services of
one process each: the other keeps running), of the scheduler that
holds the leadership lock; a Redis kill -9 and restart (no persistence: its queued messages are lost); a
PostgreSQL ``pg_ctl restart -m immediate``. The supervisor restarts what died one second later.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx

from tests.faults.cluster import Cluster, pid_owning_local_port, wait_until
from tests.faults.model import (
    FAULTS,
    LEADER_LOCK,
    PLAN_MAX,
    PLAN_PRO,
    STORIES,
    TENANTS,
    Customer,
    Fault,
    Figures,
    Planned,
    TenantSetup,
)
from tests.faults.recorders import HttpRecorder, SmtpRecorder, SmtpServer
from tests.faults.verdict import Verdict


class Scenario(Verdict):
    def __init__(self, *, scale: float = 1.0, rate: float = 20.0, seed: int = 18, fault_rounds: int = 1,
                 drain_timeout: float = 180.0, senders: int = 6) -> None:
        self.scale, self.rate, self.fault_rounds = scale, rate, fault_rounds
        self.drain_timeout, self.senders = drain_timeout, senders
        self.random = random.Random(seed)
        self.seed = seed
        self.cluster = Cluster()
        self.http = HttpRecorder()
        self.smtp_handler: SmtpRecorder | None = None
        self.asaas = None
        self.tenants: dict[str, TenantSetup] = {}
        self.customers: list[Customer] = []
        self.plan: list[Planned] = []
        self.extra: list[Planned] = []  # the late payments, sent once their customers are blocked
        self.faults: list[Fault] = []
        self.statuses: Counter = Counter()
        self.no_retry_after: Counter = Counter()
        self.connection_errors = 0
        self.problems: list[str] = []
        self.started = 0.0
        self.load_seconds = 0.0
        self.queue: asyncio.Queue | None = None
        self.web_down_at: float | None = None
        self.web_recovery: list[float] = []

    # --- setting the world up -------------------------------------------------------------------------

    def start(self, stack) -> None:
        """Start the private services, the recorders and the platform; ``stack`` (an ExitStack) undoes it."""
        from tests.connectors.conftest import serving
        from tests.providers.asaas import FakeAsaas

        stack.callback(self.cluster.close)
        self.cluster.start_services()
        self.cluster.migrate()
        stack.enter_context(serving(self.http))
        self.asaas = FakeAsaas()
        stack.enter_context(serving(self.asaas))
        self.smtp_handler = SmtpRecorder({})
        self.smtp = stack.enter_context(SmtpServer(self.smtp_handler))
        asyncio.run(self._configure())
        self.cluster.start_platform()
        base = f"http://127.0.0.1:{self.cluster.web_port}"
        try:
            wait_until(lambda: _ready(base), 90, "the web process answering /readyz")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.cluster.log_tails()}") from None

    async def _configure(self) -> None:
        from backoffice.connectors.service import create_instance
        from backoffice.platform.audit.service import Actor
        from backoffice.platform.db.session import Database
        from backoffice.platform.security.standard_webhooks import new_secret
        from backoffice.tenants.apikeys.service import create_api_key
        from backoffice.tenants.policies.schemas import NOTIFICATION_KINDS
        from backoffice.tenants.policies.service import update_policy
        from backoffice.tenants.registry.service import create_tenant
        from backoffice.tenants.users.service import create_tenant_user
        from backoffice.tenants.webhooks.service import create_endpoint

        settings = self.cluster.settings()
        database = Database(settings)
        actor = Actor.system("faults")
        provider_admin = Actor(type="staff", label="admin@provider.example")
        number = 0
        try:
            for slug, conf in TENANTS.items():
                async with database.system() as session:
                    tenant = await create_tenant(session, slug=slug, display_name=slug.title(),
                                                 legal_name=f"{slug.title()} Ltda", cnpj=conf["cnpj"], acting=actor)
                sender = f"cobranca@{slug}.example"
                self.smtp_handler.tenants_by_sender[sender] = slug
                async with database.provider(tenant.id) as session:
                    admin = await create_tenant_user(session, email=f"gerente@{slug}.example", name=f"Gerente {slug}",
                                                     role="tenant_admin", password=None, acting=actor)
                    key = await create_api_key(session, name="faults", scopes=["events:write"],
                                               rate_limit_per_minute=100_000, acting=actor)
                    changes: dict[str, Any] = {"start_trigger": conf["start"]}
                    if conf["email_channels"]:
                        changes["channels"] = {kind: ["portal", "email"] if kind in conf["email_channels"] else ["portal"]
                                               for kind in NOTIFICATION_KINDS}
                    await update_policy(session, changes=changes, acting=actor, reason="fault suite")
                    _endpoint, webhook_secret = await create_endpoint(
                        session, url=f"{self.http.url}/webhooks/{slug}", event_types=conf["webhook_types"],
                        acting=actor, settings=settings)
                    platform_secret = new_secret()
                    await create_instance(session, kind="tenant_platform", name="Plataforma", acting=actor,
                                          settings=settings,
                                          config={"url": f"{self.http.url}/platform/{slug}", "secret": platform_secret})
                    await create_instance(session, kind="smtp", name="E-mail", acting=actor, settings=settings,
                                          config={"host": "127.0.0.1", "port": self.smtp.port, "security": "none",
                                                  "sender_address": sender, "sender_name": f"Cobrança {slug}"})
                    setup = TenantSetup(slug, tenant.id, admin.id, admin.email, key.secret, sender)
                    if conf["asaas"]:
                        setup.asaas_token, setup.hook_token = f"asaas-{slug}", f"hook-{slug}"
                        self.asaas.account(setup.asaas_token)
                        instance = await create_instance(
                            session, kind="asaas", name="Asaas", acting=provider_admin, settings=settings,
                            host_override="127.0.0.1",
                            config={"base_url": self.asaas.url, "api_key": setup.asaas_token,
                                    "webhook_token": setup.hook_token})
                        setup.asaas_instance = instance.id
                self.http.secrets[("webhook", slug)] = webhook_secret
                self.http.secrets[("platform", slug)] = platform_secret
                self.tenants[slug] = setup
                for story, count in STORIES[slug].items():
                    for _ in range(max(1, round(count * self.scale))):
                        number += 1
                        self.customers.append(Customer(slug, number, story, uuid.uuid4(),
                                                       f"c{number}@clientes-{slug}.example"))
        finally:
            await database.dispose()
        await self._insert_customers()
        self._plan_events()

    async def _insert_customers(self) -> None:
        """The book of customers, as the provider's import would leave it: onboarding ones wait for their
        start; the others are already active. Written straight into the private database (setup, not load)."""
        rows = []
        for c in self.customers:
            setup = self.tenants[c.tenant]
            external = {"erp": f"c{c.n}"}
            if setup.asaas_token:
                c.asaas_id = self.asaas.add_customer(setup.asaas_token, name=f"Cliente {c.n}",
                                                     cpf_cnpj=f"{c.n:011d}")["id"]
                external["asaas"] = c.asaas_id
            onboarding = c.story.startswith("start") or c.story in ("light", "cleared")
            rows.append((setup.id, c.id, f"Cliente {c.n}", "cpf", f"{c.n:011d}", c.email, setup.admin_id,
                         "onboarding" if onboarding else "active", json.dumps(external)))
        connection = await asyncpg.connect(self.cluster.pg.dsn())
        try:
            await connection.executemany(
                "INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, email, account_manager_id, lifecycle, "
                "external_ids, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, now(), now())",
                rows)
        finally:
            await connection.close()

    # --- the events ---------------------------------------------------------------------------------------

    def _api(self, c: Customer, type_: str, external_id: str, data: dict, role: str = "") -> Planned:
        body = {"type": type_, "source": "erp", "external_id": external_id,
                "customer": {"external_id": f"c{c.n}", "source": "erp"}, "data": data}
        return Planned(c.tenant, c, "api", type_, body, role)

    def _asaas_hook(self, c: Customer, event: str, payment_id: str, role: str = "") -> Planned:
        body = {"id": f"evt_{uuid.uuid4().hex[:20]}", "event": event, "dateCreated": "2026-12-06 20:00:00",
                "payment": {"object": "payment", "id": payment_id, "customer": c.asaas_id}}
        type_ = {"PAYMENT_RECEIVED": "payment.cleared", "PAYMENT_OVERDUE": "payment.overdue"}[event]
        return Planned(c.tenant, c, "asaas", type_, body, role)

    def _cleared(self, c: Customer, charge: str, due: str = "2026-12-01") -> dict:
        return {"charge": {"external_id": charge, "amount_cents": 19990, "due_date": due},
                "payment": {"amount_cents": 19990, "paid_at": "2026-12-06T14:00:00+00:00", "method": "pix"},
                "plan": PLAN_PRO}

    def _overdue(self, c: Customer, role: str, by_hook: bool) -> Planned:
        if by_hook:
            payment = self.asaas.plant(self.tenants[c.tenant].asaas_token, customer=c.asaas_id, value="199.90",
                                       status="OVERDUE", due_date="2026-11-20")
            c.overdue_payment = payment["id"]
            return self._asaas_hook(c, "PAYMENT_OVERDUE", payment["id"], role)
        return self._api(c, "payment.overdue", f"od-{c.n}",
                         {"charge": {"external_id": f"ch-{c.n}-od", "amount_cents": 19990, "due_date": "2026-11-20"}},
                         role)

    def payment_for_block(self, c: Customer) -> Planned:
        """The late payment of a blocked customer: Asaas's hook when the charge came from Asaas."""
        if c.overdue_payment:
            account = self.asaas.account(self.tenants[c.tenant].asaas_token)
            with self.asaas._lock:
                account.payments[c.overdue_payment].update(status="RECEIVED", paymentDate="2026-12-06",
                                                           clientPaymentDate="2026-12-06")
            return self._asaas_hook(c, "PAYMENT_RECEIVED", c.overdue_payment, "block-payment")
        return self._api(c, "payment.cleared", f"late-{c.n}", self._cleared(c, f"ch-{c.n}-od", "2026-11-20"),
                         "block-payment")

    def _plan_events(self) -> None:
        first, rest = [], []
        for c in self.customers:
            hook = bool(self.tenants[c.tenant].asaas_token) and c.n % 2 == 0
            if c.story == "start_api" or c.story == "cleared":
                rest.append(self._api(c, "payment.cleared", f"pay-{c.n}", self._cleared(c, f"ch-{c.n}")))
            elif c.story == "start_asaas":
                payment = self.asaas.plant(self.tenants[c.tenant].asaas_token, customer=c.asaas_id, value="199.90",
                                           status="RECEIVED", payment_date="2026-12-06", due_date="2026-12-01")
                rest.append(self._asaas_hook(c, "PAYMENT_RECEIVED", payment["id"]))
            elif c.story == "start":
                rest.append(self._api(c, "contract.signed", f"env-{c.n}", {"envelope_id": f"env-{c.n}", "plan": PLAN_PRO}))
            elif c.story == "light":
                for k in range(3):
                    rest.append(self._api(c, "payment.created", f"new-{c.n}-{k}", {"charge": {
                        "external_id": f"ch-{c.n}-{k}", "amount_cents": 990, "due_date": "2027-03-05"}}))
            elif c.story == "change":
                rest.append(self._api(c, "subscription.changed", f"chg-{c.n}", {"before": PLAN_PRO, "after": PLAN_MAX}))
            elif c.story == "cancel":
                rest.append(self._api(c, "subscription.canceled", f"end-{c.n}", {"reason": "Cliente encerrou"}))
            elif c.story == "notice":
                rest.append(self._overdue(c, "", hook))
            elif c.story == "block":
                first.append(self._overdue(c, "block-overdue", hook))
        self.random.shuffle(first)
        self.random.shuffle(rest)
        # The block stories go first: their deadlines, blocks and late payments come later in the load.
        self.plan = first + rest

    # --- the load ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        n = len(self.plan)
        self.load_seconds = n / self.rate
        self._schedule_faults()
        self.queue = asyncio.Queue()
        self.started = time.monotonic()
        for i, planned in enumerate(self.plan):
            self.queue.put_nowait((self.started + i / self.rate, planned))
        block_total = sum(c.story == "block" for c in self.customers)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
            self.client = client
            senders = [asyncio.create_task(self._sender()) for _ in range(self.senders)]
            driver = asyncio.create_task(self._drive_block_stories(block_total))
            faults = asyncio.create_task(self._inject_faults())
            await faults
            await driver
            await self.queue.join()
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        await self._drain()

    async def _sender(self) -> None:
        base = f"http://127.0.0.1:{self.cluster.web_port}"
        give_up = self.started + self.load_seconds + self.drain_timeout
        while True:
            at, planned = await self.queue.get()
            try:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                while not planned.acked and planned.refused is None and time.monotonic() < give_up:
                    await self._send_once(base, planned)
            finally:
                self.queue.task_done()

    async def _send_once(self, base: str, planned: Planned) -> None:
        setup = self.tenants[planned.tenant]
        planned.attempts += 1
        try:
            if planned.kind == "api":
                response = await self.client.post(f"{base}/api/v1/events", json=planned.body,
                                                  headers={"Authorization": f"Bearer {setup.api_key}"})
            else:
                response = await self.client.post(f"{base}/hooks/{setup.slug}/{setup.asaas_instance}",
                                                  json=planned.body, headers={"asaas-access-token": setup.hook_token})
        except httpx.HTTPError:
            self.connection_errors += 1
            await asyncio.sleep(0.5)
            return
        status = response.status_code
        self.statuses[status] += 1
        planned.statuses.append(status)
        if self.web_down_at is not None and 200 <= status < 300:
            self.web_recovery.append(time.monotonic() - self.web_down_at)
            self.web_down_at = None
        if 200 <= status < 300:
            answer = response.json()
            ids = [answer["event_id"]] if planned.kind == "api" else answer.get("events", [])
            if not ids:
                planned.refused = f"acknowledged but not stored: {answer}"
                return
            planned.event_id = ids[0]
            planned.acked = True
            return
        if status >= 500 or status == 429:
            retry_after = response.headers.get("retry-after")
            if status >= 500 and not retry_after:
                self.no_retry_after[status] += 1
            try:
                wait = float(retry_after) if retry_after else 1.0
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(wait, 3.0))  # a client may come back sooner than asked; never hammer
            return
        planned.refused = f"{status}: {response.text[:300]}"

    async def _drive_block_stories(self, total: int) -> None:
        """Bring each block story's grace deadline forward once its case is open (the durable timer stays the
        scheduler's to fire), and send the late payment once the customer is blocked."""
        block = {c.id: c for c in self.customers if c.story == "block"}
        paid: set[uuid.UUID] = set()
        deadline = self.started + self.load_seconds + self.drain_timeout / 2
        while len(paid) < total and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            try:
                connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                continue
            try:
                await connection.execute(
                    "UPDATE timers SET due_at = now() WHERE customer_id = ANY($1::uuid[]) AND key LIKE 'case:%:deadline' "
                    "AND fired_at IS NULL AND canceled_at IS NULL AND due_at > now()", list(block))
                blocked = await connection.fetch(
                    "SELECT id FROM customers WHERE id = ANY($1::uuid[]) AND lifecycle = 'blocked'", list(block))
            except (TimeoutError, OSError, asyncpg.PostgresError):
                continue
            finally:
                await connection.close()
            for row in blocked:
                if row["id"] not in paid:
                    paid.add(row["id"])
                    planned = self.payment_for_block(block[row["id"]])
                    self.extra.append(planned)
                    self.queue.put_nowait((time.monotonic(), planned))
        if len(paid) < total:
            self.problems.append(f"block stories stalled: {total - len(paid)} of {total} customers never reached "
                                 "'blocked' (deadline timer not fired or not processed)")

    # --- the faults -----------------------------------------------------------------------------------------

    def _schedule_faults(self) -> None:
        # The worker kill comes last in its round, the others in a seeded random order: its recovery is judged
        # against the 60 s target (model.py), which a database or Redis restart 30 s later would blur.
        others = [kind for kind in FAULTS if kind != "worker"]
        kinds = [kind for _ in range(self.fault_rounds) for kind in (*self.random.sample(others, len(others)), "worker")]
        if not kinds:
            return
        span = self.load_seconds * 0.8
        slot = span / len(kinds)
        for i, kind in enumerate(kinds):
            at = self.load_seconds * 0.1 + slot * i + self.random.uniform(0.1, 0.7) * slot
            self.faults.append(Fault(kind, at))

    async def _inject_faults(self) -> None:
        for fault in self.faults:
            await asyncio.sleep(max(0.0, self.started + fault.planned_at - time.monotonic()))
            await self._target_up(fault)
            await self._snapshot(fault)
            fault.at = time.monotonic()
            await asyncio.to_thread(self._inject, fault)

    async def _target_up(self, fault: Fault, timeout: float = 20.0) -> None:
        """A fault hits a running target: a scheduler that leads (a standby takes a moment to after a
        database restart), worker processes that have forked. Waits a bounded time; the injection then
        reports what it found."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fault.kind == "worker" and self.cluster.supervisor.worker_processes():
                return
            if fault.kind == "scheduler":
                try:
                    connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=5)
                    try:
                        if await self._leader(connection):
                            return
                    finally:
                        await connection.close()
                except (TimeoutError, OSError, asyncpg.PostgresError):
                    pass
            if fault.kind not in ("worker", "scheduler"):
                return
            await asyncio.sleep(0.5)

    async def _snapshot(self, fault: Fault) -> None:
        """What was in flight: rows leased (handed to the workers) and not completed at this moment."""
        connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=10)
        try:
            fault.db_at = await connection.fetchval("SELECT clock_timestamp()")
            if fault.kind == "web":  # the web process holds no outbox rows: its recovery is the intake's return
                return
            fault.inflight = await self._inflight(connection, fault.kind)
            if fault.kind == "scheduler":
                fault.detail = await self._leader(connection)
        finally:
            await connection.close()

    async def _inflight(self, connection, kind: str) -> list[dict]:
        """The rows a fault can strand. Where jobs take their rows with a lease token (the heartbeat's
        leases), a killed worker or a database restart strands the rows jobs are running (token set), and
        Redis or the relay lose the rows handed over and not yet taken (no token). Without tokens every
        leased row is in flight: nothing tells a running row from a queued one."""
        tokens = await connection.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox' AND column_name = 'lease_token'")
        where = "completed_at IS NULL AND lease_until > clock_timestamp() AND dispatched_at <= clock_timestamp()"
        if tokens and kind in ("worker", "postgres"):
            where += " AND lease_token IS NOT NULL"
        elif tokens and kind == "redis":
            where += " AND lease_token IS NULL"
        elif tokens and kind == "scheduler":  # the relay's last rounds: handed over, maybe never sent
            where += " AND lease_token IS NULL AND dispatched_at > clock_timestamp() - interval '3 seconds'"
        rows = await connection.fetch(f"SELECT id, job, payload::text AS payload FROM outbox WHERE {where}")
        return [{"id": r["id"], "job": r["job"], "payload": json.loads(r["payload"])} for r in rows]

    async def _leader(self, connection) -> str:
        row = await connection.fetchrow(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1", LEADER_LOCK & 0xFFFFFFFF)
        return str(row["client_port"]) if row else ""

    def _inject(self, fault: Fault) -> None:
        supervisor = self.cluster.supervisor
        if fault.kind == "web":
            pid = supervisor.pid("web")
            self.web_down_at = time.monotonic()
            supervisor.kill9(pid)
            fault.detail = f"web pid {pid}"
        elif fault.kind == "worker":
            children = supervisor.worker_processes()
            if not children:
                fault.detail = "no worker process was running"
                self.problems.append(f"fault worker at {fault.planned_at:.1f} s: no worker process to kill")
                return
            pid = self.random.choice(children)
            supervisor.kill9(pid)
            fault.detail = f"worker process {pid} of {children}"
        elif fault.kind == "scheduler":
            candidates = [supervisor.pid("scheduler-1"), supervisor.pid("scheduler-2")]
            leader = pid_owning_local_port(int(fault.detail), candidates) if fault.detail else None
            if leader is None:
                self.problems.append(f"fault scheduler at {fault.planned_at:.1f} s: no scheduler held the leadership lock "
                                     "for 20 s (the relay and the timers stood still)")
                fault.detail = "no leader found"
                return
            supervisor.kill9(leader)
            fault.detail = f"leading scheduler pid {leader} (standby {[p for p in candidates if p != leader]})"
        elif fault.kind == "redis":
            self.cluster.redis.kill()
            time.sleep(2.0)
            self.cluster.redis.start()
            fault.detail = "redis kill -9, down 2 s, restarted empty"
        elif fault.kind == "postgres":
            started = time.monotonic()
            self.cluster.pg.restart_immediate()
            fault.detail = f"pg_ctl restart -m immediate, back after {time.monotonic() - started:.1f} s"

    # --- waiting for the end ----------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Until every expected effect is at its receiver and no outbox row is left, or the time is up."""
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(2.0)
            try:
                connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=5)
                try:
                    left = await connection.fetchval("SELECT count(*) FROM outbox WHERE completed_at IS NULL")
                finally:
                    await connection.close()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                continue
            if left == 0:
                expected = await self.expected()
                received = {r.logical for r in self._all_received()}
                if not (set().union(*expected.values()) - received):
                    return


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_scenario(**options) -> tuple[list[str], Figures, Scenario]:
    """Build, load, fault, drain and judge; every process and temp dir is gone when this returns."""
    from contextlib import ExitStack

    scenario = Scenario(**options)
    with ExitStack() as stack:
        began = time.monotonic()
        scenario.start(stack)
        scenario.run()
        failures, figures = asyncio.run(scenario.verdict())
        figures.values["seed"] = scenario.seed
        figures.values["wall time (s)"] = round(time.monotonic() - began, 1)
        if failures:
            failures.append(scenario.state() + "\n" + scenario.cluster.log_tails())
    return failures, figures, scenario
