"""Benchmark of the staff console's overview with 10,000 tenants, on this machine's PostgreSQL.

    .venv/bin/python -m tests.perf.bench_console              # 10,000 tenants (seeding takes a few minutes)
    .venv/bin/python -m tests.perf.bench_console --tenants 2000 --repeat 10

Seeds its own database (``bo_perf_console``) with set-based inserts (``generate_series``): per tenant 20
customers (some in grace or blocked), 150 events over the last 30 days (a few waiting, unmatched or failed),
30 outbound messages (a few dead), 20 charges (a few overdue), 60 timeline entries (a few front-office
feedback, unread in the inbox), 4 routine runs (some partial), 2 connector instances (a few failing), webhook deliveries for one
tenant in ten; an admin and an operator assigned to 200 tenants. Then times, ``--repeat`` times each:
- every panel's statement of the overview (``tenants/overview/queries.py``, ``connectors/overview.py``)
  for the admin (all 10,000 tenants) and for the operator (200), p50 and p95;
- the floor: a bare ``count(*)`` over each panel's table, in the same run;
- the whole page over HTTP (the app in process, signed in as the admin through password and TOTP):
  every panel, sorting, the chart of the page's 50 tenants and the HTML; and the live refresh of those 50.
Writes the figures and each panel's EXPLAIN (ANALYZE) to tests/perf/results/console.json. Nothing here is
asserted by the test suite (tests/web/console/ checks the numbers are right).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

DB = "bo_perf_console"
PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "perf" / "results"
os.environ.update({
    "BACKOFFICE_DATABASE_URL": PG.format(user="backoffice_app", db=DB),
    "BACKOFFICE_SYSTEM_DATABASE_URL": PG.format(user="backoffice_system", db=DB),
    "BACKOFFICE_MIGRATION_DATABASE_URL": PG.format(user="postgres", db=DB),
    "BACKOFFICE_SECRET_KEY": "perf-console-" + "k" * 40,
    "BACKOFFICE_SECRETS_KEYS": "YmFja29mZmljZS1wZXJmLXNlY3JldHMta2V5LTMyYnk=",
    "BACKOFFICE_BROKER_URL": "memory://",
    "BACKOFFICE_REDIS_URL": "",
    "BACKOFFICE_LOG_LEVEL": "WARNING",
    "BACKOFFICE_DATA_DIR": "/tmp/bo-perf-console",
})

import pyotp  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from backoffice.connectors.overview import failing_connectors, failing_query  # noqa: E402
from backoffice.platform import clock  # noqa: E402
from backoffice.platform.audit.service import Actor  # noqa: E402
from backoffice.platform.db.migrate import upgrade  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.overview import queries  # noqa: E402

PASSWORD = "bench-password-long-enough"

SEED = [
    # 10,000 tenants.
    """INSERT INTO tenants (id, slug, display_name, legal_name, cnpj, status, timezone, locale, branding, created_at,
       updated_at)
       SELECT md5('t' || g)::uuid, 'empresa-' || g, 'Empresa ' || lpad(g::text, 5, '0'), 'Empresa ' || g || ' Ltda',
              lpad(g::text, 14, '0'), 'active', 'America/Sao_Paulo', 'pt-BR', '{}', now(), now()
       FROM generate_series(1, :n) g""",
    # 20 customers each: 1 in 20 in grace, 1 in 40 blocked.
    """INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, email, lifecycle, external_ids, created_at,
       updated_at)
       SELECT t.id, gen_random_uuid(), 'Cliente ' || c, 'cpf', lpad((c * 100000 + t.n)::text, 11, '0'),
              'c' || c || '@example.com',
              CASE WHEN (t.n + c) % 40 = 0 THEN 'blocked' WHEN (t.n + c) % 20 = 1 THEN 'in_grace' ELSE 'active' END,
              '{}', now(), now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t, generate_series(1, 20) c""",
    # 150 events each over 30 days: processed, with a few waiting (one tenant in 10), unmatched, failed.
    """INSERT INTO events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data, status)
       SELECT t.id, gen_random_uuid(), 'payment.received', 'asaas', 'ev-' || e,
              now() - (e * interval '288 minutes'), now() - (e * interval '288 minutes'), '{}',
              '{"value": 199.9, "billingType": "PIX", "description": "Plano Pro"}',
              CASE WHEN t.n % 10 = 0 AND e <= 5 THEN 'pending'
                   WHEN (t.n + e) % 97 = 0 THEN 'unmatched'
                   WHEN (t.n + e) % 211 = 0 THEN 'failed' ELSE 'processed' END
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t, generate_series(1, 150) e""",
    # 30 outbound messages each, 1 in 150 dead.
    """INSERT INTO outbound_messages (tenant_id, id, effect_key, channel, payload, status, attempts, response,
       last_error, created_at)
       SELECT t.id, gen_random_uuid(), 'fx-' || m, 'email', '{"subject": "Cobrança"}',
              CASE WHEN (t.n + m) % 150 = 0 THEN 'dead' ELSE 'sent' END, 1, '{}',
              CASE WHEN (t.n + m) % 150 = 0 THEN '550 mailbox unavailable' END, now() - (m * interval '1 day')
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t, generate_series(1, 30) m""",
    # One tenant in ten has a webhook endpoint with 20 deliveries, 1 in 50 dead.
    """INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, enabled, secrets,
       consecutive_failures, consecutive_dead, created_at, updated_at)
       SELECT id, md5('w' || id)::uuid, 'https://hooks.example.com/' || n, 'ERP', '[]', true, '[]', 0, 0, now(), now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t WHERE n % 10 = 0""",
    """INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, message_id, event_type, payload, status, attempts,
       replays, created_at)
       SELECT w.tenant_id, gen_random_uuid(), w.id, 'msg-' || d, 'customer.started', '{}',
              CASE WHEN d % 50 = 0 THEN 'dead' ELSE 'succeeded' END, 1, 0, now() - (d * interval '1 hour')
       FROM webhook_endpoints w, generate_series(1, 20) d""",
    # 20 charges each: a few overdue.
    """INSERT INTO charges (tenant_id, id, customer_id, amount_cents, currency, due_date, status, source, external_id,
       created_at, updated_at)
       SELECT c.tenant_id, gen_random_uuid(), c.id, 19990, 'BRL', current_date - 5,
              CASE WHEN c.lifecycle <> 'active' THEN 'overdue' ELSE 'paid' END, 'asaas', 'ch-' || c.id, now(), now()
       FROM customers c""",
    # 4 routine runs each (billing, invoices x 2 periods); 1 tenant in 25 has a partial latest billing run.
    """INSERT INTO routine_runs (tenant_id, id, routine, period, trigger, status, requested_by, items_total,
       items_done, items_failed, summary, created_at, updated_at)
       SELECT t.id, gen_random_uuid(), r.routine, p.period, 'schedule',
              CASE WHEN r.routine = 'billing' AND p.period = '2026-12' AND t.n % 25 = 0 THEN 'partial'
                   ELSE 'succeeded' END,
              'system:scheduler', 20, 20, 0, '{}', now() - (p.age * interval '1 day'), now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t,
            (VALUES ('billing'), ('invoices')) r(routine), (VALUES ('2026-11', 30), ('2026-12', 1)) p(period, age)""",
    """INSERT INTO routine_settings (tenant_id, id, routine, paused, updated_at)
       SELECT id, gen_random_uuid(), 'invoices', true, now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t WHERE n % 50 = 0""",
    # 3 timeline entries per customer over 3 weeks, a quarter of last week's a front-office feedback.
    """INSERT INTO timeline_entries (tenant_id, id, customer_id, at, kind, title, ref)
       SELECT c.tenant_id, gen_random_uuid(), c.id, now() - (k * interval '7 days' + random() * interval '1 day'),
              CASE WHEN k = 1 AND c.tax_id::bigint % 4 = 0 THEN 'feedback' WHEN k = 2 THEN 'transition' ELSE 'event' END,
              'Pagamento recebido', '{}'
       FROM customers c, generate_series(1, 3) k""",
    # Every front-office note is an item of the staff's feedback inbox; the older ones have been read.
    """INSERT INTO feedback_items (tenant_id, id, entry_id, customer_id, kind, recorded_at, state, replies)
       SELECT tenant_id, gen_random_uuid(), id, customer_id, kind, at,
              CASE WHEN at > now() - interval '7 days 12 hours' THEN 'unread' ELSE 'read' END, 0
       FROM timeline_entries WHERE kind = 'feedback'""",
    # 2 connector instances each, 1 tenant in 100 with a failing one.
    """INSERT INTO connector_instances (tenant_id, id, kind, name, enabled, config, health, last_error, last_error_at,
       created_at, updated_at)
       SELECT t.id, gen_random_uuid(), k.kind, k.kind, true, '{}',
              CASE WHEN k.kind = 'asaas' AND t.n % 100 = 0 THEN 'failing' ELSE 'ok' END,
              CASE WHEN k.kind = 'asaas' AND t.n % 100 = 0 THEN 'HTTP 503 from the provider' END,
              CASE WHEN k.kind = 'asaas' AND t.n % 100 = 0 THEN now() END, now(), now()
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tenants) t, (VALUES ('asaas'), ('smtp')) k(kind)""",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def admin_sql(sql: str) -> None:
    engine = create_async_engine(PG.format(user="postgres", db="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(sql))
    await engine.dispose()


async def seed(tenants: int) -> dict[str, float]:
    await admin_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin_sql(f'CREATE DATABASE "{DB}"')
    await asyncio.to_thread(upgrade, get_settings())
    engine = create_async_engine(PG.format(user="postgres", db=DB))
    took = {}
    async with engine.begin() as connection:
        for statement in SEED:
            started = time.perf_counter()
            await connection.execute(text(statement), {"n": tenants} if ":n" in statement else {})
            took[statement.split()[2]] = round(time.perf_counter() - started, 2)
    # The steady state autovacuum keeps: statistics, and the visibility map that lets the panels read their
    # partial indexes without visiting the table.
    vacuum = create_async_engine(PG.format(user="postgres", db=DB), isolation_level="AUTOCOMMIT")
    async with vacuum.connect() as connection:
        started = time.perf_counter()
        await connection.execute(text("VACUUM (ANALYZE)"))
        took["vacuum"] = round(time.perf_counter() - started, 2)
    await vacuum.dispose()
    await engine.dispose()
    return took


async def make_staff(database: Database) -> tuple[dict, dict]:
    from sqlalchemy import select

    from backoffice.tenants.staff import second_factor
    from backoffice.tenants.staff.service import assign_staff, create_staff
    from backoffice.tenants.registry.models import Tenant

    made = {}
    for role, email in (("provider_admin", "admin@bench.example"), ("provider_operator", "op@bench.example")):
        secret = pyotp.random_base32()
        totp = pyotp.TOTP(secret)
        async with database.system() as session:
            staff = await create_staff(session, email=email, name=email, role=role, password=PASSWORD,
                                       acting=Actor.system("bench"))
            await second_factor.enrol_totp(session, staff=staff, secret=secret,
                                           code=totp.generate_otp(totp.timecode(clock.now()) - 1),
                                           settings=database.settings, address="bench")
            if role == "provider_operator":
                tenants = (await session.execute(select(Tenant).order_by(Tenant.slug).limit(200))).scalars()
                for tenant in tenants:
                    await assign_staff(session, staff=staff, tenant=tenant, acting=Actor.system("bench"),
                                       reason="bench")
        made[role] = {"id": staff.id, "email": email, "totp": totp}
    return made["provider_admin"], made["provider_operator"]


def panels(database: Database, served, now, page_ids):
    settings = database.settings
    return {
        "tenants": (lambda s: queries.tenant_rows(s, served), "tenants"),
        "events (waiting, oldest, unmatched, failed)": (lambda s: queries.event_backlog(s, served), "events"),
        "dead deliveries": (lambda s: queries.dead_deliveries(s, served), "outbound_messages"),
        "customers in grace / blocked": (lambda s: queries.customers_at_risk(s, served), "customers"),
        "overdue amount": (lambda s: queries.overdue_amounts(s, served), "charges"),
        "routines needing attention": (lambda s: queries.routines_needing_attention(s, served, now), "routine_runs"),
        "unread front-office feedback": (lambda s: queries.unread_feedback(s, served), "feedback_items"),
        "connectors failing": (lambda s: failing_connectors(s, served, settings), "connector_instances"),
        "14-day chart (50 tenants)": (lambda s: queries.activity(s, page_ids, now), "events"),
    }


async def timed(database: Database, call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        async with database.system() as session:
            started = time.perf_counter()
            await call(session)
            times.append((time.perf_counter() - started) * 1000)
    return times


def figure(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 95), 2)}


async def explain(database: Database) -> dict[str, str]:
    """EXPLAIN ANALYZE of each panel's statement as the admin runs it, compiled with its literal values."""
    now = clock.now()
    plans = {}
    recorder: list = []
    from sqlalchemy import event as sa_event

    def capture(conn, cursor, statement, parameters, context, executemany):
        recorder.append((statement, parameters))

    sa_event.listen(database.system_engine.sync_engine, "before_cursor_execute", capture)
    try:
        for name, (call, _) in panels(database, None, now, []).items():
            if "chart" in name:
                continue
            recorder.clear()
            async with database.system() as session:
                await call(session)
            statement, parameters = recorder[-1]
            async with database.system_engine.connect() as connection:
                raw = await connection.get_raw_connection()
                rows = await raw.driver_connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
                plans[name] = "\n".join(row[0] for row in rows)
    finally:
        sa_event.remove(database.system_engine.sync_engine, "before_cursor_execute", capture)
    return plans


