"""A month of the demo tenants' life, played through the real spine at seed time.

Every change goes in as a canonical event through the one intake (``tenants/events/intake.ingest``, the
function the API and the connectors' webhook routes call), is relayed from the outbox to an in-process
broker and processed by real worker threads; the tenant's clock (``platform/timers/clock.py``) is moved
forward between the days, so grace deadlines, reminders and blocks fire as the timers they are. Nothing
here sets a customer's stage or writes a notification, a task or a timeline entry itself.

Deterministic (fixed names, ids and amounts; no randomness) and idempotent: events carry fixed external
ids (a repeat is a duplicate at intake) and the clock is moved to a fixed offset, not by a fixed step.
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
from sqlalchemy import func, select

from backoffice.connectors.platform_http import KIND
from backoffice.connectors.ports import install
from backoffice.connectors.service import create_instance, list_instances, set_enabled
from backoffice.platform import clock
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import Database
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.outbox.relay import relay_once
from backoffice.platform.settings import Settings
from backoffice.platform.timers.clock import advance_clock, offsets, tenant_now
from backoffice.platform.timers.service import fire_due_timers
from backoffice.platform.worker.broker import build_broker
from backoffice.tenants.effects.ports import set_port
from backoffice.tenants.events.intake import ingest
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.engine import start_run
from backoffice.tenants.routines.models import Trigger
from backoffice.web.entry.wiring import CONNECTOR_PORTS

ACTOR = Actor.system("demo-seed")
PLAN_PRO = {"code": "pro", "name": "Plano Pro", "price_cents": 19990, "billing_day": 5}
PLAN_GYM = {"code": "mensal", "name": "Plano Mensal", "price_cents": 12990, "billing_day": 10}


@dataclass(frozen=True)
class Day:
    """What happens on one day of the tenant's month: events, by the day's number (0 = the seed's day), and
    ``platform``: "down" when the tenant's own platform starts refusing commands, "back" when it is fixed."""

    number: int
    events: list[dict[str, Any]] = field(default_factory=list)
    platform: str | None = None


def _cleared(key: str, tax_id: str, charge: str, plan: dict, when: str, *, method: str = "pix") -> dict:
    """An Asaas PAYMENT_RECEIVED as the connector translates it."""
    return {"type": "payment.cleared", "source": "asaas", "external_id": f"evt_{key}", "customer": {"tax_id": tax_id},
            "data": {"charge": {"external_id": charge, "amount_cents": plan["price_cents"], "due_date": when[:10],
                                "description": f"Mensalidade {plan['name']}",
                                "payment_url": f"https://www.asaas.com/i/{charge}"},
                     "payment": {"external_id": charge, "amount_cents": plan["price_cents"], "paid_at": when,
                                 "method": method},
                     "plan": plan}}


def _created(key: str, tax_id: str, charge: str, plan: dict, due: str) -> dict:
    return {"type": "payment.created", "source": "asaas", "external_id": f"evt_{key}", "customer": {"tax_id": tax_id},
            "data": {"charge": {"external_id": charge, "amount_cents": plan["price_cents"], "due_date": due,
                                "description": f"Mensalidade {plan['name']}",
                                "payment_url": f"https://www.asaas.com/i/{charge}"}, "plan": plan}}


def _overdue(key: str, tax_id: str, charge: str, plan: dict, due: str) -> dict:
    return {"type": "payment.overdue", "source": "asaas", "external_id": f"evt_{key}", "customer": {"tax_id": tax_id},
            "data": {"charge": {"external_id": charge, "amount_cents": plan["price_cents"], "due_date": due,
                                "description": f"Mensalidade {plan['name']}",
                                "payment_url": f"https://www.asaas.com/i/{charge}"}}}


def _nota(key: str, tax_id: str, ref: str, number: str, amount: int, charge: str) -> dict:
    """A Focus NFe 'autorizado' callback as the connector translates it."""
    return {"type": "invoice.issued", "source": "focusnfe", "external_id": f"nfse_{key}",
            "customer": {"tax_id": tax_id},
            "data": {"document": {"external_id": ref, "number": number, "series": "1", "amount_cents": amount,
                                  "charge_external_id": charge,
                                  "pdf_url": f"https://api.focusnfe.com.br/notas_fiscais_servico/{ref}.pdf",
                                  "xml_url": f"https://api.focusnfe.com.br/notas_fiscais_servico/{ref}.xml"}}}


def _nota_rejected(key: str, tax_id: str, ref: str, message: str) -> dict:
    return {"type": "invoice.rejected", "source": "focusnfe", "external_id": f"nfse_{key}",
            "customer": {"tax_id": tax_id}, "data": {"document": {"external_id": ref}, "message": message}}


def _canceled(key: str, tax_id: str, reason: str) -> dict:
    return {"type": "subscription.canceled", "source": "api", "external_id": f"cancel_{key}",
            "customer": {"tax_id": tax_id}, "data": {"reason": reason}}


def _month(slug: str, start) -> list[Day]:
    """The month of ``slug``; ``start`` is the tenant's first day (dates of charges and payments follow it)."""
    def on(day: int, hour: int = 13) -> str:
        return (start + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()

    if slug == "aurora":
        casa, maria, oficina, bistro = "45723174000110", "52998224725", "12ABC34501DE35", "60701190000104"
        return [
            Day(0, [_cleared("aur-001", casa, "pay_aur_casa_1", PLAN_PRO, on(0)),
                    _cleared("aur-002", oficina, "pay_aur_ofi_1", PLAN_PRO, on(0, 15)),
                    _cleared("aur-003", bistro, "pay_aur_bis_1", PLAN_PRO, on(0, 16), method="boleto")]),
            Day(1, [_nota("aur-001", casa, "aurora-nf-0001", "2026000101", 19990, "pay_aur_casa_1"),
                    _nota_rejected("aur-002", oficina, "aurora-nf-0002",
                                   "E0160: código de serviço (item da lista) inválido para o município")]),
            Day(2, [_cleared("aur-004", maria, "pay_aur_mar_1", PLAN_PRO, on(2), method="credit_card"),
                    # A payment from someone nobody registered: kept as unmatched for staff.
                    _cleared("aur-unknown-1", "11444777000161", "pay_aur_unk_1", PLAN_PRO, on(2, 17))]),
            Day(3, [_nota("aur-002-retry", oficina, "aurora-nf-0002", "2026000102", 19990, "pay_aur_ofi_1")]),
            Day(8, [_overdue("aur-005", oficina, "pay_aur_ofi_2", PLAN_PRO, on(7)[:10])]),
            Day(11), Day(14),  # a reminder, then the deadline passes: blocked
            Day(16, [_cleared("aur-006", oficina, "pay_aur_ofi_2", PLAN_PRO, on(16))]),  # paid: unblocked
            # Next month's charge, created at the gateway; nobody pays it, and the day after its due date the
            # gateway says it is overdue: in grace at the month's end, its first reminder sent (day 27, 09:00
            # local; whatever the hour the seed runs, day 28 is past it and before the second, on day 29).
            Day(20, [_canceled("aur-bistro", bistro, "Encerrou as atividades do restaurante"),
                     _created("aur-007", casa, "pay_aur_casa_2", PLAN_PRO, on(24)[:10])]),
            Day(25, [_overdue("aur-008", casa, "pay_aur_casa_2", PLAN_PRO, on(24)[:10])]),
            Day(28),
        ]
    joao, studio = "11144477735", "04252011000110"
    return [
        Day(0, [_cleared("vit-001", joao, "pay_vit_joao_1", PLAN_GYM, on(0)),
                _cleared("vit-002", studio, "pay_vit_stu_1", PLAN_GYM, on(0, 14))]),
        Day(1, [_nota("vit-001", joao, "vitta-nf-0001", "88001", 12990, "pay_vit_joao_1"),
                _cleared("vit-unknown-1", "98765432100", "pay_vit_unk_1", PLAN_GYM, on(1, 18))]),
        # Vitta's own platform is under maintenance from day 9: the block command it refuses is a dead letter
        # for staff to replay (the console's dead letters) once it is back on day 28.
        Day(9, [_overdue("vit-003", studio, "pay_vit_stu_2", PLAN_GYM, on(9)[:10])], platform="down"),
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
    """Play each demo tenant's month (its clock ends ~28 days ahead of real time). The tenant's platform
    stand-in listens on loopback, so this run's connectors may reach private addresses (``seeding``)."""

    environment = settings.environment or ("demo" if settings.embedded else "production")
    seeding = settings.model_copy(update={"allow_private_targets": True})
    with Spine(database, seeding) as spine:  # first: building the broker imports the default port wiring
        previous = install(*CONNECTOR_PORTS, settings=seeding)
        server = await _platform_in_maintenance()
        try:
            await _play(spine, database, seeding, environment, tenant_ids, server)
        finally:
            server.close()
            await server.wait_closed()
            for channel, port in previous.items():
                set_port(channel, port)


async def _play(spine: Spine, database: Database, settings: Settings, environment: str,
                tenant_ids: dict[str, uuid.UUID], server: asyncio.Server) -> None:
    for slug, tenant_id in tenant_ids.items():
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
                async with database.tenant(tenant_id) as session:
                    await ingest(session, tenant_id, event)
            await spine.settle()
            # The morning's overdue check, as the scheduler starts it each day (its runs fill the routines page).
            async with database.provider(tenant_id) as session:
                tenant = await session.get(Tenant, tenant_id)
                today = (await tenant_now(session, tenant_id)).astimezone(ZoneInfo(tenant.timezone)).date()
                await start_run(session, "dunning_sweep", period=today.isoformat(), actor=ACTOR,
                                trigger=Trigger.SCHEDULE)
            await spine.settle()
