"""Benchmark of the billing run on this machine's PostgreSQL and Redis, against the local Asaas.

    .venv/bin/python -m tests.perf.bench_routines            # 10 tenants, one of them large (a few minutes)
    .venv/bin/python -m tests.perf.bench_routines --quick    # smaller volumes, same measurements

What it measures, with a real worker process (``dramatiq``) and scheduler process (the relay):
- a small tenant's billing run alone (the baseline);
- a large tenant's run alone: items per second through the shared workers;
- the large run and nine small ones started together: how much longer the small tenants wait (a ratio
  against the baseline measured in this same run), and the large run's rate under that load;
- a re-run of a period already billed: what planning costs when there is nothing to do.

The local Asaas (``tests/providers/asaas.py``) serves every tenant's account from this process
over loopback, so its own cost is part of every figure. Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.perf.bench_spine import DB, PY, REDIS, RESULTS, ROOT, admin, env, owner_sql, processes

SECRETS_KEY = Fernet.generate_key().decode()
# The fake Asaas listens on loopback: private targets allowed here and in the worker processes.
os.environ.update(env(BACKOFFICE_SECRETS_KEYS=SECRETS_KEY, BACKOFFICE_ALLOW_PRIVATE_TARGETS="true"))

from backoffice.platform.audit.service import Actor  # noqa: E402
from backoffice.platform.db.migrate import upgrade  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.routines import engine  # noqa: E402
from backoffice.tenants.routines.models import ItemStatus, RoutineRun, RunItem, RunStatus  # noqa: E402
from tests.providers.asaas import FakeAsaas, serving  # noqa: E402

ACTOR = Actor(type="cli", label="cli:bench")


async def setup(fake: FakeAsaas, large: int, small: int, small_tenants: int) -> dict[str, uuid.UUID]:
    import redis

    from backoffice.connectors.service import create_instance

    redis.Redis.from_url(REDIS).flushdb()
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{DB}"')
    await asyncio.to_thread(upgrade, get_settings())
    sizes = {"large": large, **{f"small{n}": small for n in range(small_tenants)}}
    ids = {name: uuid.uuid4() for name in sizes}
    statements = []
    for n, (name, tenant_id) in enumerate(ids.items()):
        manager = uuid.uuid5(tenant_id, "manager")
        statements += [
            f"INSERT INTO tenants (id, slug, display_name, legal_name, cnpj, status, timezone, locale, branding, "
            f"created_at, updated_at) VALUES ('{tenant_id}', 'perf-{name}', 'Perf {name}', 'Perf {name} Ltda', "
            f"'{90000000000000 + n}', 'active', 'America/Sao_Paulo', 'pt-BR', '{{}}', now(), now())",
            f"INSERT INTO tenant_users (tenant_id, id, email, name, role, active, created_at) VALUES "
            f"('{tenant_id}', '{manager}', 'am@{name}.example', 'AM {name}', 'tenant_admin', true, now())",
            # Customers new to Asaas: their first run also looks them up and creates them there.
            f"INSERT INTO customers (tenant_id, id, name, tax_id_kind, tax_id, email, account_manager_id, lifecycle, "
            f"external_ids, created_at, updated_at) SELECT '{tenant_id}', gen_random_uuid(), 'Cliente ' || g, 'cpf', "
            f"lpad(g::text, 11, '0'), 'c' || g || '@example.com', '{manager}', 'active', '{{}}', now(), now() "
            f"FROM generate_series(1, {sizes[name]}) g",
            f"INSERT INTO contracts (tenant_id, id, customer_id, plan_code, plan_name, price_cents, currency, "
            f"billing_day, status, created_at, updated_at) SELECT tenant_id, gen_random_uuid(), id, 'pro', 'Pro', "
            f"19990, 'BRL', 10, 'active', now(), now() FROM customers WHERE tenant_id = '{tenant_id}'",
        ]
    await owner_sql(*statements)
    database = Database(get_settings())
    for name, tenant_id in ids.items():
        fake.account(f"key-{name}")
        async with database.provider(tenant_id) as session:
            await create_instance(session, kind="asaas", name="Asaas", acting=ACTOR, host_override="127.0.0.1", config={
                "base_url": fake.url, "api_key": f"key-{name}", "webhook_token": f"hook-{name}"})
    await database.dispose()
    return ids


async def start(database: Database, tenant_id: uuid.UUID, period: str) -> uuid.UUID:
    async with database.provider(tenant_id) as session:
        return (await engine.start_run(session, "billing", period=period, actor=ACTOR)).id


async def wait_finished(database: Database, runs: dict[uuid.UUID, uuid.UUID], timeout: float) -> dict[uuid.UUID, float]:
    """Seconds from now until each run (tenant -> run id) finishes."""
    began, finished = time.monotonic(), {}
    while len(finished) < len(runs) and time.monotonic() - began < timeout:
        for tenant_id, run_id in runs.items():
            if tenant_id in finished:
                continue
            async with database.tenant(tenant_id) as session:
                run = await session.get(RoutineRun, (tenant_id, run_id))
                if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                    finished[tenant_id] = time.monotonic() - began
                    if run.status != RunStatus.SUCCEEDED:
                        failed = (await session.execute(select(RunItem.error).where(
                            RunItem.run_id == run_id, RunItem.status == ItemStatus.FAILED).limit(1))).scalar()
                        print(f"run {run_id}: {run.status.value}, {run.items_failed} failed: {run.error or failed}",
                              file=sys.stderr)
        await asyncio.sleep(0.1)
    if len(finished) < len(runs):
        raise TimeoutError(f"{len(runs) - len(finished)} run(s) did not finish within {timeout:.0f} s")
    return finished


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    large, small, small_tenants = (500, 20, 9) if args.quick else (2000, 50, 9)
    fake = FakeAsaas()
    fake.page_cap = 100
    report: dict = {"when": datetime.now(UTC).isoformat(), "quick": args.quick, "machine": {"cpus": os.cpu_count()},
                    "large_contracts": large, "small_contracts": small, "small_tenants": small_tenants}
    with serving(fake):
        ids = await setup(fake, large, small, small_tenants)
        smalls = [tenant_id for name, tenant_id in ids.items() if name != "large"]
        database = Database(get_settings())
        worker = [PY, "-m", "dramatiq", "backoffice.web.entry.worker", "--processes", "1", "--threads", "8"]
        scheduler = [PY, "-m", "backoffice.web.entry.cli", "scheduler"]
        extra = {"BACKOFFICE_SECRETS_KEYS": SECRETS_KEY, "BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true"}
        with processes(worker, scheduler, extra_env=extra):
            await asyncio.sleep(4)
            # 1. A small tenant alone (the baseline), twice: the first warms the worker up.
            await wait_finished(database, {smalls[0]: await start(database, smalls[0], "2026-01")}, 300)
            alone = (await wait_finished(database, {smalls[1]: await start(database, smalls[1], "2026-01")}, 300))[smalls[1]]
            # 2. The large tenant alone.
            large_alone = (await wait_finished(database, {ids["large"]: await start(database, ids["large"], "2026-01")},
                                               1800))[ids["large"]]
            # 3. The large run and the small ones together (a period none of them has billed).
            runs = {ids["large"]: await start(database, ids["large"], "2026-02")}
            for tenant_id in smalls:
                runs[tenant_id] = await start(database, tenant_id, "2026-02")
            together = await wait_finished(database, runs, 1800)
            # 4. A re-run of a period already billed: nothing to create.
            rerun = (await wait_finished(database, {ids["large"]: await start(database, ids["large"], "2026-02")},
                                         300))[ids["large"]]
        await database.dispose()
    small_during = sorted(together[t] for t in smalls)
    worst_small = small_during[-1]
    # A fair share: while every tenant has work, each gets 1/n of the workers' rate, so a small run needs
    # (its items x the tenants with work) / (the rate of everything together).
    rate_together = (large + small * small_tenants) / max(together.values())
    fair_share = small * (1 + small_tenants) / rate_together
    report.update({
        "small_alone_s": round(alone, 2),
        "large_alone": {"seconds": round(large_alone, 2), "items_per_s": round(large / large_alone, 1)},
        "together": {"large_seconds": round(together[ids["large"]], 2),
                     "large_items_per_s": round(large / together[ids["large"]], 1),
                     "small_median_s": round(small_during[len(small_during) // 2], 2),
                     "small_worst_s": round(worst_small, 2),
                     "small_worst_vs_alone": round(worst_small / alone, 2),
                     "all_items_per_s": round(rate_together, 1), "small_fair_share_s": round(fair_share, 2),
                     "small_worst_vs_fair_share": round(worst_small / fair_share, 2),
                     "small_worst_vs_large": round(worst_small / together[ids["large"]], 3)},
        "rerun_nothing_to_do_s": round(rerun, 2),
        "asaas_requests": len(fake.log),
    })
    t = report["together"]
    rows = [
        ("small run alone", f"{report['small_alone_s']} s", f"{small} contracts"),
        ("large run alone", f"{report['large_alone']['items_per_s']} items/s", f"{large} contracts in {report['large_alone']['seconds']} s"),
        ("large run with 9 small ones", f"{t['large_items_per_s']} items/s", f"{t['large_seconds']} s"),
        ("slowest small run, during", f"{t['small_worst_vs_fair_share']}x fair share",
         f"{t['small_worst_s']} s: {t['small_worst_vs_alone']}x alone, {t['small_worst_vs_large']} of the large run's time"),
        ("re-run, nothing to bill", f"{report['rerun_nothing_to_do_s']} s", f"{large} contracts checked"),
    ]
    print(f"\n{'measure':<30} {'result':>18}  detail")
    for name, value, detail in rows:
        print(f"{name:<30} {value:>18}  {detail}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"routines-{datetime.now(UTC):%Y%m%dT%H%M%S}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
