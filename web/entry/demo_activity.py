"""A month of the demo tenants' life, played through the real spine at seed time.

What a provider tells arrives as that provider's webhook, posted in process to the app's own webhook route
(``POST /hooks/{tenant}/{connector}``, ``web/hooks.py``) and verified there as any other: Asaas's payments
(created, received, overdue) with the connector's ``asaas-access-token``, Focus NFe's notas (issued,
rejected), Clicksign's closed envelope with its ``Content-Hmac``. Asaas and Focus NFe are trusted only after
the connector reads the object back from the provider's API, so the demo's own stand-ins for both listen on
loopback for the month (``demo_providers.py``) and the demo companies' connectors point at them; a payer the
platform does not know yet is looked up there too (and linked by CPF/CNPJ, as the gateway's customers are).
What the company's own system tells (a cancellation) goes in through the same intake the API calls
(``tenants/events/intake.ingest``). Events are relayed from the outbox to an in-process broker and processed
by real worker threads; the tenant's clock (``platform/timers/clock.py``) is moved forward between the days,
so grace deadlines, reminders and blocks fire as the timers they are. Nothing here sets a customer's stage
or writes a notification, a task or a timeline entry itself.

After the month the stand-ins are gone, so the Asaas and Focus NFe connectors are switched off (audited with
the reason: a billing run or a reconciliation would call an address nobody answers); Clicksign's, which only
receives, stays on.

Deterministic (fixed names, ids and amounts; no randomness) and idempotent: webhooks carry the providers'
fixed ids (a repeat is a duplicate at intake) and the clock is moved to a fixed offset, not by a fixed step.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import httpx
from sqlalchemy import func, select

from backoffice.connectors.clicksign import sign
from backoffice.connectors.directory import ConnectorDirectory
from backoffice.connectors.platform_http import KIND
from backoffice.connectors.ports import install
from backoffice.connectors.service import create_instance, list_instances, set_enabled, update_instance
from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.relay import relay_once
from backoffice.platform.settings import Settings
from backoffice.platform.timers.clock import advance_clock, offsets, tenant_now
from backoffice.platform.timers.service import fire_due_timers
from backoffice.platform.worker.broker import build_broker
from backoffice.tenants.connections import install_directory
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.engine import start_run
from backoffice.tenants.routines.models import Trigger
from backoffice.tenants.routines.queries import runs_query
from backoffice.web.app import create_app
from backoffice.web.entry.demo_providers import ProviderStandIns
from backoffice.web.entry.wiring import CONNECTOR_PORTS, DOMAIN_PORTS

ACTOR = Actor.system("demo-seed")
# The provider admin's decision to let the demo's Asaas and Focus NFe connectors reach the loopback stand-ins.
ADMIN = Actor(type="staff", label="admin@provider.example")
PLAN_PRO = {"code": "pro", "name": "Plano Pro", "price_cents": 19990, "billing_day": 5}
PLAN_GYM = {"code": "mensal", "name": "Plano Mensal", "price_cents": 12990, "billing_day": 10}
# Each company's Asaas account: its customers (Asaas's id, the subscription its monthly payments belong to,
# the plan), by CPF/CNPJ. The seed records the subscriptions as the companies' contracts (web/entry/demo.py);
# the payers are linked to the companies' customers when their first payment arrives, by CPF/CNPJ.
ACCOUNTS: dict[str, dict[str, tuple[str, str, dict]]] = {
    "aurora": {"45723174000110": ("cus_aur_casa", "sub_aur_casa", PLAN_PRO),
               "52998224725": ("cus_aur_maria", "sub_aur_maria", PLAN_PRO),
               "12ABC34501DE35": ("cus_aur_oficina", "sub_aur_oficina", PLAN_PRO),
               "60701190000104": ("cus_aur_bistro", "sub_aur_bistro", PLAN_PRO)},
    "vitta": {"11144477735": ("cus_vit_joao", "sub_vit_joao", PLAN_GYM),
              "04252011000110": ("cus_vit_studio", "sub_vit_studio", PLAN_GYM)},
}
# Someone who paid through a payment link, registered at Asaas with no CPF/CNPJ: nobody to match.
STRANGERS = {"aurora": {"id": "cus_aur_avulso", "name": "Lanchonete Ponto Certo", "email": "ponto.certo@example.com"},
             "vitta": {"id": "cus_vit_avulso", "name": "Rafael (aula avulsa)", "email": "rafa.treino@example.com"}}
ASAAS, FOCUS, CLICKSIGN = "Asaas", "Focus NFe", "Clicksign"
SWEEP = "dunning_sweep"  # the daily overdue check


def credentials(slug: str) -> dict[str, str]:
    """The demo company's provider credentials (fixed: a second run configures the same)."""
    return {"asaas_key": f"$aact_demo_{slug}_0000000000000000", "asaas_webhook": f"demo-{slug}-asaas-webhook-token",
            "focus_token": f"demo{slug}focustoken000000", "clicksign_secret": f"demo-{slug}-clicksign-hmac-secret"}


