"""Benchmark of the staff console's people board, feedback inbox and audit log with 10,000 tenants, on this
machine's PostgreSQL.

    .venv/bin/python -m tests.perf.bench_people                    # seeds its own database (a few minutes)
    .venv/bin/python -m tests.perf.bench_people --from-console-db  # copies bo_perf_console (bench_console's)

Its database (``bo_perf_people``) holds what ``bench_console`` seeds (10,000 tenants, 200,000 customers, 50,000
front-office feedback items, 40,000 routine runs, ...; its ``SEED`` statements) plus, set-based: 50 audit
entries per tenant over 90 days (500,000) and 5,000 provider-wide ones; a provider admin; an operator
assigned to 200 tenants who follows up the open runs there; 49 more operators with 200 assignments each
(10,000 assignments on the board). Then times each query the three pages run, ``--repeat`` times, p50 and
p95, for the admin (every tenant) and the operator (200), and writes them with the EXPLAIN (ANALYZE) of each
to ``tests/perf/results/people.json``. Nothing here is asserted by the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

from tests.perf import bench_console as console  # sets the environment for its database; ours replaces it

DB = "bo_perf_people"
os.environ.update({
    "BACKOFFICE_DATABASE_URL": console.PG.format(user="backoffice_app", db=DB),
    "BACKOFFICE_SYSTEM_DATABASE_URL": console.PG.format(user="backoffice_system", db=DB),
    "BACKOFFICE_MIGRATION_DATABASE_URL": console.PG.format(user="postgres", db=DB),
    "BACKOFFICE_DATA_DIR": "/tmp/bo-perf-people",
})

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from backoffice.platform.audit.queries import audit_filter, search_audit  # noqa: E402
from backoffice.platform.db.migrate import upgrade  # noqa: E402
from backoffice.platform.db.session import Database  # noqa: E402
from backoffice.platform.settings import get_settings  # noqa: E402
from backoffice.tenants.staff.queries import people_board  # noqa: E402
from backoffice.tenants.overview.queries import unread_feedback  # noqa: E402
from backoffice.tenants.timeline.queries import feedback_filter, feedback_inbox  # noqa: E402

ADMIN, OPERATOR = uuid.UUID(int=1), uuid.UUID(int=2)
EXTRA = [
    # The people: an admin, the operator of the first 200 tenants, 49 more operators with 200 tenants each.
    f"""INSERT INTO staff (id, email, name, role, password_hash, active, created_at)
        SELECT CASE g WHEN 0 THEN '{ADMIN}'::uuid WHEN 1 THEN '{OPERATOR}'::uuid ELSE md5('s' || g)::uuid END,
               'staff' || g || '@bench.example', 'Pessoa ' || g,
               CASE g WHEN 0 THEN 'provider_admin' ELSE 'provider_operator' END, 'x', true, now()
        FROM generate_series(0, 50) g""",
    """INSERT INTO staff_assignments (id, tenant_id, staff_id, started_at)
       SELECT gen_random_uuid(), t.id, s.id, now() - interval '30 days'
       FROM (SELECT id, row_number() OVER (ORDER BY slug) - 1 AS n FROM tenants) t
       JOIN (SELECT id, row_number() OVER (ORDER BY email) - 1 AS n FROM staff WHERE role = 'provider_operator') s
         ON t.n / 200 = s.n""",
    # The runs of each tenant are followed up by the operator assigned to it.
    """UPDATE routine_runs r SET handled_by = a.staff_id FROM staff_assignments a
       WHERE a.tenant_id = r.tenant_id""",
    # 50 audit entries per tenant over 90 days, and 5,000 provider-wide.
    """INSERT INTO audit_log (id, occurred_at, tenant_id, actor_type, actor_id, actor_label, action, target_type,
       target_id, reason, detail)
       SELECT gen_random_uuid(), now() - (k * interval '43 hours' + random() * interval '1 hour'), t.id,
              CASE WHEN k % 3 = 0 THEN 'tenant_user' ELSE 'staff' END, NULL,
              CASE WHEN k % 3 = 0 THEN 'user' || k || '@empresa.example' ELSE 'staff' || (k % 50) || '@bench.example' END,
              (ARRAY['timeline.note_added', 'staff.assigned', 'routine.manual', 'policy.updated',
                     'outbound_message.replayed'])[1 + k % 5], 'x', NULL, NULL, '{}'
       FROM tenants t, generate_series(1, 50) k""",
    """INSERT INTO audit_log (id, occurred_at, tenant_id, actor_type, actor_id, actor_label, action, target_type,
       target_id, reason, detail)
       SELECT gen_random_uuid(), now() - (g * interval '26 minutes'), NULL, 'cli', NULL, 'cli:root',
              'staff.created', 'staff', NULL, NULL, '{}'
       FROM generate_series(1, 5000) g""",
]


async def seed(tenants: int, from_console_db: bool) -> dict[str, float]:
    await console.admin_sql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    took: dict[str, float] = {}
    started = time.perf_counter()
    if from_console_db:
        await console.admin_sql(f'CREATE DATABASE "{DB}" TEMPLATE "{console.DB}"')
        took["copy of bo_perf_console"] = round(time.perf_counter() - started, 2)
        await asyncio.to_thread(upgrade, get_settings())
    else:
        await console.admin_sql(f'CREATE DATABASE "{DB}"')
        await asyncio.to_thread(upgrade, get_settings())
    engine = create_async_engine(console.PG.format(user="postgres", db=DB))
    async with engine.begin() as connection:
        statements = ([] if from_console_db else console.SEED) + EXTRA
        if from_console_db:  # the console's bench leaves its own staff: start the people from scratch
            await connection.execute(text("DELETE FROM staff_second_factors"))
            await connection.execute(text("DELETE FROM staff_recovery_codes"))
            await connection.execute(text("DELETE FROM staff_tokens"))
            await connection.execute(text("DELETE FROM staff_assignments"))
            await connection.execute(text("DELETE FROM staff"))
        for statement in statements:
            started = time.perf_counter()
            await connection.execute(text(statement), {"n": tenants} if ":n" in statement else {})
            took[" ".join(statement.split()[:3])] = round(time.perf_counter() - started, 2)
    vacuum = create_async_engine(console.PG.format(user="postgres", db=DB), isolation_level="AUTOCOMMIT")
    async with vacuum.connect() as connection:
        await connection.execute(text("VACUUM (ANALYZE)"))
    await vacuum.dispose()
    await engine.dispose()
    return took


def calls(operator_tenants: list[uuid.UUID]):
    """name -> (who, coroutine function of a system session)."""
    since = audit_filter(since="2026-10-01")
    return {
        "feedback inbox, newest page": {
            "admin": lambda s: feedback_inbox(s, tenant_ids=None),
            "operator": lambda s: feedback_inbox(s, tenant_ids=operator_tenants)},
        "feedback inbox, unread only": {
            "admin": lambda s: feedback_inbox(s, tenant_ids=None, filters=feedback_filter(state="unread")),
            "operator": lambda s: feedback_inbox(s, tenant_ids=operator_tenants,
                                                 filters=feedback_filter(state="unread"))},
        "feedback inbox, text search": {
            "admin": lambda s: feedback_inbox(s, tenant_ids=None, filters=feedback_filter(text="recebido")),
            "operator": lambda s: feedback_inbox(s, tenant_ids=operator_tenants,
                                                 filters=feedback_filter(text="recebido"))},
        "unread feedback per tenant": {
            "admin": lambda s: unread_feedback(s, None),
            "operator": lambda s: unread_feedback(s, None, operator_tenants)},
        "audit, newest page": {
            "admin": lambda s: search_audit(s, tenant_ids=None),
            "operator": lambda s: search_audit(s, tenant_ids=operator_tenants)},
        "audit, actor and action prefix": {
            "admin": lambda s: search_audit(s, tenant_ids=None, filters=audit_filter(actor="staff7@", action="staff.")),
            "operator": lambda s: search_audit(s, tenant_ids=operator_tenants,
                                               filters=audit_filter(actor="staff7@", action="staff."))},
        "audit, since a date": {
            "admin": lambda s: search_audit(s, tenant_ids=None, filters=since),
            "operator": lambda s: search_audit(s, tenant_ids=operator_tenants, filters=since)},
        "audit, export page of 500": {
            "admin": lambda s: search_audit(s, tenant_ids=None, limit=500),
            "operator": lambda s: search_audit(s, tenant_ids=operator_tenants, limit=500)},
        "people board": {
            "admin": lambda s: people_board(s),
            "operator": lambda s: people_board(s, staff_id=OPERATOR)},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--from-console-db", action="store_true",
                        help="copy bench_console's database (bo_perf_console) instead of seeding")
    args = parser.parse_args()
    seeding = await seed(args.tenants, args.from_console_db)
    database = Database(get_settings())
    async with database.system() as session:
        counts = {table: (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
                  for table in ("tenants", "feedback_items", "timeline_entries", "audit_log", "staff_assignments",
                                "routine_runs")}
        operator_tenants = [row[0] for row in await session.execute(text(
            f"SELECT tenant_id FROM staff_assignments WHERE staff_id = '{OPERATOR}' AND ended_at IS NULL"))]
    results: dict = {"rows": counts, "seeding_seconds": seeding, "queries": {}}
    for name, by_who in calls(operator_tenants).items():
        results["queries"][name] = {who: console.figure(await console.timed(database, call, args.repeat))
                                    for who, call in by_who.items()}
    results["explain"] = await explain(database)
    await database.dispose()
    console.RESULTS.mkdir(parents=True, exist_ok=True)
    (console.RESULTS / "people.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps({k: v for k, v in results.items() if k != "explain"}, indent=2, default=str))


async def explain(database: Database) -> dict[str, str]:
    """EXPLAIN (ANALYZE) of the statements behind the admin's audit page and the unread counts, as sent."""
    statements = {
        "audit, newest page (admin)": "SELECT * FROM audit_log ORDER BY occurred_at DESC, id DESC LIMIT 51",
        "unread feedback per tenant (admin)":
            "SELECT tenant_id, count(*) FROM feedback_items WHERE state = 'unread' GROUP BY tenant_id",
    }
    plans = {}
    async with database.system() as session:
        for name, statement in statements.items():
            rows = await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + statement))
            plans[name] = "\n".join(row[0] for row in rows)
    return plans


if __name__ == "__main__":
    asyncio.run(main())
