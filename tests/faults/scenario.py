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
load): kill -9 of ``backoffice web``, of one of the two dramatiq worker processes, of the scheduler that
holds the leadership lock; a Redis kill -9 and restart (no persistence: its queued messages are lost); a
PostgreSQL ``pg_ctl restart -m immediate``. The supervisor restarts what died one second later.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from tests.faults.cluster import Cluster, pid_owning_local_port, wait_until
from tests.faults.recorders import HttpRecorder, Received, SmtpRecorder, SmtpServer

RECOVERY_TARGET_S = 60.0
PLAN_PRO = {"code": "pro", "name": "Plano Pro", "price_cents": 19990}
PLAN_MAX = {"code": "max", "name": "Plano Max", "price_cents": 39990}
BETA_WEBHOOK_TYPES = ["contract.signed", "payment.cleared", "payment.overdue", "subscription.changed",
                      "subscription.canceled", "dunning.deadline_reached"]
FAULTS = ("web", "worker", "scheduler", "redis", "postgres")
LEADER_LOCK = 0x6B6F_0001  # platform/scheduler/leader.py: LOCK_KEY

# Customers per story at scale 1 (about 1,100 events in all).
STORIES = {
    "alfa": {"start_api": 120, "start_asaas": 120, "light": 50, "change": 60, "cancel": 40, "notice": 60, "block": 30},
    "beta": {"start": 150, "cleared": 80, "light": 34, "change": 40, "cancel": 30, "notice": 40, "block": 20},
}
TENANTS = {
    "alfa": {"cnpj": "11.222.333/0001-81", "asaas": True, "start": "payment.cleared", "webhook_types": None,
             "email_channels": ()},
    "beta": {"cnpj": "34.028.316/0001-03", "asaas": False, "start": "contract.signed",
             "webhook_types": BETA_WEBHOOK_TYPES, "email_channels": ("customer.started", "dunning.blocked")},
}


@dataclass
class Customer:
    tenant: str
    n: int
    story: str
    id: uuid.UUID
    email: str
    asaas_id: str | None = None
    overdue_payment: str | None = None  # the Asaas payment of a block/notice story by hook


@dataclass
class Planned:
    tenant: str
    customer: Customer
    kind: str  # "api" | "asaas"
    type: str
    body: dict[str, Any]
    role: str = ""  # "block-overdue", "block-payment"
    acked: bool = False
    event_id: str | None = None
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    refused: str | None = None


@dataclass
class Fault:
    kind: str
    planned_at: float
    at: float | None = None  # monotonic, when it was injected
    db_at: datetime | None = None  # the database's clock at injection
    inflight: list[dict] = field(default_factory=list)  # outbox rows leased and not completed at injection
    detail: str = ""
    recovery_s: float | None = None
    unrecovered: int = 0


@dataclass
class TenantSetup:
    slug: str
    id: uuid.UUID
    admin_id: uuid.UUID
    admin_email: str
    api_key: str
    sender: str
    asaas_instance: uuid.UUID | None = None
    asaas_token: str | None = None
    hook_token: str | None = None


@dataclass
class Figures:
    values: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        width = max(len(k) for k in self.values)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in self.values.items())