@dataclass(frozen=True)
class Hook:
    """A provider's webhook (``connector``: the instance's name) and, put in the stand-in first, what the
    provider's API answers when the connector reads the object back."""

    connector: str
    body: dict[str, Any]
    payment: dict[str, Any] | None = None
    nota: dict[str, Any] | None = None


@dataclass(frozen=True)
class Day:
    """What happens on one day of the tenant's month, by the day's number (0 = the seed's day): webhooks and
    the company's own events, in order, and ``platform``: "down" when the tenant's own platform starts
    refusing commands, "back" when it is fixed."""

    number: int
    events: list[Hook | dict[str, Any]] = field(default_factory=list)
    platform: str | None = None


STATUS = {"PAYMENT_CREATED": "PENDING", "PAYMENT_RECEIVED": "RECEIVED", "PAYMENT_OVERDUE": "OVERDUE"}
BILLING_TYPE = {"pix": "PIX", "boleto": "BOLETO", "credit_card": "CREDIT_CARD"}


def _asaas(event: str, key: str, customer: str, subscription: str | None, payment_id: str, plan: dict, due: str,
           *, paid: str | None = None, method: str | None = None) -> Hook:
    """Asaas's webhook for a payment (``event``: PAYMENT_CREATED, PAYMENT_RECEIVED, PAYMENT_OVERDUE), with the
    payment as Asaas's API has it then. An open charge lets the payer choose (UNDEFINED: Pix or boleto)."""
    kind = BILLING_TYPE[method] if method else "UNDEFINED"
    value = plan["price_cents"] / 100
    payment: dict[str, Any] = {
        "object": "payment", "id": payment_id, "dateCreated": due, "customer": customer,
        "subscription": subscription, "installment": None, "value": value, "netValue": round(value * 0.97, 2),
        "description": f"Mensalidade {plan['name']}", "billingType": kind, "status": STATUS[event],
        "dueDate": due, "originalDueDate": due, "paymentDate": paid[:10] if paid else None,
        "clientPaymentDate": paid[:10] if paid else None, "confirmedDate": paid[:10] if paid else None,
        "invoiceUrl": f"https://www.asaas.com/i/{payment_id.removeprefix('pay_')}",
        "bankSlipUrl": f"https://www.asaas.com/b/pdf/{payment_id.removeprefix('pay_')}"
        if kind in ("BOLETO", "UNDEFINED") else None,
        "externalReference": None, "deleted": False,
    }
    when = (paid or f"{due}T08:00:00")[:19].replace("T", " ")
    return Hook(ASAAS, {"id": f"evt_{key}", "event": event, "dateCreated": when, "payment": payment}, payment=payment)


def _nota(tax_id: str, ref: str, number: str, amount: int, when: str) -> Hook:
    """Focus NFe's callback for an authorised nota (Focus posts the nota's JSON; the API's is the same)."""
    nota = {"ref": ref, "status": "autorizado", "numero": number, "serie_rps": "1", "numero_rps": ref[-4:],
            "codigo_verificacao": f"V{number[-6:]}", "data_emissao": when, "valor_servicos": amount / 100,
            "url": f"https://api.focusnfe.com.br/notas_fiscais_servico/{ref}",
            "url_danfse": f"https://api.focusnfe.com.br/notas_fiscais_servico/{ref}.pdf",
            "tomador": {"cpf" if len(tax_id) == 11 else "cnpj": tax_id}}
    return Hook(FOCUS, nota, nota=nota)


