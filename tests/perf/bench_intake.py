"""Event intake under load, against its baselines, in one run. Prints tables, writes JSON.

    .venv/bin/python -m tests.perf.bench_intake            # 10 s per load, 20 batches per repetition
    .venv/bin/python -m tests.perf.bench_intake --quick    # 5 s per load, 5 batches per repetition

Single events: ``wrk`` (a C load generator: the Python one capped every figure) posts events with unique
external ids to three uvicorn servers in turn, each measured 3 times:
- ``trivial``: answers without touching the database: the ceiling of this machine, server and loader;
- ``bare``: Litestar + asyncpg, one INSERT per request: what a durable endpoint costs at the least;
- ``intake``: the real ``POST /api/v1/events/`` of the platform's app, with a real API key (cache, rate
  limit in Redis, validation, the event and its outbox row in one transaction under RLS).
Batches: ``ingest_batch`` of 1,000 events vs a bare asyncpg ``unnest()`` INSERT of the same events into a
table built ``LIKE events`` (same columns and indexes, no outbox, no RLS), 3 repetitions.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get update && apt-get install -y wrk``). Uses the database
``bo_perf`` (created and dropped) and Redis database 13, as bench_spine.py does: run one benchmark at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from tests.perf.bench_spine import (  # importing it points BACKOFFICE_* at bo_perf
    DB, PY, RESULTS, ROOT, admin, free_port, light_event, owner_sql, processes, setup, wait_http,
)
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.base import new_ids
from backoffice.platform.db.session import Database
from backoffice.platform.settings import get_settings
from backoffice.tenants.apikeys.service import create_api_key
from backoffice.tenants.events.intake import ingest_batch, validate

REPEATS = 3
THREADS, CONNECTIONS = 2, 64
APP_DSN = f"postgresql://backoffice_app@127.0.0.1:5432/{DB}"

# One Lua state per wrk thread: each numbers its own requests under its own prefix, so every body carries
# an external id never sent before (no request of the run is a duplicate).
LUA = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  prefix = args[1] .. "-" .. tostring(tid)
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] ~= nil and args[2] ~= "-" then wrk.headers["Authorization"] = "Bearer " .. args[2] end
end
function request()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local body = '{"type":"payment.created","source":"bench","external_id":"' .. id .. '",'
    .. '"customer":{"external_id":"cus_' .. (counter % 1000 + 1) .. '","source":"bench"},'
    .. '"data":{"charge":{"external_id":"ch-' .. id .. '","amount_cents":990,"due_date":"2026-12-05"}}}'
  return wrk.format(nil, nil, nil, body)
end
"""

SERVERS = {
    "trivial": (["tests.perf.apps:app"], "/events"),
    "bare": (["tests.perf.apps:app"], "/events"),
    "intake": (["--factory", "backoffice.web.entry.runtime:app_from_env"], "/api/v1/events/"),
}


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed. On Debian/Ubuntu: apt-get update && apt-get install -y wrk "
                 "(elsewhere: https://github.com/wg/wrk). Then run this benchmark again.")
    return found


