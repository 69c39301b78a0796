"""The worker side of the spine against its floor, measured in the same run. Prints a table, writes JSON.

    .venv/bin/python -m tests.perf.bench_pipeline            # full volumes (~12 minutes)
    .venv/bin/python -m tests.perf.bench_pipeline --quick    # smaller volumes (~5 minutes)

- floor: what the database does at best on this machine for the same unit of work: asyncpg, 8
  connections, per event BEGIN + one CTE inserting 5 rows (one per table) + COMMIT;
- pipeline: "customer started" events (random customers of a 60,000-customer book) processed with every
  effect (notification, task, timeline, lifecycle, charge, payment, contract) and every delivery (a signed
  webhook to the company's endpoint and a provisioning command to its platform, both over HTTP to a local
  receiver), by `backoffice worker` with its default processes and the `backoffice scheduler` relay:
  events per second from the first event processed to the last delivery made, 3 repetitions;
- latency: event -> notification at half the measured rate, sustained;
- fairness: a quiet tenant's p99 while another tenant floods the spine, against its unloaded p99;
- worker resident memory.

Like bench_spine.py it creates (and drops) the database ``bo_perf`` and flushes Redis database 13.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import text

from tests.perf.bench_spine import (
    DB, PY, RESULTS, ROOT, admin, free_port, latencies, light_event, paced, percentile, processes, rss_mb, setup,
    started_event,
)
from backoffice.platform.audit.service import Actor  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.events.intake import ingest_batch, validate  # noqa: E402

APP_DSN = f"postgresql://backoffice_app@127.0.0.1:5432/{DB}"
OWNER_DSN = f"postgresql://postgres@127.0.0.1:5432/{DB}"
BOOK = 60_000
FLOOR_CTE = """
WITH a AS (INSERT INTO floor_a (id, tenant_id, body) VALUES ($1, $2, $3::jsonb) RETURNING id),
     b AS (INSERT INTO floor_b (id, tenant_id, body) SELECT gen_random_uuid(), $2, $3::jsonb FROM a RETURNING id),
     c AS (INSERT INTO floor_c (id, tenant_id, body) SELECT gen_random_uuid(), $2, $3::jsonb FROM b RETURNING id),
     d AS (INSERT INTO floor_d (id, tenant_id, body) SELECT gen_random_uuid(), $2, $3::jsonb FROM c RETURNING id)