def _nota_rejected(tax_id: str, ref: str, code: str, message: str) -> Hook:
    nota = {"ref": ref, "status": "erro_autorizacao", "erros": [{"codigo": code, "mensagem": message}],
            "tomador": {"cpf" if len(tax_id) == 11 else "cnpj": tax_id}}
    return Hook(FOCUS, nota, nota=nota)


def _signed(envelope: str, signer: str, documentation: str, when: str) -> Hook:
    """Clicksign's ``auto_close``: the last signer signed, the envelope is closed."""
    return Hook(CLICKSIGN, {
        "event": {"name": "auto_close", "data": {}, "occurred_at": when},
        "document": {"key": envelope, "status": "closed", "finished_at": when,
                     "downloads": {"signed_file_url": f"https://app.clicksign.com/documentos/{envelope}/assinado.pdf"},
                     "signers": [{"name": signer, "documentation": documentation, "sign_as": "contractor"}]}})


def _canceled(key: str, tax_id: str, reason: str) -> dict:
    """The company's own system (the API's event): the customer cancelled."""
    return {"type": "subscription.canceled", "source": "api", "external_id": f"cancel_{key}",
            "customer": {"tax_id": tax_id}, "data": {"reason": reason}}


def _month(slug: str, start) -> list[Day]:
    """The month of ``slug``; ``start`` is the tenant's first day (dates of charges and payments follow it)."""
    def on(day: int, hour: int = 13) -> str:
        return (start + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()

    def pay(event: str, key: str, tax_id: str, payment_id: str, due: str, **kwargs) -> Hook:
        customer, subscription, plan = ACCOUNTS[slug][tax_id]
        return _asaas(event, key, customer, subscription, payment_id, plan, due, **kwargs)

    if slug == "aurora":
        casa, maria, oficina, bistro = "45723174000110", "52998224725", "12ABC34501DE35", "60701190000104"
        return [
            Day(0, [_signed("aurora-contrato-casa-do-pao", "Casa do Pão Ltda", "45.723.174/0001-10", on(0, 10)),
                    pay("PAYMENT_RECEIVED", "aur-001", casa, "pay_aur_casa_1", on(0)[:10], paid=on(0), method="pix"),
                    pay("PAYMENT_RECEIVED", "aur-002", oficina, "pay_aur_ofi_1", on(0)[:10], paid=on(0, 15),
                        method="pix"),
                    pay("PAYMENT_RECEIVED", "aur-003", bistro, "pay_aur_bis_1", on(0)[:10], paid=on(0, 16),
                        method="boleto")]),
            Day(1, [_nota(casa, "aurora-nf-0001", "2026000101", 19990, on(1, 9)),
                    _nota_rejected(oficina, "aurora-nf-0002", "E160",
                                   "Código de serviço (item da lista) inválido para o município")]),
            Day(2, [pay("PAYMENT_RECEIVED", "aur-004", maria, "pay_aur_mar_1", on(2)[:10], paid=on(2),
                        method="credit_card"),
                    # A payment from someone nobody registered: kept as unmatched for staff.
                    _asaas("PAYMENT_RECEIVED", "aur-unknown-1", STRANGERS[slug]["id"], None, "pay_aur_unk_1", PLAN_PRO,
                           on(2)[:10], paid=on(2, 17), method="pix")]),
            Day(3, [_nota(oficina, "aurora-nf-0002", "2026000102", 19990, on(3, 9))]),  # issued on the retry
            Day(8, [pay("PAYMENT_OVERDUE", "aur-005", oficina, "pay_aur_ofi_2", on(7)[:10])]),
            Day(11), Day(14),  # a reminder, then the deadline passes: blocked
            Day(16, [pay("PAYMENT_RECEIVED", "aur-006", oficina, "pay_aur_ofi_2", on(7)[:10], paid=on(16),
                         method="pix")]),  # paid: unblocked
            # Next month's charge, created at the gateway; nobody pays it, and the day after its due date the
            # gateway says it is overdue: in grace at the month's end, its first reminder sent (day 27, 09:00
            # local; whatever the hour the seed runs, day 28 is past it and before the second, on day 29).
            Day(20, [_canceled("aur-bistro", bistro, "Encerrou as atividades do restaurante"),
                     pay("PAYMENT_CREATED", "aur-007", casa, "pay_aur_casa_2", on(24)[:10])]),
            Day(25, [pay("PAYMENT_OVERDUE", "aur-008", casa, "pay_aur_casa_2", on(24)[:10])]),
            Day(28),
        ]
    joao, studio = "11144477735", "04252011000110"
    return [
        Day(0, [_signed("vitta-adesao-joao-pereira", "João Pereira", "111.444.777-35", on(0, 9)),
                pay("PAYMENT_RECEIVED", "vit-001", joao, "pay_vit_joao_1", on(0)[:10], paid=on(0), method="pix"),
                pay("PAYMENT_RECEIVED", "vit-002", studio, "pay_vit_stu_1", on(0)[:10], paid=on(0, 14),
                    method="boleto")]),
        Day(1, [_nota(joao, "vitta-nf-0001", "88001", 12990, on(1, 9)),
                _asaas("PAYMENT_RECEIVED", "vit-unknown-1", STRANGERS[slug]["id"], None, "pay_vit_unk_1", PLAN_GYM,
                       on(1)[:10], paid=on(1, 18), method="pix")]),
        # Vitta's own platform is under maintenance from day 9: the block command it refuses is a dead letter
        # for staff to replay (the console's dead letters) once it is back on day 28.
        Day(9, [pay("PAYMENT_OVERDUE", "vit-003", studio, "pay_vit_stu_2", on(9)[:10])], platform="down"),
        Day(12), Day(15),  # reminder, then blocked: still blocked at the end of the month
        Day(28, platform="back"),
    ]


class Spine:
    """Relay, timers and worker threads, run until nothing available is left (the scheduler's ticks, back
    to back)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.broker = build_broker(settings, namespace=f"bo-demo-seed-{uuid.uuid4().hex[:8]}")
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=50)

    async def settle(self, rounds: int = 60) -> None:
        for _ in range(rounds):
            moved = await relay_once(self.database, self.broker) + await fire_due_timers(self.database)
            for queue in self.broker.get_declared_queues():
                await asyncio.to_thread(self.broker.join, queue, timeout=60_000)
            if moved == 0 and await self._outstanding() == 0:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the demo's month did not settle: {await self._outstanding()} outbox rows outstanding")

    async def _outstanding(self) -> int:
        async with self.database.system() as session:
            return (await session.execute(select(func.count()).select_from(OutboxEntry).where(
                OutboxEntry.completed_at.is_(None), OutboxEntry.available_at <= clock.now()))).scalar_one()

    def __enter__(self) -> Spine:
        self.worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        for queue in self.broker.get_declared_queues():
            self.broker.flush(queue)
        self.broker.close()


PLATFORM_NAME = "Plataforma Vitta"
PLATFORM_SECRET = "whsec_" + base64.b64encode(b"vitta-demo-platform-signing-key!").decode()
MAINTENANCE = json.dumps({"error": "plataforma em manutenção: comandos recusados até as 06:00"}).encode()


async def _platform_in_maintenance() -> asyncio.Server:
    """The tenant's platform (the generic HTTP connector's protocol: a JSON POST per command) during a
    maintenance window, on loopback: it reads each command and refuses it with 423 Locked."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        writer.write(b"HTTP/1.1 423 Locked\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(MAINTENANCE), MAINTENANCE))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _platform(database: Database, settings: Settings, tenant_id: uuid.UUID, state: str,
                    server: asyncio.Server | None) -> None:
    """Configure the tenant's platform connector at the stand-in ("down"), or switch it off ("back": the
    commands are recorded again, as for every demo tenant, so a replay from the console goes through)."""

    async with database.provider(tenant_id) as session:
        existing = [i for i in await list_instances(session) if i.name == PLATFORM_NAME]
        if state == "down" and not existing and server is not None:
            port = server.sockets[0].getsockname()[1]
            await create_instance(session, kind=KIND, name=PLATFORM_NAME, settings=settings, acting=ACTOR,
                                  config={"url": f"http://127.0.0.1:{port}/comandos", "secret": PLATFORM_SECRET},
                                  reason="demo: Vitta's platform, in a maintenance window")
        elif state == "back" and existing and existing[0].enabled:
            await set_enabled(session, existing[0].id, False, acting=ACTOR,
                              reason="demo: the maintenance window is over; commands are recorded again")


