"""The Citus layout the schema is kept ready for, read from the migrated PostgreSQL catalogue.

``deploy/citus/distribute.sql`` is this module's output over a database at the latest migration
(``python -m backoffice.platform.db.citus > deploy/citus/distribute.sql``); a test regenerates it and
compares, and checks the condition Citus puts on a table distributed by ``tenant_id``: every primary key,
unique constraint or unique index, exclusion constraint and foreign key includes ``tenant_id`` (a foreign
key to a reference table may name any columns).

Classes of tables:
- distributed by ``tenant_id``, all colocated with ``tenant_users``: every table whose ``tenant_id`` is
  NOT NULL, except the provider's own tables;
- reference tables (a copy on every node): the tables without ``tenant_id`` (the registry and the
  provider's staff) and ``PROVIDER_TABLES_WITH_TENANT``;
- ``LOCAL_TABLES``: kept on the coordinator (a Citus local table), with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

# Provider tables that carry tenant_id (protect_provider_tables): small, read with every tenant's data by
# the console, so a copy on every node.
PROVIDER_TABLES_WITH_TENANT = frozenset({"staff_assignments"})

# Tables with tenant_id that cannot be distributed by it as they are, and why.
LOCAL_TABLES = {
    "audit_log": "tenant_id is NULL for provider-wide entries (staff, CLI), and Citus refuses NULL in the "
                 "distribution column: the audit log stays on the coordinator as a Citus local table",
}

# Non-unique indexes without tenant_id: the cross-tenant access paths of the system role (relay, timers,
# dunning sweep, run recovery, API key lookup before the tenant is known, the provider's feedback list).
# Citus needs tenant_id only in unique and foreign keys; on a cluster each shard keeps its own copy of
# these and a cross-tenant scan fans out to every shard. A new index must name tenant_id or be listed here.
CROSS_TENANT_INDEXES = frozenset({
    "ix_api_keys_key_hash", "ix_charges_due", "ix_feedback_items_time", "ix_outbox_lease_token",
    "ix_outbox_pending", "ix_routine_runs_status", "ix_timers_due",
})

COLOCATION_ANCHOR = "tenant_users"

_TABLES = """
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) AS has_tenant,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped AND a.attnotnull) AS tenant_not_null
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
ORDER BY c.relname
"""

# Constraints and indexes of one schema, with whether they name tenant_id.
_KEYS = """
SELECT t.relname AS table_name, con.conname AS name, con.contype::text AS kind,
       coalesce(ref.relname, '') AS referenced,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'tenant_id'
               AND a.attnum = ANY (con.conkey)) AS has_tenant
FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class ref ON ref.oid = con.confrelid
WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'f', 'x')
UNION ALL
SELECT t.relname, ic.relname, CASE WHEN i.indisunique THEN 'U' ELSE 'i' END, '',
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'tenant_id'
               AND a.attnum = ANY (i.indkey))
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema()
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Key:
    table: str
    name: str
    kind: str  # p primary, u unique constraint, f foreign key, x exclusion, U unique index, i index
    referenced: str
    has_tenant: bool


@dataclass
class Layout:
    distributed: list[str] = field(default_factory=list)  # in foreign-key order
    reference: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)

    def violations(self) -> list[str]:
        """Keys of distributed tables that Citus would refuse, and indexes nobody decided on."""
        distributed, reference = set(self.distributed), set(self.reference)
        problems = []
        for key in self.keys:
            if key.table not in distributed or key.has_tenant:
                continue
            if key.kind == "f" and key.referenced in reference:
                continue  # a foreign key to a reference table may name any column
            if key.kind == "i" and key.name in CROSS_TENANT_INDEXES:
                continue
            problems.append(f"{key.table}.{key.name} ({key.kind}) does not include tenant_id")
        return problems


async def read_layout(connection: AsyncConnection) -> Layout:
    tables = (await connection.execute(text(_TABLES))).all()
    keys = [Key(*row) for row in (await connection.execute(text(_KEYS))).all()]
    layout = Layout(keys=keys)
    candidates = set()
    for name, has_tenant, not_null in tables:
        if name in LOCAL_TABLES:
            layout.local.append(name)
        elif not has_tenant or name in PROVIDER_TABLES_WITH_TENANT:
            layout.reference.append(name)
        elif not_null:
            candidates.add(name)
        else:
            raise RuntimeError(f"{name}: tenant_id may be NULL; make it NOT NULL or list it in LOCAL_TABLES")
    layout.distributed = _foreign_key_order(candidates, keys)
    return layout


def _foreign_key_order(tables: set[str], keys: list[Key]) -> list[str]:
    """The colocation anchor first, then each table after the distributed tables it references."""
    depends = {table: {k.referenced for k in keys if k.table == table and k.kind == "f"
                       and k.referenced in tables and k.referenced != table} for table in tables}
    ordered: list[str] = []
    if COLOCATION_ANCHOR in tables and not depends[COLOCATION_ANCHOR]:
        ordered.append(COLOCATION_ANCHOR)
    while len(ordered) < len(tables):
        ready = sorted(t for t in tables if t not in ordered and depends[t] <= set(ordered))
        if not ready:
            raise RuntimeError(f"foreign-key cycle among {sorted(set(tables) - set(ordered))}")
        ordered.append(ready[0])
    return ordered


def distribute_sql(layout: Layout) -> str:
    lines = [
        "-- Generated from the migrated catalogue by `python -m backoffice.platform.db.citus`; do not edit.",
        "-- Run once, as the schema owner, on the Citus coordinator of an empty database at the latest",
        "-- migration, before the processes start (see deploy/README.md, \"Past one PostgreSQL node\").",
        "BEGIN;",
        "-- DDL on distributed tables with foreign keys to reference tables, in one transaction.",
        "SET LOCAL citus.multi_shard_modify_mode TO 'sequential';",
        "",
        "-- Reference tables: the registry and the provider's own tables, a copy on every node.",
    ]
    lines += [f"SELECT create_reference_table('{table}');" for table in layout.reference]
    lines += ["", "-- Kept on the coordinator (see platform/db/citus.py, LOCAL_TABLES)."]
    lines += [f"SELECT citus_add_local_table_to_metadata('{table}');" for table in layout.local]
    lines += ["", f"-- Tenant tables, distributed by tenant_id and colocated with {COLOCATION_ANCHOR}: one",
              "-- tenant's rows of every table live on the same node, so its joins and transactions stay there."]
    for table in layout.distributed:
        colocate = "'default'" if table == layout.distributed[0] else f"'{COLOCATION_ANCHOR}'"
        lines.append(f"SELECT create_distributed_table('{table}', 'tenant_id', colocate_with => {colocate});")
    lines += ["", "COMMIT;", ""]
    return "\n".join(lines)


async def _main() -> None:
    from backoffice.platform.settings import settings_or_exit

    engine = create_async_engine(settings_or_exit().migration_database_url)
    try:
        async with engine.connect() as connection:
            layout = await read_layout(connection)
    finally:
        await engine.dispose()
    problems = layout.violations()
    if problems:
        raise SystemExit("\n".join(problems))
    print(distribute_sql(layout), end="")


if __name__ == "__main__":
    asyncio.run(_main())
