"""The late-payment backlog: the first pass of the daily overdue sweep over a whole book, then every event it
created processed with every effect and delivery. Prints a table, writes JSON.

    .venv/bin/python -m tests.perf.bench_sweep_backlog                       # 1,000 tenants x 1,000 customers
    .venv/bin/python -m tests.perf.bench_sweep_backlog --tenants 100         # a tenth of it (~10 minutes)

Issue 11's target: the events created by the first pass of the 1M-customer sweep are all processed (every
effect recorded) within 30 minutes. The book is bench_spine's (one pending charge per customer, due dates
spread over the last 90 and the next 30 days, so about three quarters fall overdue at once: the worst day,
a backlog of three months), with what a company that uses the platform has: an account manager per company
(notified in the portal inbox), started customers with an e-mail address (told of the late payment and the
grace period by e-mail through the company's SMTP server), and a webhook endpoint (the company's systems).
Each ``payment.overdue`` the sweep emits opens a late-payment case and records the charge's status, the
grace deadline's and reminders' timers, the customer's stage, the inbox notification, the timeline entry,
the customer's e-mail and the signed webhook; the e-mail and the webhook go over the wire to
``tests/perf/receiver.py`` (HTTP and SMTP, its own process).

The rate is events / (last effect delivered - sweep's end); the floor is the sweep itself (the same rows
written set-based, in one statement per table) and, for scale, bench_pipeline's per-event floor is not
repeated here. Uses the database ``bo_perf`` and Redis database 13 like the other spine benchmarks: run one
at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from tests.perf.bench_spine import (
    DB, PY, REDIS, RESULTS, ROOT, admin, free_port, owner_sql, processes, rss_mb,
)
from backoffice.platform.audit.service import Actor  # noqa: E402
from backoffice.platform.db.migrate import upgrade  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402


async def seed(tenants: int, per_tenant: int, receiver: str, smtp_port: int) -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DB}"')
    await asyncio.to_thread(upgrade, get_settings())
    await owner_sql(
        "INSERT INTO tenants (id, slug, display_name, legal_name, cnpj, status, timezone, locale, branding, "
        "created_at, updated_at) SELECT gen_random_uuid(), 'sweep-' || g, 'Sweep ' || g, 'Sweep ' || g || ' Ltda', "
        "lpad((80000000000000 + g)::text, 14, '0'), 'active', 'America/Sao_Paulo', 'pt-BR', '{}', now(), now() "
        f"FROM generate_series(1, {tenants}) g",
        "INSERT INTO tenant_users (tenant_id, id, email, name, role, active, created_at) SELECT t.id, "
        "gen_random_uuid(), 'gerente@' || t.slug || '.example', 'Gerente ' || t.slug, 'tenant_admin', true, now() "
        "FROM tenants t",
        "INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, email, account_manager_id, lifecycle, "
        "external_ids, created_at, updated_at) SELECT t.id, gen_random_uuid(), 'Cliente ' || g, 'cpf', "
        "lpad(g::text, 11, '0'), 'c' || g || '@clientes.example', u.id, 'active', '{}', now(), now() "
        f"FROM tenants t JOIN tenant_users u ON u.tenant_id = t.id CROSS JOIN generate_series(1, {per_tenant}) g",
        "INSERT INTO charges (tenant_id, id, customer_id, amount_cents, currency, due_date, status, source, "
        "external_id, created_at, updated_at) SELECT c.tenant_id, gen_random_uuid(), c.id, 9900, 'BRL', "
        "current_date - 90 + (abs(hashtext(c.id::text)) % 120), 'pending', 'bench', c.id::text, now(), now() "
        "FROM customers c",
        "ANALYZE tenants", "ANALYZE tenant_users", "ANALYZE customers", "ANALYZE charges",
    )
    from backoffice.connectors.service import create_instance
    from backoffice.tenants.webhooks.service import create_endpoint

    database = Database(get_settings())
    settings = get_settings().model_copy(update={"allow_private_targets": True})  # the receiver is on loopback
    actor = Actor.system("bench")
    async with database.system() as session:
        rows = (await session.execute(text("SELECT id, slug FROM tenants ORDER BY slug"))).all()
    for tenant_id, slug in rows:
        async with database.provider(tenant_id) as session:
            await create_endpoint(session, url=f"{receiver}/webhooks/{slug}", event_types=None, acting=actor,
                                  settings=settings)
            await create_instance(session, kind="smtp", name="E-mail", acting=actor, settings=settings,
                                  config={"host": "127.0.0.1", "port": smtp_port, "security": "none",
                                          "sender_address": f"cobranca@{slug}.example",
                                          "sender_name": f"Cobrança {slug}"})
    await database.dispose()


COUNTS = text("""
SELECT (SELECT count(*) FROM events WHERE status NOT IN ('processed', 'failed', 'unmatched')) AS open_events,
       (SELECT count(*) FROM outbox WHERE completed_at IS NULL) AS open_outbox