async def play_month(database: Database, settings: Settings, tenant_ids: dict[str, uuid.UUID]) -> None:
    """Play each demo tenant's month (its clock ends ~28 days ahead of real time). The stand-ins listen on
    loopback, so this run's connectors may reach private addresses (``seeding``): the webhook route's reads
    back, the worker threads' (a payer looked up at Asaas, the platform's commands)."""

    environment = settings.environment or ("demo" if settings.embedded else "production")
    seeding = settings.model_copy(update={"allow_private_targets": True})
    with Spine(database, seeding) as spine:  # first: building the broker imports the default port wiring
        previous = install(*CONNECTOR_PORTS, settings=seeding)
        previous_directory = install_directory(ConnectorDirectory(DOMAIN_PORTS, settings=seeding))
        server = await _platform_in_maintenance()
        app = create_app(seeding, database=database, broker=spine.broker)
        try:
            async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                         base_url="http://127.0.0.1") as client:
                await _play(spine, database, seeding, environment, tenant_ids, server, client)
        finally:
            server.close()
            await server.wait_closed()
            install_directory(previous_directory)
            for channel, port in previous.items():
                set_port(channel, port)


async def _connectors(database: Database, settings: Settings, tenant_id: uuid.UUID, slug: str,
                      stand_ins: ProviderStandIns) -> dict[str, uuid.UUID]:
    """The company's Asaas, Focus NFe and Clicksign connectors, with their webhook credentials; Asaas's and
    Focus NFe's API at this run's stand-ins (configured on the first run, pointed at the new port and
    switched on again on a later one). Returns the instances' ids by name."""
    secrets = credentials(slug)
    wanted = {ASAAS: ("asaas", {"base_url": stand_ins.url, "api_key": secrets["asaas_key"],
                                "webhook_token": secrets["asaas_webhook"]}),
              FOCUS: ("focusnfe", {"base_url": stand_ins.url, "token": secrets["focus_token"]}),
              CLICKSIGN: ("clicksign", {"hmac_secret": secrets["clicksign_secret"]})}
    ids = {}
    async with database.provider(tenant_id) as session:
        existing = {i.name: i for i in await list_instances(session)}
        for name, (kind, config) in wanted.items():
            instance = existing.get(name)
            override = "127.0.0.1" if "base_url" in config else None
            if instance is None:
                instance = await create_instance(
                    session, kind=kind, name=name, config=config, settings=settings, host_override=override,
                    acting=ADMIN if override else ACTOR,
                    reason="demo: the company's account, answered by the demo's stand-in during the seed"
                    if override else "demo: the company's e-signature account")
            elif override:
                await update_instance(session, instance.id, config={"base_url": config["base_url"]}, acting=ACTOR,
                                      settings=settings, reason="demo: this seed's stand-in")
            if not instance.enabled:
                await set_enabled(session, instance.id, True, acting=ACTOR, reason="demo: the seed plays the month")
            ids[name] = instance.id
    return ids


