"""Where an event's latency goes, stage by stage: the figure bench_pipeline.py gives as one number, taken apart.

    .venv/bin/python -m tests.perf.bench_latency_stages --rate 50 --drains 3     # as bench_pipeline's latency run
    .venv/bin/python -m tests.perf.bench_latency_stages --flood 10000            # a quiet tenant during a flood

Same set-up as bench_pipeline.py (a 60,000-customer book, the company's endpoint and platform answered by
tests/perf/receiver.py, `backoffice worker` and `backoffice scheduler`). ``--drains N`` first runs N drains of
2,000 started customers, as bench_pipeline does before its latency run (what the workers did before matters:
the cause of a 2.6–4.5 s p99 only showed after them). Then events are paced at ``--rate`` for ``--seconds``
(or, with ``--flood``, the quiet tenant at 5/s for 6 s unloaded, then another tenant floods and the quiet tenant goes
on at 5/s for 10 s: the fairness ratio), and each event's
way is read from the rows it left:

- received → handed over: the event's outbox row claimed by the relay (``dispatched_at``);
- handed over → notified: the message waits in Redis, a worker takes it and the step runs;
- notified → completed: the rest of the step's transaction (the outbox row's ``completed_at``);
- the deliveries' rows: created → handed over → completed.

Prints percentiles per stage and the slowest event of each second (a queue that grows through the run shows
as a rising line). Like bench_spine.py it creates (and drops) the database ``bo_perf``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import text

from tests.perf.bench_pipeline import BOOK, connect_company, drained, ingest_all, settled
from tests.perf.bench_spine import (
    DB, PY, admin, free_port, light_event, paced, percentile, processes, setup, started_event,
)
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.events.intake import PROCESS_JOB, ingest_batch, validate  # noqa: E402

STAGES = text("""
    SELECT e.received_at, o.dispatched_at, o.completed_at,
           (SELECT min(n.created_at) FROM notifications n WHERE n.tenant_id = e.tenant_id AND n.event_id = e.id)
    FROM events e JOIN outbox o ON o.tenant_id = e.tenant_id AND o.job = :job AND o.payload->>'event_id' = e.id::text
    WHERE e.tenant_id = :t AND e.id = ANY(:ids) ORDER BY e.received_at
""")
DELIVERIES = text("""
    SELECT job, created_at, dispatched_at, completed_at FROM outbox
    WHERE tenant_id = :t AND job <> :job AND created_at >= :since AND completed_at IS NOT NULL
""")


def spread(values: list[float]) -> str:
    values = sorted(values)
    return (f"p50 {percentile(values, 50):.3f}  p90 {percentile(values, 90):.3f}  "
            f"p99 {percentile(values, 99):.3f}  max {values[-1]:.3f} s")


async def bench(rate: float, seconds: float, drains: int, flood: int) -> None:
    ids = await setup(customers_per_load_tenant=BOOK)
    database = Database(get_settings())
    port = free_port()
    await connect_company(database, ids["load"], f"http://127.0.0.1:{port}")
    commands = ([PY, "-m", "tests.perf.receiver", str(port)], [PY, "-m", "backoffice.web.entry.cli", "worker"],
                [PY, "-m", "backoffice.web.entry.cli", "scheduler"])
    with processes(*commands, extra_env={"BACKOFFICE_ALLOW_PRIVATE_TARGETS": "true"}) as (_receiver, worker, _):
        await asyncio.sleep(6)  # workers boot
        customers = random.sample(range(1, 40_001), drains * 2_000)
        for rep in range(drains):
            since = datetime.now(UTC)
            events = [started_event(n, f"drain{rep}") for n in customers[rep * 2_000:(rep + 1) * 2_000]]
            await ingest_all(database, ids["load"], events)
            print(f"drain {rep + 1}: {await drained(database, ids['load'], since, len(events), 600, worker.pid, [])}",
                  flush=True)
        since = datetime.now(UTC)
        if flood:
            tenant = ids["quiet"]
            # The same tenant unloaded first, as bench_pipeline's fairness run does: the ratio's denominator.
            base_ids = await paced(database, tenant, 5, 6, 1, "quiet-base")
            await settled(database, tenant, 60)
            async with database.system() as session:
                base = (await session.execute(STAGES, {"t": tenant, "ids": base_ids, "job": PROCESS_JOB})).all()
            unloaded = sorted((r[3] - r[0]).total_seconds() for r in base if r[3])
            print(f"quiet tenant unloaded, received → notified ({len(unloaded)}/{len(base_ids)}): {spread(unloaded)}",
                  flush=True)
            since = datetime.now(UTC)
            for start in range(0, flood, 1000):
                async with database.tenant(ids["noisy"]) as session:
                    await ingest_batch(session, ids["noisy"], [validate(light_event(start + i, "flood"))
                                                               for i in range(min(1000, flood - start))])
            event_ids = await paced(database, tenant, 5, 10, 10_000, "quiet-flood")
        else:
            tenant = ids["load"]
            event_ids = await paced(database, tenant, rate, seconds, 40_001, "lat")
        await settled(database, tenant, 300)
        await asyncio.sleep(1)
        async with database.system() as session:
            rows = (await session.execute(STAGES, {"t": tenant, "ids": event_ids, "job": PROCESS_JOB})).all()
            deliveries = (await session.execute(DELIVERIES, {"t": tenant, "job": PROCESS_JOB, "since": since})).all()
    await database.dispose()
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')

    rows = [row for row in rows if row[1] and row[2] and row[3]]
    print(f"\n{len(rows)}/{len(event_ids)} events " + (f"of the quiet tenant during a {flood}-event flood"
                                                       if flood else f"at {rate}/s for {seconds} s"))
    print(f"received → handed over   {spread([(r[1] - r[0]).total_seconds() for r in rows])}")
    print(f"handed over → notified   {spread([(r[3] - r[1]).total_seconds() for r in rows])}")
    print(f"notified → completed     {spread([(r[2] - r[3]).total_seconds() for r in rows])}")
    print(f"received → notified      {spread([(r[3] - r[0]).total_seconds() for r in rows])}")
    if flood:
        during = percentile(sorted((r[3] - r[0]).total_seconds() for r in rows), 99)
        print(f"fairness: p99 {during:.3f} s during the flood vs {percentile(unloaded, 99):.3f} s unloaded = "
              f"{during / percentile(unloaded, 99):.2f}x (target <= 2x)")
    slowest: dict[int, float] = defaultdict(float)
    for received, _, _, notified in rows:
        second = int((received - rows[0][0]).total_seconds())
        slowest[second] = max(slowest[second], (notified - received).total_seconds())
    print("slowest per second: " + " ".join(f"{slowest[s]:.2f}" for s in sorted(slowest)))
    by_job: dict[str, list] = defaultdict(list)
    for job, created, dispatched, completed in deliveries:
        by_job[job].append((created, dispatched, completed))
    for job, timings in sorted(by_job.items()):
        print(f"{job}: {len(timings)} rows; created → handed over {spread([(d - c).total_seconds() for c, d, _ in timings])}; "
              f"handed over → completed {spread([(done - d).total_seconds() for _, d, done in timings])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (without --flood)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drains", type=int, default=0, help="2,000-event drains run first, as bench_pipeline does")
    parser.add_argument("--flood", type=int, default=0, help="another tenant floods this many events first")
    arguments = parser.parse_args()
    random.seed(1)
    asyncio.run(bench(arguments.rate, arguments.seconds, arguments.drains, arguments.flood))