async def http_page(database: Database, member: dict, repeat: int) -> dict[str, dict[str, float]]:
    import re

    from litestar.testing import AsyncTestClient

    from backoffice.web.app import create_app

    async with AsyncTestClient(app=create_app(database.settings)) as client:  # its own engines, its own loop
        html = {"accept": "text/html"}

        def token(page: str) -> str:
            return re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)

        login = await client.get("/staff/login", headers=html)
        await client.post("/staff/login", data={"email": member["email"], "password": PASSWORD,
                                                "_csrf_token": token(login.text)}, headers=html)
        code_page = await client.get("/staff/login/code", headers=html)
        signed = await client.post("/staff/login/code", headers=html, follow_redirects=False, data={
            "code": member["totp"].now(), "_csrf_token": token(code_page.text)})
        assert signed.status_code in (302, 303), signed.text[:300]
        pages, lives = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            page = await client.get("/staff/", headers=html)
            pages.append((time.perf_counter() - started) * 1000)
            assert page.status_code == 200
        live = re.search(r'hx-get="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        for _ in range(repeat):
            started = time.perf_counter()
            answer = await client.get(live, headers={**html, "hx-request": "true"})
            lives.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
        rows = page.text.count("data-tenant=")
    return {"whole page (HTTP, 50 rows of all served)": figure(pages), "live refresh of the page's rows": figure(lives),
            "rows shown": rows}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--compare-indexes", action="store_true",
                        help="also time the admin's panels with migration 0018's indexes dropped")
    args = parser.parse_args()
    seeding = await seed(args.tenants)
    database = Database(get_settings())
    admin, operator = await make_staff(database)
    now = clock.now()
    async with database.system() as session:
        counts = {table: (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
                  for table in ("tenants", "customers", "events", "outbound_messages", "webhook_deliveries", "charges",
                                "routine_runs", "timeline_entries", "feedback_items", "connector_instances")}
        page_ids = [row[0] for row in await session.execute(text("SELECT id FROM tenants ORDER BY slug LIMIT 50"))]
    results: dict = {"tenants": args.tenants, "rows": counts, "seeding_seconds": seeding, "panels": {}}
    for who, member in (("admin (all tenants)", admin), ("operator (200 assigned)", operator)):
        served = queries.served_ids(member["id"], all_tenants=who.startswith("admin"))
        figures = {}
        for name, (call, table) in panels(database, served, now, page_ids).items():
            figures[name] = {**figure(await timed(database, call, args.repeat)), "table": table}
        all_panels = await timed(database, lambda s: _all(s, database, served, now, page_ids), args.repeat)
        figures["the page: panels joined and ranked, 50 rows, their connectors and chart"] = figure(all_panels)
        results["panels"][who] = figures
    floors = {}
    for table in ("tenants", "events", "outbound_messages", "customers", "charges", "routine_runs",
                  "feedback_items", "connector_instances"):
        floors[table] = figure(await timed(database, lambda s, t=table: s.execute(text(f"SELECT count(*) FROM {t}")),
                                           args.repeat))
    results["floor: count(*) over the panel's table"] = floors
    _save(results)  # the panels' figures are kept even if a later phase fails
    results["http"] = {"admin": await http_page(database, admin, args.repeat),
                       "operator": await http_page(database, operator, args.repeat)}
    results["explain"] = await explain(database)
    if args.compare_indexes:
        results["admin panels without migration 0018's indexes"] = await without_indexes(database, admin, now,
                                                                                        page_ids, args.repeat)
    await database.dispose()
    _save(results)
    print(json.dumps({k: v for k, v in results.items() if k != "explain"}, indent=2, default=str))


def _save(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(results, indent=2, default=str))


async def without_indexes(database: Database, admin: dict, now, page_ids, repeat: int) -> dict:
    """The same panels with the overview's indexes gone (what they cost before migration 0018)."""
    import importlib

    migration = importlib.import_module("backoffice.migrations.versions.0018_overview_indexes")
    engine = create_async_engine(PG.format(user="postgres", db=DB))
    async with engine.begin() as connection:
        for name, *_ in migration.INDEXES:
            await connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
    served = queries.served_ids(admin["id"], all_tenants=True)
    figures = {name: figure(await timed(database, call, repeat))
               for name, (call, _) in panels(database, served, now, page_ids).items()}
    figures["the page: panels joined and ranked, 50 rows, their connectors and chart"] = figure(
        await timed(database, lambda s: _all(s, database, served, now, page_ids), repeat))
    async with engine.begin() as connection:
        for name, table, columns, where in migration.INDEXES:
            await connection.execute(text(f"CREATE INDEX {name} ON {table} ({columns})"
                                          + (f" WHERE {where}" if where else "")))
    await engine.dispose()
    return figures


async def _all(session, database, served, now, page_ids):
    """What the overview page reads: the ranked page (every panel joined), the page's connectors and chart."""
    result = await queries.page(session, served, now, connectors=failing_query(served))
    ids = [line.tenant.id for line in result.lines]
    await failing_connectors(session, served, database.settings, ids)
    await queries.activity(session, ids, now)


if __name__ == "__main__":
    asyncio.run(main())
