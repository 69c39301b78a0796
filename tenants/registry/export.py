"""One tenant's data out, in, and gone: export as JSON lines, import into an empty database, purge.

For LGPD requests (a company's data handed over, then erased) and for moving a tenant between clusters.

- The tables are read from the database's own catalogue (reflected), not from the ORM models: every table
  with a ``tenant_id`` column, in foreign-key order, after the tenant's row in ``tenants``. Reflected
  columns carry the stored types, so values go out exactly as stored: **secrets stay encrypted** (connector
  credentials, webhook signing secrets, SSO client secrets are Fernet tokens at rest and are exported as
  those tokens), and an import needs the same ``BACKOFFICE_SECRETS_KEYS`` to use them.
- ``staff_assignments`` (the provider's record of who serves the tenant; it names staff of this cluster)
  is neither exported nor imported; a purge deletes it.
- Each line is ``{"table": ..., "row": {...}}``; UUIDs, dates and decimals as strings, bytes as base64.
  Rows of a table are read in one statement, streamed, ordered by primary key (time-ordered UUIDs, so a
  run's parent run comes before its children); an import inserts in batches of ``BATCH`` rows.
- The audit log is append-only (a trigger refuses UPDATE and DELETE): a purge keeps the tenant's audit
  entries, which are the record of what was done (actor, action, target ids) and records ``tenant.purged``
  there; every other row of the tenant is deleted.

Everything runs on the system connection (``Database.system``) with an explicit ``tenant_id`` filter.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import MetaData, Table, func, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.registry.models import Tenant, TenantStatus

BATCH = 1000
NOT_EXPORTED = frozenset({"staff_assignments", "alembic_version"})
KEPT_ON_PURGE = frozenset({"audit_log"})

Progress = Callable[[int], None]


async def tenant_tables(session: AsyncSession) -> list[Table]:
    """``tenants`` and then every table with ``tenant_id``, referenced tables before referencing ones."""
    connection = await session.connection()
    metadata = MetaData()
    await connection.run_sync(lambda sync: metadata.reflect(bind=sync))
    tables = [table for table in metadata.sorted_tables
              if table.name not in NOT_EXPORTED and "tenant_id" in table.c]
    return [metadata.tables["tenants"], *tables]


def _filter(table: Table, tenant_id: uuid.UUID):
    return table.c.id == tenant_id if table.name == "tenants" else table.c.tenant_id == tenant_id


async def count_rows(session: AsyncSession, tenant_id: uuid.UUID, tables: list[Table]) -> dict[str, int]:
    """Rows per table for one tenant, in one statement."""
    counts = union_all(*(select(literal(table.name).label("name"), func.count().label("n"))
                         .select_from(table).where(_filter(table, tenant_id)) for table in tables))
    return {name: n for name, n in (await session.execute(counts)).all()}


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot export a {type(value).__name__}")


def _decoder(column) -> Callable[[Any], Any]:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return lambda value: value
    parse = {uuid.UUID: uuid.UUID, datetime: datetime.fromisoformat, date: date.fromisoformat,
             time: time.fromisoformat, Decimal: Decimal, bytes: base64.b64decode}.get(kind)
    if parse is None:
        return lambda value: value
    return lambda value: value if value is None or not isinstance(value, str) else parse(value)


async def export_tenant(session: AsyncSession, tenant: Tenant, out: IO[str], *,
                        progress: Progress | None = None) -> dict[str, int]:
    """Write every row of ``tenant`` to ``out`` as JSON lines; returns rows written per table."""
    tables = await tenant_tables(session)
    written: dict[str, int] = {}
    for table in tables:
        query = select(table).where(_filter(table, tenant.id)).order_by(*table.primary_key.columns)
        result = await session.stream(query.execution_options(yield_per=BATCH))
        written[table.name] = 0
        async for partition in result.mappings().partitions():
            for row in partition:
                out.write(json.dumps({"table": table.name, "row": dict(row)}, default=_encode,
                                     ensure_ascii=False, sort_keys=True) + "\n")
            written[table.name] += len(partition)
            if progress:
                progress(len(partition))
    return written


def _lines(source: Iterable[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            table, row = item["table"], item["row"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValidationFailed(FieldError("file", f"line {number} is not an export line ({error})")) from None
        if not isinstance(table, str) or not isinstance(row, dict):
            raise ValidationFailed(FieldError("file", f"line {number} is not an export line"))
        yield number, table, row


async def import_tenant(session: AsyncSession, source: Iterable[str], *, acting: Actor,
                        progress: Progress | None = None) -> Tenant:
    """Insert an export into this database, which must not hold the tenant (by id or slug) yet.

    Every line is checked (a known table, known columns, one tenant) before its batch is inserted; the
    caller's transaction makes it all or nothing."""
    tables = {table.name: table for table in await tenant_tables(session)}
    decoders = {name: {column.name: _decoder(column) for column in table.c} for name, table in tables.items()}
    tenant_id: uuid.UUID | None = None
    pending: list[dict[str, Any]] = []
    pending_table: str | None = None

    async def flush() -> None:
        if pending:
            await session.execute(insert(tables[pending_table]), pending)
            if progress:
                progress(len(pending))
            pending.clear()

    for number, table, row in _lines(source):
        if table not in tables:
            raise ValidationFailed(FieldError("file", f"line {number}: unknown table {table!r}"))
        unknown = set(row) - set(decoders[table])
        if unknown:
            raise ValidationFailed(FieldError("file", f"line {number}: unknown columns {sorted(unknown)} of {table}"))
        values = {name: decoders[table][name](value) for name, value in row.items()}
        if tenant_id is None:
            if table != "tenants":
                raise ValidationFailed(FieldError("file", "the first line must be the tenant's row"))
            tenant_id = values["id"]
            slug, registry = values.get("slug"), tables["tenants"]  # stored form of the id: reflected table
            taken = await session.scalar(select(func.count()).select_from(registry).where(
                (registry.c.id == tenant_id) | (registry.c.slug == slug)))
            if taken:
                raise ValidationFailed(FieldError("file", f"tenant {values.get('slug')} is already in this database"))
        elif values.get("tenant_id" if table != "tenants" else "id") != tenant_id:
            raise ValidationFailed(FieldError("file", f"line {number}: a row of another tenant"))
        if table != pending_table or len(pending) >= BATCH:
            await flush()
            pending_table = table
        pending.append(values)
    await flush()
    if tenant_id is None:
        raise ValidationFailed(FieldError("file", "the file holds no tenant"))
    tenant = (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one()
    await record(session, actor=acting, action="tenant.imported", target_type="tenant", target_id=tenant.id,
                 tenant_id=tenant.id, detail={"slug": tenant.slug})
    return tenant


async def suspended_since(session: AsyncSession, tenant: Tenant) -> datetime | None:
    """When the tenant's current suspension began (its latest ``tenant.suspended`` audit entry)."""
    if tenant.status != TenantStatus.SUSPENDED:
        return None
    return await session.scalar(select(func.max(AuditEntry.occurred_at)).where(
        AuditEntry.tenant_id == tenant.id, AuditEntry.action == "tenant.suspended"))


async def purge_tenant(session: AsyncSession, tenant: Tenant, *, grace: timedelta, reason: str,
                       acting: Actor, progress: Progress | None = None) -> dict[str, int]:
    """Delete every row of a tenant suspended for at least ``grace``; its audit entries stay (append-only)
    and gain ``tenant.purged``. Returns rows deleted per table."""
    if not (reason or "").strip():
        raise ValidationFailed(FieldError("reason", "expected the reason for the purge"))
    since = await suspended_since(session, tenant)
    if since is None:
        raise ValidationFailed(FieldError("slug", f"{tenant.slug} is not suspended; suspend it first"))
    ends = since + grace
    if clock.now() < ends:
        raise ValidationFailed(FieldError(
            "slug", f"{tenant.slug} was suspended at {since.isoformat()}; it may be purged from {ends.isoformat()}"))
    tables = [table for table in await tenant_tables(session) if table.name not in KEPT_ON_PURGE]
    connection = await session.connection()
    metadata = next(iter(tables)).metadata
    deleted: dict[str, int] = {}
    for table in [metadata.tables["staff_assignments"], *reversed(tables)]:
        result = await connection.execute(table.delete().where(_filter(table, tenant.id)))
        deleted[table.name] = result.rowcount
        if progress:
            progress(1)
    session.expunge(tenant)
    await record(session, actor=acting, action="tenant.purged", target_type="tenant", target_id=tenant.id,
                 tenant_id=tenant.id, reason=reason.strip(),
                 detail={"slug": tenant.slug, "suspended_at": since.isoformat(),
                         "rows": {name: n for name, n in deleted.items() if n}})
    return deleted