async def _stand_ins_gone(database: Database, tenant_id: uuid.UUID, ids: dict[str, uuid.UUID]) -> None:
    async with database.provider(tenant_id) as session:
        for name in (ASAAS, FOCUS):
            await set_enabled(session, ids[name], False, acting=ACTOR,
                              reason="demo: the stand-in that played this provider answered only during the seed")


async def _post(client: httpx.AsyncClient, slug: str, instance_id: uuid.UUID, hook: Hook) -> None:
    """The provider's POST to the connector's webhook route, with its credential; anything but a stored (or
    already stored) event is a broken demo, said at once."""
    body = json.dumps(hook.body, ensure_ascii=False).encode()
    headers = {"content-type": "application/json"}
    if hook.connector == ASAAS:
        headers["asaas-access-token"] = credentials(slug)["asaas_webhook"]
    elif hook.connector == CLICKSIGN:
        headers["content-hmac"] = sign(credentials(slug)["clicksign_secret"], body)
    response = await client.post(f"/hooks/{slug}/{instance_id}", content=body, headers=headers)
    if response.status_code != 200 or not response.json().get("received"):
        raise RuntimeError(f"the demo's {hook.connector} webhook to {slug} was answered {response.status_code}: "
                           f"{response.text[:500]}")


async def _play(spine: Spine, database: Database, settings: Settings, environment: str,
                tenant_ids: dict[str, uuid.UUID], server: asyncio.Server, client: httpx.AsyncClient) -> None:
    for slug, tenant_id in tenant_ids.items():
        secrets = credentials(slug)
        stand_ins = await ProviderStandIns(secrets["asaas_key"], secrets["focus_token"]).start()
        try:
            for tax_id, (customer, _, _) in ACCOUNTS[slug].items():
                stand_ins.customers[customer] = {"object": "customer", "id": customer, "cpfCnpj": tax_id,
                                                 "externalReference": None, "deleted": False, "name": customer}
            stranger = STRANGERS[slug]
            stand_ins.customers[stranger["id"]] = {"object": "customer", "cpfCnpj": None, "externalReference": None,
                                                   "deleted": False, **stranger}
            connectors = await _connectors(database, settings, tenant_id, slug, stand_ins)
            await _days(spine, database, settings, environment, slug, tenant_id, server, client, stand_ins, connectors)
            await _stand_ins_gone(database, tenant_id, connectors)
        finally:
            await stand_ins.close()