INSERT INTO floor_e (id, tenant_id, body) SELECT gen_random_uuid(), $2, $3::jsonb FROM d
"""


# --- the floor --------------------------------------------------------------------------------------

async def floor(seconds: float, connections: int = 8) -> float:
    owner = await asyncpg.connect(OWNER_DSN)
    for name in "abcde":
        await owner.execute(f"DROP TABLE IF EXISTS floor_{name}; CREATE TABLE floor_{name} "
                            f"(id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body jsonb NOT NULL); "
                            f"GRANT SELECT, INSERT ON floor_{name} TO backoffice_app")
    await owner.close()
    pool = await asyncpg.create_pool(APP_DSN, min_size=connections, max_size=connections)
    body = json.dumps(started_event(1, "floor"))
    tenant = uuid.uuid4()
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        async with pool.acquire() as connection:
            while time.perf_counter() < deadline:
                async with connection.transaction():
                    await connection.execute(FLOOR_CTE, uuid.uuid4(), tenant, body)
                done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    rate = done / (time.perf_counter() - start)
    await pool.close()
    return rate


# --- the company's endpoint and platform ---------------------------------------------------------------

async def connect_company(database: Database, tenant_id: uuid.UUID, receiver: str) -> None:
    from backoffice.connectors.service import create_instance
    from backoffice.tenants.webhooks.service import create_endpoint

    settings = get_settings().model_copy(update={"allow_private_targets": True})  # the receiver is on loopback
    actor = Actor.system("bench")
    async with database.provider(tenant_id) as session:
        await create_endpoint(session, url=f"{receiver}/webhooks", event_types=None, acting=actor, settings=settings)
        await create_instance(session, kind="tenant_platform", name="Plataforma", acting=actor, settings=settings,
                              config={"url": f"{receiver}/platform", "secret": "whsec_" + "cGVyZi1zZWNyZXQtMTIzNDU2Nzg5MA=="})


async def ingest_all(database: Database, tenant_id: uuid.UUID, events: list[dict]) -> list[uuid.UUID]:
    ids = []
    for start in range(0, len(events), 1000):
        async with database.tenant(tenant_id) as session:
            results = await ingest_batch(session, tenant_id, [validate(e) for e in events[start:start + 1000]])
        ids.extend(r.event_id for r in results)
    return ids


async def drained(database: Database, tenant_id: uuid.UUID, since: datetime, n: int, timeout: float,
                  worker_pid: int, rss: list[float]) -> dict:
    """Wait until the tenant's outbox is empty and its n events since ``since`` are processed; then the
    span from the first event processed to the last delivery made. The watch itself must be cheap (an
    index probe every half second): it shares the machine with what it measures."""
    outstanding = text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND completed_at IS NULL")
    processed = text("SELECT count(*) FROM events WHERE tenant_id = :t AND received_at >= :since "
                     "AND status = 'processed'")
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rss.append(rss_mb(worker_pid))
        async with database.system() as session:
            if (await session.execute(outstanding, {"t": tenant_id})).scalar_one():
                continue
            done = (await session.execute(processed, {"t": tenant_id, "since": since})).scalar_one()
        if done >= n:
            break
    span_sql = text("""
        SELECT (SELECT min(processed_at) FROM events WHERE tenant_id = :t AND received_at >= :since),
               (SELECT max(processed_at) FROM events WHERE tenant_id = :t AND received_at >= :since),
               (SELECT count(*) FROM outbound_messages WHERE tenant_id = :t AND created_at >= :since),
               (SELECT count(*) FROM outbound_messages WHERE tenant_id = :t AND created_at >= :since
                  AND status = 'sent'),
               (SELECT max(sent_at) FROM outbound_messages WHERE tenant_id = :t AND created_at >= :since),
               (SELECT count(*) FROM webhook_deliveries WHERE tenant_id = :t AND created_at >= :since
                  AND status = 'succeeded'),
               (SELECT max(delivered_at) FROM webhook_deliveries WHERE tenant_id = :t AND created_at >= :since)
    """)
    async with database.system() as session:
        first, last_event, messages, sent, last_sent, hooks, last_hook = (
            await session.execute(span_sql, {"t": tenant_id, "since": since})).one()
    complete = done >= n and sent == messages == 2 * n and hooks == n
    end = max((t for t in (last_event, last_sent, last_hook) if t), default=None)
    span = (end - first).total_seconds() if first and end else float("nan")
    return {"events": n, "processed": done, "messages_sent": f"{sent}/{messages}", "webhooks_delivered": hooks,
            "complete": complete, "seconds": round(span, 2),
            "events_per_s": round(n / span, 1) if complete and span > 0 else None}


async def settled(database: Database, tenant_id: uuid.UUID, timeout: float) -> None:
    """Wait (cheaply) until the tenant's outbox is empty, so reading the latencies does not compete with the
    work being measured."""
    query = text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND completed_at IS NULL")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with database.system() as session:
            if not (await session.execute(query, {"t": tenant_id})).scalar_one():
                return
        await asyncio.sleep(0.5)


async def bench(quick: bool) -> dict:
    ids = await setup(customers_per_load_tenant=BOOK)
    database = Database(get_settings())
    report: dict = {"when": datetime.now(UTC).isoformat(), "quick": quick, "machine": {"cpus": os.cpu_count()}}
    report["floor_events_per_s"] = floors = [round(await floor(5 if quick else 10)) for _ in range(3)]
    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    await connect_company(database, ids["load"], receiver)
    worker_cmd = [PY, "-m", "backoffice.web.entry.cli", "worker"]  # the default processes for this machine
    scheduler_cmd = [PY, "-m", "backoffice.web.entry.cli", "scheduler"]
    receiver_cmd = [PY, "-m", "tests.perf.receiver", str(port)]
    extra = {"BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true"}
    per_run = 2_000 if quick else 6_000
    # Random customers for the drains; the latency run takes the book's last third in order (each event
    # must start a customer still onboarding to be notified).
    customers = random.sample(range(1, 40_001), 3 * per_run)
    rss: list[float] = []
    with processes(receiver_cmd, worker_cmd, scheduler_cmd, extra_env=extra) as (_receiver, worker, _scheduler):
        await asyncio.sleep(6)  # workers boot
        runs = []
        for rep in range(3):
            chosen = customers[rep * per_run:(rep + 1) * per_run]
            events = [started_event(n, f"drain{rep}") for n in chosen]
            since = datetime.now(UTC)
            await ingest_all(database, ids["load"], events)
            runs.append(await drained(database, ids["load"], since, len(events), 600, worker.pid, rss))
            print(f"pipeline run {rep + 1}: {runs[-1]}", flush=True)
        report["pipeline"] = runs
        best = statistics.median(r["events_per_s"] or 0 for r in runs)
        # Latency at half the measured maximum, sustained.
        rate = max(1.0, round(best / 2))
        seconds = 20 if quick else 60
        load_ids = await paced(database, ids["load"], rate, seconds, 40_001, "lat")
        await settled(database, ids["load"], 300)
        sustained = await latencies(database, ids["load"], load_ids, 120)
        report["latency"] = {"rate_per_s": rate, "seconds": seconds, "events": len(load_ids),
                             "notified": len(sustained), "p50_s": round(percentile(sustained, 50), 3),
                             "p99_s": round(percentile(sustained, 99), 3), "target_p99_s": 1.0}
        print(f"latency: {report['latency']}", flush=True)
        # Fairness: the quiet tenant unloaded, then while another tenant floods.
        quiet_ids = await paced(database, ids["quiet"], 5, 6, 1, "quiet-base")
        await settled(database, ids["quiet"], 60)
        quiet_base = await latencies(database, ids["quiet"], quiet_ids, 60)
        flood = 10_000 if quick else 50_000
        for b in range(flood // 1000):
            async with database.tenant(ids["noisy"]) as session:
                await ingest_batch(session, ids["noisy"], [validate(light_event(b * 1000 + i, "flood"))
                                                           for i in range(1000)])
        quiet_flood_ids = await paced(database, ids["quiet"], 5, 10, 10_000, "quiet-flood")
        await settled(database, ids["quiet"], 300)
        quiet_flood = await latencies(database, ids["quiet"], quiet_flood_ids, 120)
        base_p99 = percentile(quiet_base, 99)
        report["fairness"] = {"flood_events": flood, "quiet_unloaded_p99_s": round(base_p99, 3),
                              "quiet_during_flood_p99_s": round(percentile(quiet_flood, 99), 3),
                              "ratio": round(percentile(quiet_flood, 99) / base_p99, 2) if base_p99 else None,
                              "quiet_notified": f"{len(quiet_flood)}/{len(quiet_flood_ids)}", "target_ratio": 2.0}
        print(f"fairness: {report['fairness']}", flush=True)
        report["worker_rss_mb_peak"] = round(max(rss + [rss_mb(worker.pid)]), 1)
    floor_median = statistics.median(floors)
    report["ratio_to_floor"] = round(best / floor_median, 3)
    await database.dispose()

    print(f"\nfloor (asyncpg, 8 connections, BEGIN + 5-row CTE + COMMIT): {floors} events/s")
    print(f"pipeline (started customers, every effect and delivery): "
          f"{[r['events_per_s'] for r in runs]} events/s -> {report['ratio_to_floor']}x the floor (target 0.15x)")
    lat, fair = report["latency"], report["fairness"]
    print(f"latency at {lat['rate_per_s']}/s for {lat['seconds']} s: p50 {lat['p50_s']} s, p99 {lat['p99_s']} s "
          f"({lat['notified']}/{lat['events']} notified; target p99 <= 1 s)")
    print(f"fairness: quiet p99 {fair['quiet_during_flood_p99_s']} s during a {fair['flood_events']}-event flood vs "
          f"{fair['quiet_unloaded_p99_s']} s unloaded = {fair['ratio']}x (target <= 2x)")
    print(f"worker RSS peak: {report['worker_rss_mb_peak']} MB (target <= 300 MB)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"pipeline-{datetime.now(UTC):%Y%m%dT%H%M%S}{'-quick' if quick else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"written {out.relative_to(ROOT)}")
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    random.seed(1)
    asyncio.run(bench(parser.parse_args().quick))