""")

TOTALS = text("""
SELECT (SELECT count(*) FROM events WHERE source = 'sweep') AS events,
       (SELECT count(*) FROM events WHERE source = 'sweep' AND status = 'processed') AS processed,
       (SELECT count(*) FROM events WHERE source = 'sweep' AND status <> 'processed') AS not_processed,
       (SELECT count(*) FROM dunning_cases) AS cases,
       (SELECT count(*) FROM notifications) AS notifications,
       (SELECT count(*) FROM timeline_entries) AS timeline,
       (SELECT count(*) FROM outbound_messages WHERE channel = 'email' AND status = 'sent') AS emails_sent,
       (SELECT count(*) FROM outbound_messages WHERE channel = 'email' AND status <> 'sent') AS emails_not_sent,
       (SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded') AS webhooks,
       (SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded') AS webhooks_not_delivered,
       (SELECT count(*) FROM timers) AS timers,
       (SELECT min(received_at) FROM events WHERE source = 'sweep') AS first_stored,
       (SELECT min(processed_at) FROM events WHERE source = 'sweep') AS first_processed,
       (SELECT max(processed_at) FROM events WHERE source = 'sweep') AS last_processed,
       (SELECT max(sent_at) FROM outbound_messages WHERE channel = 'email') AS last_email,
       (SELECT max(delivered_at) FROM webhook_deliveries) AS last_webhook
""")


args_profile = None


def profile_workers(seconds: int):
    """py-spy (if installed) records each worker process for ``seconds`` into tests/perf/results/."""
    import shutil
    import subprocess

    def start(pid: int) -> None:
        spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            subprocess.Popen([spy, "record", "--gil", "-p", child, "-d", str(seconds), "-f", "raw", "-o",
                              str(RESULTS / f"sweep-worker-{child}.txt")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    return start


async def bench(tenants: int, per_tenant: int, workers: int | None, timeout: float) -> dict:
    port, smtp_port = free_port(), free_port()
    receiver = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    await seed(tenants, per_tenant, receiver, smtp_port)
    print(f"seeded {tenants} tenants x {per_tenant} customers in {time.perf_counter() - started:.0f} s", flush=True)
    from backoffice.tenants.dunning.sweep import sweep_overdue

    database = Database(get_settings())
    report: dict = {"when": datetime.now(UTC).isoformat(), "tenants": tenants, "customers": tenants * per_tenant,
                    "machine": {"cpus": os.cpu_count()}}
    worker_cmd = [PY, "-m", "backoffice.web.entry.cli", "worker"] + (["--processes", str(workers)] if workers else [])
    scheduler_cmd = [PY, "-m", "backoffice.web.entry.cli", "scheduler"]
    receiver_cmd = [PY, "-m", "tests.perf.receiver", str(port), str(smtp_port)]
    extra = {"BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true"}
    rss: list[float] = []
    with processes(receiver_cmd, worker_cmd, scheduler_cmd, extra_env=extra) as (_receiver, worker, _scheduler):
        await asyncio.sleep(6)  # workers boot: the backlog starts once they can take it
        start = time.perf_counter()
        # The scheduler's daily overdue routine may have swept first (it runs when a tenant's day has not
        # been swept yet): what counts is every event of source "sweep", from the first one stored.
        emitted = sum((await sweep_overdue(database)).values())
        report["sweep_seconds"] = round(time.perf_counter() - start, 2)
        print(f"sweep: {emitted} more charges overdue in {report['sweep_seconds']} s", flush=True)
        if args_profile:
            args_profile(worker.pid)
        deadline = time.monotonic() + timeout
        last_print = 0.0
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            rss.append(rss_mb(worker.pid))
            async with database.system() as session:
                counts = (await session.execute(COUNTS)).one()
            if time.monotonic() - last_print > 30:
                last_print = time.monotonic()
                print(f"  {time.perf_counter() - start:.0f} s: {counts.open_events} events and {counts.open_outbox} "
                      f"outbox rows open", flush=True)
            if not counts.open_events and not counts.open_outbox:
                break
        report["worker_rss_mb_peak"] = round(max(rss + [rss_mb(worker.pid)]), 1)
    async with database.system() as session:
        totals = (await session.execute(TOTALS)).one()._asdict()
    await database.dispose()
    emitted = totals["events"]
    end = max(t for t in (totals["last_processed"], totals["last_email"], totals["last_webhook"]) if t)
    seconds = (end - totals["first_stored"]).total_seconds()
    # Each overdue event: its case, its webhook and the customer's e-mail (the account manager's
    # notification is in the portal inbox: the policy's default channel).
    complete = (totals["processed"] == emitted == totals["cases"] == totals["webhooks"] == totals["notifications"]
                and totals["emails_sent"] == emitted and not totals["not_processed"]
                and not totals["emails_not_sent"] and not totals["webhooks_not_delivered"])
    report.update({
        "events": emitted, "complete": complete, "seconds_to_last_effect": round(seconds, 1),
        "events_per_s": round(emitted / seconds, 1) if seconds > 0 else None,
        "totals": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in totals.items()},
    })
    per_s = report["events_per_s"] or 0
    report["projected_minutes_for_1M_customers"] = round(750_000 / per_s / 60, 1) if per_s else None
    print(json.dumps(report, indent=2, default=str))
    print(f"\n{emitted} overdue events from the sweep of {tenants * per_tenant} customers ({tenants} tenants): "
          f"every effect delivered {seconds:.0f} s after the first was stored = {per_s}/s "
          f"(complete: {complete}); worker RSS peak "
          f"{report['worker_rss_mb_peak']} MB. At this rate ~750,000 events take "
          f"{report['projected_minutes_for_1M_customers']} min (target <= 30).")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sweep-backlog-{datetime.now(UTC):%Y%m%dT%H%M%S}-{tenants}x{per_tenant}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"written {out.relative_to(ROOT)}")
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--per-tenant", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: the CLI's)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--profile", type=int, default=0, help="py-spy each worker process for N seconds")
    args = parser.parse_args()
    if args.profile:
        args_profile = profile_workers(args.profile)
    asyncio.run(bench(args.tenants, args.per_tenant, args.processes, args.timeout))