async def _days(spine: Spine, database: Database, settings: Settings, environment: str, slug: str,
                tenant_id: uuid.UUID, server: asyncio.Server, client: httpx.AsyncClient,
                stand_ins: ProviderStandIns, connectors: dict[str, uuid.UUID]) -> None:
    async with database.system() as session:
        already = (await offsets(session, [tenant_id])).get(tenant_id, timedelta(0))
    start = clock.now() - already  # the month's first day, the same on a second run
    for day in _month(slug, start):
        target = timedelta(days=day.number)
        async with database.provider(tenant_id) as session:
            current = (await offsets(session, [tenant_id])).get(tenant_id, timedelta(0))
            if target > current:
                await advance_clock(session, tenant_id, by=target - current, environment=environment,
                                    acting=ACTOR, reason=f"demo: day {day.number} of the month")
        if day.platform:
            await _platform(database, settings, tenant_id, day.platform, server)
        for event in day.events:
            if isinstance(event, Hook):
                if event.payment is not None:
                    stand_ins.payments[event.payment["id"]] = event.payment
                if event.nota is not None:
                    stand_ins.notas[event.nota["ref"]] = event.nota
                await _post(client, slug, connectors[event.connector], event)
            else:
                async with database.tenant(tenant_id) as session:
                    await ingest(session, tenant_id, event)
        await spine.settle()
        # The morning's overdue check, as the scheduler starts it each day (its runs fill the routines page).
        async with database.provider(tenant_id) as session:
            tenant = await session.get(Tenant, tenant_id)
            today = (await tenant_now(session, tenant_id)).astimezone(ZoneInfo(tenant.timezone)).date()
            checked = (await session.execute(runs_query(routine=SWEEP, period=today.isoformat(),
                                                        trigger=Trigger.SCHEDULE).limit(1))).first()
            if checked is not None:  # a second run of the seed: that day's check was started the first time
                continue
            await start_run(session, SWEEP, period=today.isoformat(), actor=ACTOR, trigger=Trigger.SCHEDULE)
        await spine.settle()