def run_wrk(wrk: str, url: str, script: Path, seconds: int, tag: str, token: str) -> dict:
    out = subprocess.run(
        [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url,
         "--", tag, token or "-"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def latency(q: str) -> str:
        found = re.search(rf"^\s+{q}%\s+(\S+)", out, re.MULTILINE)
        return found.group(1) if found else "?"

    return {"rps": round(rps, 1), "requests": total, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0,
            "p50": latency("50"), "p99": latency("99")}


async def bench_http(ids, token: str, seconds: int) -> dict:
    wrk = require_wrk()
    results: dict[str, list[dict]] = {name: [] for name in SERVERS}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "intake.lua"
        script.write_text(LUA)
        for round_ in range(REPEATS):
            for name, (target, path) in SERVERS.items():
                port = free_port()
                cmd = [PY, "-m", "uvicorn", *target, "--port", str(port), "--log-level", "warning", "--no-access-log"]
                extra = {"PERF_APP": name, "PERF_TENANT": str(ids["load"]), "PERF_DSN": APP_DSN}
                url = f"http://127.0.0.1:{port}{path}"
                with processes(cmd, extra_env=extra):
                    await wait_http(url, light_event(0, "ready"))
                    run_wrk(wrk, url, script, 2, f"warm{round_}{name}", token if name == "intake" else "")
                    result = run_wrk(wrk, url, script, seconds, f"r{round_}{name}", token if name == "intake" else "")
                results[name].append(result)
                print(f"  round {round_ + 1} {name:<8} {result['rps']:>9.1f} req/s  p50 {result['p50']:>8} "
                      f"p99 {result['p99']:>8}  non-2xx {result['non_2xx']}", flush=True)
    means = {name: statistics.mean(r["rps"] for r in runs) for name, runs in results.items()}
    return {
        "runs": results,
        "mean_rps": {k: round(v, 1) for k, v in means.items()},
        "intake_vs_bare": round(means["intake"] / means["bare"], 3),
        "intake_vs_bare_per_round": [round(i["rps"] / b["rps"], 3)
                                     for i, b in zip(results["intake"], results["bare"], strict=True)],
        "bare_vs_ceiling": round(means["bare"] / means["trivial"], 3),
        "intake_vs_ceiling": round(means["intake"] / means["trivial"], 3),
        "target": 0.5,
    }


# --- batches ---------------------------------------------------------------------------------------

BARE_BATCH = """
INSERT INTO bare_batch_events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data,
                               status)
SELECT $1, id, type, source, external_id, occurred_at, $2, subject, data, 'pending'
FROM unnest($3::uuid[], $4::varchar[], $5::varchar[], $6::varchar[], $7::timestamptz[], $8::json[], $9::json[])
    AS input(id, type, source, external_id, occurred_at, subject, data)
"""


async def bare_batch(connection: asyncpg.Connection, tenant: uuid.UUID, events) -> None:
    """The same rows as ingest_batch builds, from the same validated events, in one autocommit INSERT."""
    now = datetime.now(UTC)
    columns: list[list] = [[] for _ in range(7)]
    for event_id, event in zip(new_ids(len(events)), events, strict=True):
        for column, value in zip(columns, (
            event_id, event.type, event.source, event.external_id, event.occurred_at or now,
            json.dumps(event.customer.model_dump(mode="json", exclude_none=True) if event.customer else {}),
            json.dumps(event.data),
        ), strict=True):
            column.append(value)
    await connection.execute(BARE_BATCH, tenant, now, *columns)


async def bench_batches(database: Database, tenant: uuid.UUID, batches: int) -> dict:
    connection = await asyncpg.connect(APP_DSN)
    rounds = []
    try:
        for round_ in range(REPEATS):
            def prepared(tag: str):
                return [[validate(light_event(b * 1000 + i, tag)) for i in range(1000)] for b in range(batches + 1)]

            ours_events, bare_events = prepared(f"ours{round_}"), prepared(f"bare{round_}")
            # The inputs are the benchmark's, not the code's: keep the collector from rescanning them.
            gc.collect()
            gc.freeze()
            timings = {}
            # Alternate which goes first, so neither always runs on the warmer (or fuller) tables.
            order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
            for name in order:
                batches_of = ours_events if name == "ours" else bare_events
                warm, *timed = batches_of
                if name == "ours":
                    async def one(batch):
                        async with database.tenant(tenant) as session:
                            results = await ingest_batch(session, tenant, batch)
                        assert sum(r.status == "accepted" for r in results) == len(batch)
                else:
                    async def one(batch):
                        await bare_batch(connection, tenant, batch)
                await one(warm)
                start = time.perf_counter()
                for batch in timed:
                    await one(batch)
                timings[name] = batches * 1000 / (time.perf_counter() - start)
            gc.unfreeze()
            rounds.append({"bare_events_per_s": round(timings["bare"]), "ours_events_per_s": round(timings["ours"]),
                           "ratio": round(timings["ours"] / timings["bare"], 3)})
            print(f"  round {round_ + 1} batch: ours {timings['ours']:>8.0f}/s  bare unnest {timings['bare']:>8.0f}/s  "
                  f"ratio {timings['ours'] / timings['bare']:.3f}", flush=True)
    finally:
        await connection.close()
    ours = statistics.mean(r["ours_events_per_s"] for r in rounds)
    bare = statistics.mean(r["bare_events_per_s"] for r in rounds)
    return {"events_per_batch": 1000, "batches_per_round": batches, "rounds": rounds,
            "mean_ours_events_per_s": round(ours), "mean_bare_events_per_s": round(bare),
            "ratio": round(ours / bare, 3), "target": 0.8}


async def make_key(database: Database, tenant: uuid.UUID) -> str:
    async with database.provider(tenant) as session:
        new = await create_api_key(session, name="bench", scopes=["events:write"], acting=Actor.system("bench"))
    # Far above any rate this machine reaches: the per-key limit is still counted in Redis on every request.
    await owner_sql(f"UPDATE api_keys SET rate_limit_per_minute = 1000000000 WHERE id = '{new.key.id}'")
    return new.secret


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5 s per load and 5 batches per repetition")
    parser.add_argument("--only", choices=["http", "batch"], action="append", help="run only this part")
    args = parser.parse_args()
    parts = set(args.only or ["http", "batch"])
    if "http" in parts:
        require_wrk()
    ids = await setup(customers_per_load_tenant=1000)
    await owner_sql("CREATE TABLE bare_batch_events (LIKE events INCLUDING ALL)",
                    "GRANT INSERT ON bare_batch_events TO backoffice_app")
    database = Database(get_settings())
    report: dict = {"when": datetime.now(UTC).isoformat(), "quick": args.quick,
                    "loader": f"wrk -t{THREADS} -c{CONNECTIONS}"}
    try:
        if "http" in parts:
            print(f"single events: wrk -t{THREADS} -c{CONNECTIONS}, {5 if args.quick else 10} s per load", flush=True)
            report["single"] = await bench_http(ids, await make_key(database, ids["load"]), 5 if args.quick else 10)
        if "batch" in parts:
            print("batches of 1,000 events", flush=True)
            report["batch"] = await bench_batches(database, ids["noisy"], 5 if args.quick else 20)
    finally:
        await database.dispose()

    if "single" in report:
        s = report["single"]
        print(f"\n{'single event (req/s)':<22} " + " ".join(f"{f'round {n + 1}':>10}" for n in range(REPEATS))
              + f" {'mean':>10}")
        for name in SERVERS:
            print(f"{name:<22} " + " ".join(f"{r['rps']:>10.1f}" for r in s["runs"][name])
                  + f" {s['mean_rps'][name]:>10.1f}")
        print(f"{'intake / bare':<22} " + " ".join(f"{r:>10.3f}" for r in s["intake_vs_bare_per_round"])
              + f" {s['intake_vs_bare']:>10.3f}   target >= {s['target']}")
        print(f"bare / ceiling {s['bare_vs_ceiling']:.3f}, intake / ceiling {s['intake_vs_ceiling']:.3f}")
        failed = {n: sum(r["non_2xx"] + r["socket_errors"] for r in runs) for n, runs in s["runs"].items()}
        if any(failed.values()):
            print(f"WARNING: non-2xx answers or socket errors: {failed}")
    if "batch" in report:
        b = report["batch"]
        print(f"\n{'batch (events/s)':<22} " + " ".join(f"{f'round {n + 1}':>10}" for n in range(REPEATS))
              + f" {'mean':>10}")
        print(f"{'bare unnest':<22} " + " ".join(f"{r['bare_events_per_s']:>10}" for r in b["rounds"])
              + f" {b['mean_bare_events_per_s']:>10}")
        print(f"{'ingest_batch':<22} " + " ".join(f"{r['ours_events_per_s']:>10}" for r in b["rounds"])
              + f" {b['mean_ours_events_per_s']:>10}")
        print(f"{'ours / bare':<22} " + " ".join(f"{r['ratio']:>10.3f}" for r in b["rounds"])
              + f" {b['ratio']:>10.3f}   target >= {b['target']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"intake-{datetime.now(UTC):%Y%m%dT%H%M%S}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")
    await admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
