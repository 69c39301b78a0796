"""Benchmark of the event spine on this machine's PostgreSQL and Redis. Prints a table, writes JSON.

    .venv/bin/python -m tests.perf.bench_spine            # every figure (about 10 minutes)
    .venv/bin/python -m tests.perf.bench_spine --quick    # smaller volumes, same measurements

Timings that depend on the machine are reported as ratios against a baseline measured in the same run;
the absolute figures are printed for context. Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "perf" / "results"
PY = sys.executable
PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
DB = "bo_perf"
REDIS = "redis://127.0.0.1:6379/13"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
    base.update({
        "BACKOFFICE_DATABASE_URL": PG.format(user="backoffice_app", db=DB),
        "BACKOFFICE_SYSTEM_DATABASE_URL": PG.format(user="backoffice_system", db=DB),
        "BACKOFFICE_MIGRATION_DATABASE_URL": PG.format(user="postgres", db=DB),
        "BACKOFFICE_BROKER_URL": REDIS,
        "BACKOFFICE_SECRET_KEY": "perf-" + "k" * 40,
        "BACKOFFICE_SECRETS_KEYS": "YmFja29mZmljZS1wZXJmLXNlY3JldHMta2V5LTMyYnk=",  # any Fernet key, the same in every process
        "BACKOFFICE_WORKER_THREADS": "8",
        "BACKOFFICE_LOG_LEVEL": "WARNING",
        "BACKOFFICE_DATA_DIR": "/tmp/bo-perf",
    })
    base.update(extra)
    return base


os.environ.update(env())

from backoffice.platform.db.migrate import upgrade  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.events.intake import ingest_batch, validate  # noqa: E402
from backoffice.web.entry.wiring import compose  # noqa: E402

compose()  # the registries and ports every process of the platform fills first (connector kinds, jobs)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def admin(sql: str, db: str = "postgres") -> None:
    engine = create_async_engine(PG.format(user="postgres", db=db), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(sql))
    await engine.dispose()


async def owner_sql(*statements: str) -> None:
    engine = create_async_engine(PG.format(user="postgres", db=DB))
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    await engine.dispose()


@contextmanager
def processes(*commands: list[str], extra_env: dict[str, str] | None = None):
    # Logs go to files: a pipe nobody reads fills up and blocks the process mid-benchmark.
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = [open(RESULTS / f"{Path(cmd[2]).name.replace('.', '_')}-{n}.log", "ab") for n, cmd in enumerate(commands)]
    procs = [subprocess.Popen(cmd, env=env(**(extra_env or {})), cwd=ROOT, stdout=log, stderr=log,
                              start_new_session=True) for cmd, log in zip(commands, logs, strict=True)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (dramatiq forks its workers)."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                     text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = max(total, int(line.split()[1]))
        except FileNotFoundError:
            continue
    return total / 1024


# --- setup -------------------------------------------------------------------------------------------

async def setup(customers_per_load_tenant: int) -> dict[str, uuid.UUID]:
    import redis

    redis.Redis.from_url(REDIS).flushdb()  # messages of an earlier run point at rows that no longer exist
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DB}"')
    await asyncio.to_thread(upgrade, get_settings())  # Alembic runs its own event loop
    ids = {name: uuid.uuid4() for name in ("load", "quiet", "noisy")}
    statements = ["CREATE TABLE bare_events (id uuid PRIMARY KEY, body jsonb NOT NULL)",
                  "GRANT INSERT ON bare_events TO backoffice_app"]
    for n, (name, tenant_id) in enumerate(ids.items()):
        statements.append(
            f"INSERT INTO tenants (id, slug, display_name, legal_name, cnpj, status, timezone, locale, branding, "
            f"created_at, updated_at) VALUES ('{tenant_id}', 'perf-{name}', 'Perf {name}', 'Perf {name} Ltda', "
            f"'{90000000000000 + n}', 'active', 'America/Sao_Paulo', 'pt-BR', '{{}}', now(), now())")
        statements.append(
            f"INSERT INTO tenant_users (tenant_id, id, email, name, role, active, created_at) VALUES "
            f"('{tenant_id}', '{uuid.uuid5(tenant_id, 'manager')}', 'am@{name}.example', 'AM {name}', "
            f"'tenant_admin', true, now())")
        statements.append(
            f"INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, email, account_manager_id, lifecycle, "
            f"external_ids, created_at, updated_at) SELECT '{tenant_id}', gen_random_uuid(), 'Cliente ' || g, 'cpf', "
            f"lpad(g::text, 11, '0'), 'c' || g || '@example.com', '{uuid.uuid5(tenant_id, 'manager')}', "
            f"'onboarding', json_build_object('bench', 'cus_' || g), now(), now() "
            f"FROM generate_series(1, {customers_per_load_tenant}) g")
    await owner_sql(*statements)
    return ids


def started_event(n: int, tag: str) -> dict:
    return {"type": "payment.cleared", "source": "bench", "external_id": f"{tag}-{n}-{uuid.uuid4().hex[:8]}",
            "customer": {"external_id": f"cus_{n}", "source": "bench"},
            "data": {"charge": {"external_id": f"ch-{tag}-{n}", "amount_cents": 19990, "due_date": "2026-11-05"},
                     "payment": {"amount_cents": 19990, "paid_at": "2026-11-02T14:00:00+00:00", "method": "pix"},
                     "plan": {"code": "pro", "name": "Plano Pro", "price_cents": 19990}}}


def light_event(n: int, tag: str) -> dict:
    return {"type": "payment.created", "source": "bench", "external_id": f"{tag}-{n}-{uuid.uuid4().hex[:8]}",
            "customer": {"external_id": f"cus_{n % 1000 + 1}", "source": "bench"},
            "data": {"charge": {"external_id": f"ch-{tag}-{n}", "amount_cents": 990, "due_date": "2026-12-05"}}}


# --- 1. durable single-event intake vs a bare one-insert endpoint -------------------------------------

async def load_http(url: str, seconds: float, concurrency: int, body_of) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):  # warm-up
            await client.post(url, content=json.dumps(body_of(0)))
        done = 0
        deadline = time.perf_counter() + seconds

        async def loop(worker: int) -> None:
            nonlocal done
            n = worker * 10_000_000
            while time.perf_counter() < deadline:
                n += 1
                response = await client.post(url, content=json.dumps(body_of(n)))
                response.raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(loop(w) for w in range(concurrency)))
        return done / (time.perf_counter() - start)


async def bench_single_intake(ids, seconds: float) -> dict:
    results: dict[str, list[float]] = {"bare": [], "intake": []}
    body = lambda n: light_event(n, "single")  # noqa: E731
    for _round in range(2):
        for name in ("bare", "intake"):
            port = free_port()
            cmd = [PY, "-m", "uvicorn", "tests.perf.apps:app", "--port", str(port), "--log-level", "warning",
                   "--no-access-log"]
            extra = {"PERF_APP": name, "PERF_TENANT": str(ids["load"]),
                     "PERF_DSN": f"postgresql://backoffice_app@127.0.0.1:5432/{DB}"}
            with processes(cmd, extra_env=extra):
                await wait_http(f"http://127.0.0.1:{port}/events", body(0))
                results[name].append(await load_http(f"http://127.0.0.1:{port}/events", seconds, 16, body))
    bare, ours = statistics.mean(results["bare"]), statistics.mean(results["intake"])
    return {"bare_rps": round(bare), "intake_rps": round(ours), "ratio": round(ours / bare, 3), "target": 0.8}


async def wait_http(url: str, body: dict) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(100):
            try:
                await client.post(url, content=json.dumps(body))
                return
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


# --- 2. batch intake --------------------------------------------------------------------------------

async def bench_batch(database: Database, ids, batches: int) -> dict:
    tenant = ids["noisy"]
    prepared = [[validate(light_event(b * 1000 + i, "batch")) for i in range(1000)] for b in range(batches)]
    start = time.perf_counter()
    for batch in prepared:
        async with database.tenant(tenant) as session:
            await ingest_batch(session, tenant, batch)
    elapsed = time.perf_counter() - start
    return {"events": batches * 1000, "seconds": round(elapsed, 2),
            "events_per_s": round(batches * 1000 / elapsed), "target": 20_000}


# --- 3 & 4. event-to-notification latency, and fairness under a flood ---------------------------------

async def latencies(database: Database, tenant: uuid.UUID, event_ids: list[uuid.UUID], timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    query = text("SELECT e.received_at, min(n.created_at) FROM events e JOIN notifications n "
                 "ON n.event_id = e.id AND n.tenant_id = e.tenant_id WHERE e.tenant_id = :t AND e.id = ANY(:ids) "
                 "GROUP BY e.id, e.received_at")
    while True:
        async with database.system() as session:
            rows = (await session.execute(query, {"t": tenant, "ids": event_ids})).all()
        if len(rows) == len(event_ids) or time.monotonic() > deadline:
            return [(notified - received).total_seconds() for received, notified in rows]
        await asyncio.sleep(0.5)


async def paced(database: Database, tenant: uuid.UUID, rate: float, seconds: float, first: int, tag: str) -> list:
    """Ingest started-customer events at ``rate`` per second, one transaction each, as webhooks would."""
    ids, n = [], first
    interval, start = 1.0 / rate, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate) + 1
        while len(ids) < due:
            async with database.tenant(tenant) as session:
                [result] = await ingest_batch(session, tenant, [validate(started_event(n, tag))])
            ids.append(result.event_id)
            n += 1
        await asyncio.sleep(interval / 2)
    return ids


async def bench_pipeline(database: Database, ids, rate: float, seconds: float, flood: int) -> dict:
    worker_cmd = [PY, "-m", "dramatiq", "backoffice.web.entry.worker", "--processes", "1", "--threads", "8"]
    scheduler_cmd = [PY, "-m", "backoffice.web.entry.cli", "scheduler"]
    with processes(worker_cmd, scheduler_cmd) as (worker, _scheduler):
        await asyncio.sleep(4)
        # Unloaded baseline for the quiet tenant.
        quiet_ids = await paced(database, ids["quiet"], 5, 6, 1, "quiet-base")
        quiet_base = await latencies(database, ids["quiet"], quiet_ids, 60)
        # Sustained load.
        load_ids = await paced(database, ids["load"], rate, seconds, 1, "load")
        sustained = await latencies(database, ids["load"], load_ids, 120)
        rss_after_load = rss_mb(worker.pid)
        # A flood from another tenant, with the quiet tenant going on at its own pace.
        flood_batches = [[validate(light_event(b * 1000 + i, "flood")) for i in range(1000)]
                         for b in range(flood // 1000)]
        for batch in flood_batches:
            async with database.tenant(ids["noisy"]) as session:
                await ingest_batch(session, ids["noisy"], batch)
        quiet_flood_ids = await paced(database, ids["quiet"], 5, 10, 10_000, "quiet-flood")
        quiet_flood = await latencies(database, ids["quiet"], quiet_flood_ids, 120)
        rss_peak = max(rss_after_load, rss_mb(worker.pid))
    base_p99 = percentile(quiet_base, 99)
    return {
        "sustained": {"rate_per_s": rate, "seconds": seconds, "events": len(load_ids), "notified": len(sustained),
                      "p50_s": round(percentile(sustained, 50), 3), "p99_s": round(percentile(sustained, 99), 3),
                      "target_p99_s": 1.0},
        "fairness": {"flood_events": flood, "quiet_unloaded_p99_s": round(base_p99, 3),
                     "quiet_during_flood_p99_s": round(percentile(quiet_flood, 99), 3),
                     "ratio": round(percentile(quiet_flood, 99) / base_p99, 2) if base_p99 else None,
                     "target_ratio": 2.0, "quiet_notified": f"{len(quiet_flood)}/{len(quiet_flood_ids)}"},
        "worker_rss_mb": {"peak": round(rss_peak, 1), "target": 300},
    }


# --- 5. the daily dunning sweep over many tenants ----------------------------------------------------

async def bench_sweep(database: Database, tenants: int, per_tenant: int) -> dict:
    from backoffice.tenants.dunning.sweep import sweep_overdue

    await owner_sql(
        "INSERT INTO tenants (id, slug, display_name, legal_name, cnpj, status, timezone, locale, branding, "
        "created_at, updated_at) SELECT gen_random_uuid(), 'sweep-' || g, 'Sweep ' || g, 'Sweep ' || g, "
        f"lpad((80000000000000 + g)::text, 14, '0'), 'active', 'America/Sao_Paulo', 'pt-BR', '{{}}', now(), now() "
        f"FROM generate_series(1, {tenants}) g",
        "INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, lifecycle, external_ids, created_at, "
        "updated_at) SELECT t.id, gen_random_uuid(), 'C' || g, 'cpf', lpad(g::text, 11, '0'), 'active', '{}', "
        f"now(), now() FROM tenants t CROSS JOIN generate_series(1, {per_tenant}) g WHERE t.slug LIKE 'sweep-%'",
        # One charge per customer, due dates spread over the last 90 and next 30 days: about a quarter are
        # overdue as of one day, as in a real book of monthly charges.
        "INSERT INTO charges (tenant_id, id, customer_id, amount_cents, currency, due_date, status, source, "
        "external_id, created_at, updated_at) SELECT c.tenant_id, gen_random_uuid(), c.id, 9900, 'BRL', "
        "current_date - 90 + (abs(hashtext(c.id::text)) % 120), 'pending', 'bench', c.id::text, now(), now() "
        "FROM customers c JOIN tenants t ON t.id = c.tenant_id WHERE t.slug LIKE 'sweep-%'",
        "ANALYZE customers", "ANALYZE charges", "ANALYZE tenants",
    )
    start = time.perf_counter()
    emitted = sum((await sweep_overdue(database)).values())
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = sum((await sweep_overdue(database)).values())
    second = time.perf_counter() - start
    return {"tenants": tenants, "customers": tenants * per_tenant, "overdue_emitted": emitted,
            "seconds": round(first, 2), "target_seconds": 60, "repeat_emitted": again,
            "repeat_seconds": round(second, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller volumes (a couple of minutes)")
    parser.add_argument("--only", choices=["intake", "batch", "pipeline", "sweep"], action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ["intake", "batch", "pipeline", "sweep"])
    quick = args.quick
    ids = await setup(customers_per_load_tenant=20_000 if quick else 60_000)
    database = Database(get_settings())
    report: dict = {"when": datetime.now(UTC).isoformat(), "quick": quick, "machine": {"cpus": os.cpu_count()}}
    rows = []
    if "intake" in parts:
        report["single_intake"] = r = await bench_single_intake(ids, seconds=5 if quick else 10)
        rows.append(("single intake vs bare insert", f"{r['ratio']}x", "≥ 0.8x",
                     f"{r['intake_rps']} vs {r['bare_rps']} req/s"))
    if "batch" in parts:
        report["batch_intake"] = r = await bench_batch(database, ids, batches=10 if quick else 40)
        rows.append(("batch intake", f"{r['events_per_s']}/s", "≥ 20,000/s", ""))
    if "pipeline" in parts:
        report.update(await bench_pipeline(database, ids, rate=500, seconds=10 if quick else 30,
                                           flood=10_000 if quick else 50_000))
        s, f = report["sustained"], report["fairness"]
        rows.append(("event → notification p99 @500/s", f"{s['p99_s']} s", "≤ 1 s",
                     f"p50 {s['p50_s']} s, {s['notified']}/{s['events']} notified"))
        rows.append(("quiet tenant p99 during flood", f"{f['ratio']}x", "≤ 2x",
                     f"{f['quiet_during_flood_p99_s']} s vs {f['quiet_unloaded_p99_s']} s unloaded"))
        rows.append(("worker RSS", f"{report['worker_rss_mb']['peak']} MB", "≤ 300 MB", ""))
    if "sweep" in parts:
        report["dunning_sweep"] = r = await bench_sweep(database, tenants=1000, per_tenant=100 if quick else 1000)
        rows.append(("dunning sweep", f"{r['seconds']} s", "≤ 60 s",
                     f"{r['customers']} customers, {r['overdue_emitted']} overdue"))
    await database.dispose()

    print(f"\n{'measure':<34} {'result':>12} {'target':>12}  detail")
    for name, value, target, detail in rows:
        print(f"{name:<34} {value:>12} {target:>12}  {detail}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"spine-{datetime.now(UTC):%Y%m%dT%H%M%S}{'-quick' if quick else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    random.seed(1)
    asyncio.run(main())


