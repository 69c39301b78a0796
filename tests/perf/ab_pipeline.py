"""Two versions of the worker side, measured in turns on one database, so both see the same machine.

On a shared machine the load of everything else moves a single run's figure by 2x; runs of two versions
interleaved (A B, B A, A B, ...) against one database and one receiver, started customers drained the way
``bench_pipeline.py`` drains them, compare what a change costs. Each version is a package root: a
directory holding ``backoffice/{platform,tenants,connectors,web,migrations}`` (symlinks to a checkout's
folders), put first on ``PYTHONPATH`` of its worker and scheduler processes:

    git worktree add /tmp/before <commit>; mkdir -p /tmp/before-pkg/backoffice
    for d in platform tenants connectors web migrations; do ln -s /tmp/before/$d /tmp/before-pkg/backoffice/$d; done
    .venv/bin/python -m tests.perf.ab_pipeline --before /tmp/before-pkg --after /tmp/after-pkg --events 1000 --rounds 4

The database is migrated by this checkout: the newer schema must still serve the older code (true of an
added column). Like the other benches it creates (and drops) ``bo_perf`` and flushes Redis database 13.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
from datetime import UTC, datetime

from tests.perf.bench_pipeline import (
    BOOK, PY, connect_company, drained, free_port, ingest_all, processes, setup, started_event,
)
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402


async def main(roots: dict[str, str], per_run: int, rounds: int) -> dict[str, list[float]]:
    ids = await setup(customers_per_load_tenant=BOOK)
    database = Database(get_settings())
    port = free_port()
    await connect_company(database, ids["load"], f"http://127.0.0.1:{port}")
    customers = random.sample(range(1, 40_001), 2 * rounds * per_run)
    results: dict[str, list[float]] = {name: [] for name in roots}
    names = list(roots)
    n = 0
    for turn in range(rounds):
        for name in names if turn % 2 == 0 else reversed(names):
            extra = {"BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true", "PYTHONPATH": roots[name]}
            commands = ([PY, "-m", "tests.perf.receiver", str(port)], [PY, "-m", "backoffice.web.entry.cli", "worker"],
                        [PY, "-m", "backoffice.web.entry.cli", "scheduler"])
            with processes(*commands, extra_env=extra) as (_receiver, worker, _scheduler):
                await asyncio.sleep(6)  # workers boot
                chosen = customers[n * per_run:(n + 1) * per_run]
                n += 1
                events = [started_event(c, f"ab{n}") for c in chosen]
                since = datetime.now(UTC)
                await ingest_all(database, ids["load"], events)
                outcome = await drained(database, ids["load"], since, len(events), 900, worker.pid, [])
            results[name].append(outcome["events_per_s"] or 0.0)
            print(f"turn {turn + 1} {name}: {outcome}", flush=True)
    await database.dispose()
    for name, rates in results.items():
        print(f"{name}: {rates} events/s, median {statistics.median(rates):.1f}, mean {statistics.mean(rates):.1f}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="package root of the version before")
    parser.add_argument("--after", required=True, help="package root of the version after")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main({"before": args.before, "after": args.after}, args.events, args.rounds))