class Scenario:
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
        from tests.tenants.routines.fake_asaas import FakeAsaas

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
        wait_until(lambda: _ready(base), 90, "the web process answering /readyz")

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
        kinds = [kind for _ in range(self.fault_rounds) for kind in self.random.sample(FAULTS, len(FAULTS))]
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
            await self._snapshot(fault)
            fault.at = time.monotonic()
            await asyncio.to_thread(self._inject, fault)

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
            children = supervisor.children("worker")
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
                self.problems.append(f"fault scheduler at {fault.planned_at:.1f} s: no scheduler held the leadership lock")
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

    def _all_received(self) -> list[Received]:
        return list(self.http.received) + list(self.smtp_handler.received)

    # --- what must be seen ----------------------------------------------------------------------------------

    async def expected(self) -> dict[str, set[tuple]]:
        """Every effect the receivers must have, by channel, from the events sent and each tenant's setup."""
        out: dict[str, set[tuple]] = {"webhook": set(), "platform": set(), "email": set()}
        timers = await self._timer_events()
        for planned in self.plan + self.extra:
            if not planned.acked:
                continue
            c, setup, conf = planned.customer, self.tenants[planned.tenant], TENANTS[planned.tenant]
            cid, eid = str(c.id), planned.event_id
            if conf["webhook_types"] is None or planned.type in conf["webhook_types"]:
                out["webhook"].add((c.tenant, "webhook", eid))
            if c.story in ("start_api", "start_asaas", "start"):
                out["platform"].add((c.tenant, "platform", cid, "provision", ""))
                if "customer.started" in conf["email_channels"]:
                    out["email"].add((c.tenant, "email", f"{eid}:start:notify:email:{setup.admin_id}"))
            elif c.story == "change":
                out["platform"].add((c.tenant, "platform", cid, "provision", "change"))
            elif c.story == "cancel":
                out["platform"].add((c.tenant, "platform", cid, "deprovision", ""))
            elif planned.type == "payment.overdue":
                out["email"].add((c.tenant, "email", f"{eid}:dunning:notice"))
            elif planned.role == "block-payment":
                out["platform"].add((c.tenant, "platform", cid, "unblock", ""))
        for (tenant, customer_id), event_id in timers.items():
            conf, setup = TENANTS[tenant], self.tenants[tenant]
            if conf["webhook_types"] is None or "dunning.deadline_reached" in conf["webhook_types"]:
                out["webhook"].add((tenant, "webhook", event_id))
            out["platform"].add((tenant, "platform", customer_id, "block", ""))
            out["email"].add((tenant, "email", f"{event_id}:dunning:blocked_notice"))
            if "dunning.blocked" in conf["email_channels"]:
                out["email"].add((tenant, "email", f"{event_id}:dunning:blocked:email:{setup.admin_id}"))
        return out

    async def _timer_events(self) -> dict[tuple[str, str], str]:
        """The grace deadlines that fired: one event per block story's customer (its id names the effects)."""
        by_id = {s.id: slug for slug, s in self.tenants.items()}
        connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT tenant_id, customer_id, id FROM events WHERE source = 'timer' AND type = 'dunning.deadline_reached'")
        finally:
            await connection.close()
        found: dict[tuple[str, str], str] = {}
        for row in rows:
            key = (by_id[row["tenant_id"]], str(row["customer_id"]))
            if key in found:
                self.problems.append(f"two deadline events for customer {key}")
            found[key] = str(row["id"])
        return found

    # --- the verdict --------------------------------------------------------------------------------------

    async def verdict(self) -> tuple[list[str], Figures]:
        failures = list(self.problems)
        figures = Figures()
        sent = self.plan + self.extra
        acked = [p for p in sent if p.acked]
        unacked = [p for p in sent if not p.acked]
        figures.values["events sent (distinct)"] = len(sent)
        figures.values["events acknowledged (2xx)"] = len(acked)
        figures.values["requests made"] = sum(p.attempts for p in sent)
        if unacked:
            failures.append(f"{len(unacked)} events were never acknowledged; first: "
                            + "; ".join(f"{p.type} {p.body.get('external_id') or p.body.get('id')} statuses "
                                        f"{p.statuses[-5:]} refused={p.refused}" for p in unacked[:5]))

        connection = await asyncpg.connect(self.cluster.pg.dsn(), timeout=10)
        try:
            stored = {str(r["id"]): r["status"] for r in await connection.fetch(
                "SELECT id, status FROM events WHERE id = ANY($1::uuid[])", [uuid.UUID(p.event_id) for p in acked])}
            all_events = Counter({r["status"]: r["n"] for r in await connection.fetch(
                "SELECT status, count(*) AS n FROM events GROUP BY status")})
            stuck = await connection.fetch(
                "SELECT job, attempts, lease_until, available_at, last_error FROM outbox WHERE completed_at IS NULL "
                "ORDER BY available_at LIMIT 10")
            stuck_count = await connection.fetchval("SELECT count(*) FROM outbox WHERE completed_at IS NULL")
            messages = Counter({(r["channel"], r["status"]): r["n"] for r in await connection.fetch(
                "SELECT channel, status, count(*) AS n FROM outbound_messages GROUP BY channel, status")})
            bad_messages = await connection.fetch(
                "SELECT channel, status, attempts, last_error FROM outbound_messages WHERE status <> 'sent' LIMIT 10")
            deliveries = Counter({r["status"]: r["n"] for r in await connection.fetch(
                "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status")})
            await self._recovery(connection)
        finally:
            await connection.close()

        missing_rows = [p for p in acked if p.event_id not in stored]
        unprocessed = [p for p in acked if stored.get(p.event_id) not in (None, "processed")]
        figures.values["acknowledged events stored / processed"] = (
            f"{len(acked) - len(missing_rows)} / {len(acked) - len(missing_rows) - len(unprocessed)}")
        if missing_rows:
            failures.append(f"{len(missing_rows)} acknowledged events are not stored: "
                            f"{[p.body.get('external_id') or p.body.get('id') for p in missing_rows[:5]]}")
        if unprocessed:
            failures.append(f"{len(unprocessed)} acknowledged events are stored but not processed: "
                            f"{[(p.type, stored[p.event_id]) for p in unprocessed[:5]]}")
        if set(all_events) - {"processed"}:
            failures.append(f"events not processed at the end, by status: {dict(all_events)}")
        if stuck_count:
            failures.append(f"{stuck_count} outbox rows not completed at the end (stuck), first: "
                            + "; ".join(f"{r['job']} attempts={r['attempts']} lease_until={r['lease_until']} "
                                        f"available_at={r['available_at']} error={r['last_error']}" for r in stuck))
        if bad_messages:
            failures.append(f"outbound messages not sent at the end: {dict(messages)}; first: "
                            + "; ".join(f"{r['channel']} {r['status']} attempts={r['attempts']} {r['last_error']}"
                                        for r in bad_messages))
        if set(deliveries) - {"succeeded"}:
            failures.append(f"webhook deliveries not succeeded at the end: {dict(deliveries)}")
        figures.values["outbox rows left"] = stuck_count

        expected = await self.expected()
        received = self._all_received()
        by_logical: dict[tuple, list[Received]] = defaultdict(list)
        for item in received:
            by_logical[item.logical].append(item)
        for channel in ("platform", "webhook", "email"):
            want = expected[channel]
            got = {r.logical for r in received if r.channel == channel}
            missing, unexpected = want - got, got - want
            figures.values[f"{channel}: expected / received (distinct) / deliveries"] = (
                f"{len(want)} / {len(got & want)} / {sum(r.channel == channel for r in received)}")
            if missing:
                failures.append(f"{len(missing)} expected {channel} effects never reached the receiver, e.g. "
                                f"{sorted(missing, key=str)[:5]}")
            if unexpected:
                failures.append(f"{len(unexpected)} {channel} effects reached the receiver that no event asked for, "
                                f"e.g. {sorted(unexpected, key=str)[:5]}")
        same_id = different_id = 0
        examples = []
        for logical, items in by_logical.items():
            if len(items) < 2:
                continue
            identities = {i.identity for i in items}
            same_id += len(items) - len(identities)
            different_id += len(identities) - 1
            if len(identities) > 1:
                examples.append(f"{logical} x{len(items)} with identities {sorted(identities)}")
        figures.values["repeats at receivers, same identity"] = same_id
        figures.values["repeats at receivers, different identity"] = different_id
        if different_id:
            failures.append(f"{different_id} repeats reached a receiver with a fresh identity (the receiver cannot "
                            f"drop them): {examples[:5]}")
        folded = [r for r in self.smtp_handler.received if r.detail["folded"]]
        figures.values["e-mails with a folded X-Backoffice-Effect"] = len(folded)
        if folded:
            failures.append(f"{len(folded)} e-mails arrived with X-Backoffice-Effect folded, e.g. "
                            f"{[r.detail['effect_raw'] for r in folded[:2]]}")
        if self.http.refused:
            failures.append(f"{len(self.http.refused)} requests failed the receivers' signature check: "
                            f"{self.http.refused[:3]}")

        five = {s: n for s, n in sorted(self.statuses.items()) if s >= 500}
        figures.values["intake answers by status"] = dict(sorted(self.statuses.items()))
        figures.values["intake 5xx by status"] = five or "none"
        figures.values["intake 5xx without Retry-After"] = dict(self.no_retry_after) or "none"
        figures.values["intake connection errors (web down)"] = self.connection_errors
        bad5xx = {s: n for s, n in five.items() if s != 503}
        if bad5xx:
            failures.append(f"the intake answered {bad5xx} during outages: an unavailable dependency must be "
                            "503 with Retry-After")
        if self.no_retry_after:
            failures.append(f"5xx answers without Retry-After: {dict(self.no_retry_after)}")

        for fault in self.faults:
            label = f"recovery after {fault.kind}"
            if fault.kind == "web":
                continue
            if fault.recovery_s is None:
                figures.values[label] = f"nothing in flight ({fault.detail})"
                continue
            figures.values[label] = (f"{fault.recovery_s:.1f} s for {len(fault.inflight)} rows in flight"
                                     + (f", {fault.unrecovered} never completed" if fault.unrecovered else "")
                                     + f" ({fault.detail})")
            if fault.unrecovered or fault.recovery_s > RECOVERY_TARGET_S:
                failures.append(f"{fault.kind} fault: the work in flight took {fault.recovery_s:.1f} s to complete "
                                f"({fault.unrecovered} of {len(fault.inflight)} rows never did); target "
                                f"{RECOVERY_TARGET_S:.0f} s")
        worst = max((f.recovery_s for f in self.faults if f.recovery_s is not None), default=0.0)
        figures.values["worst recovery (s)"] = round(worst, 1)
        if any(f.kind == "web" and f.at is not None for f in self.faults):
            back = max(self.web_recovery, default=None)
            figures.values["intake back after web kill (s)"] = round(back, 1) if back is not None else "never"
            if back is None or back > RECOVERY_TARGET_S:
                failures.append(f"after the web kill the intake acknowledged nothing for "
                                f"{'the rest of the run' if back is None else f'{back:.1f} s'}; target "
                                f"{RECOVERY_TARGET_S:.0f} s")
        supervisor = self.cluster.supervisor
        figures.values["restarts by the supervisor"] = {n: s.restarts for n, s in supervisor.services.items()}
        return failures, figures

    async def _recovery(self, connection) -> None:
        """For each fault: from its moment until every row in flight then completed, and every message such a
        row was delivering was sent."""
        for fault in self.faults:
            if not fault.inflight:
                continue
            ids = [r["id"] for r in fault.inflight]
            done = {r["id"]: r["completed_at"] for r in await connection.fetch(
                "SELECT id, completed_at FROM outbox WHERE id = ANY($1::uuid[])", ids)}
            message_ids = [uuid.UUID(r["payload"]["message_id"]) for r in fault.inflight
                           if r["job"] == "effects.deliver" and r["payload"].get("message_id")]
            sent = {r["id"]: r["sent_at"] for r in await connection.fetch(
                "SELECT id, sent_at FROM outbound_messages WHERE id = ANY($1::uuid[])", message_ids)}
            times, unrecovered = [], 0
            for row in fault.inflight:
                completed = done.get(row["id"])
                if completed is None:
                    unrecovered += 1
                    continue
                moments = [completed]
                if row["job"] == "effects.deliver" and row["payload"].get("message_id"):
                    at = sent.get(uuid.UUID(row["payload"]["message_id"]))
                    if at is None:
                        unrecovered += 1
                        continue
                    moments.append(at)
                times.append((max(moments) - fault.db_at).total_seconds())
            fault.unrecovered = unrecovered
            fault.recovery_s = max(times, default=0.0)

    def state(self) -> str:
        """The recorders' state, for a failure message."""
        by_channel = Counter(r.channel for r in self._all_received())
        lines = [f"recorders: {dict(by_channel)}; signature refusals {len(self.http.refused)}",
                 "faults: " + "; ".join(f"{f.kind}@{f.planned_at:.1f}s {f.detail}" for f in self.faults),
                 f"supervisor: {self.cluster.supervisor.events if self.cluster.supervisor else []}"]
        recent = self._all_received()[-5:]
        lines += [f"  last: {r.channel} {r.tenant} {r.identity} {r.logical}" for r in recent]
        return "\n".join(lines)


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
