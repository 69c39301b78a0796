"""The daily overdue sweep: pending charges past due in the tenant's own calendar become overdue.

Each charge turned overdue gets a ``payment.overdue`` canonical event (source ``sweep``, external id
``overdue:<charge id>``) and its outbox row, in the same transaction as the status change; the process
step then opens the late-payment case. A charge is picked only while ``pending``, and the event dedupes
on (tenant, source, external id), so a sweep run twice emits nothing new.

"Today" is the tenant's local date, computed here with ``zoneinfo`` (the rules the routine that decides
*when* to sweep uses too) rather than with PostgreSQL's ``AT TIME ZONE``: the two time zone databases can
disagree (Brazil dropped daylight saving in 2019), and a name PostgreSQL does not know would fail the
sweep of every tenant. The dates travel as two arrays, so PostgreSQL still does everything in one
statement for all tenants: UPDATE ... RETURNING the charges, INSERT the events ... ON CONFLICT DO NOTHING
RETURNING, INSERT their outbox rows. ``ix_charges_due`` (status, due_date) bounds the scan to pending
charges due before the latest "today". SQLite (the embedded mode) goes tenant by tenant.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Date, String, Uuid, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import UTCDateTime
from backoffice.platform.db.session import Database
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.events.intake import MAX_BATCH, PROCESS_JOB, ingest_batch, validate
from backoffice.tenants.registry.models import Tenant, TenantStatus

EVENT_TYPE = "payment.overdue"
SOURCE = "sweep"

# A UUID v7 (time-ordered, like new_id() in Python) built in SQL: PostgreSQL 15 has no uuidv7().
_UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
    from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"""

_SWEEP_POSTGRES = f"""
WITH today AS (
    SELECT * FROM unnest(CAST(:tenant_ids AS uuid[]), CAST(:todays AS date[])) AS t(tenant_id, local_date)
), overdue AS (
    UPDATE charges c SET status = 'overdue', updated_at = :now
    FROM today
    WHERE c.status = 'pending' AND c.due_date < :latest_today
      AND c.tenant_id = today.tenant_id AND c.due_date < today.local_date
    RETURNING c.tenant_id, c.id, c.customer_id, c.source, c.external_id, c.amount_cents, c.due_date, c.description
), emitted AS (
    INSERT INTO events (tenant_id, id, type, source, external_id, occurred_at, received_at, subject, data, status)
    SELECT tenant_id, {_UUID7}, :event_type, :source, 'overdue:' || id::text, :now, :now,
           json_build_object('id', customer_id),
           json_build_object('charge', json_strip_nulls(json_build_object(
               'source', source, 'external_id', external_id, 'amount_cents', amount_cents, 'due_date', due_date,
               'description', description))),
           'pending'
    FROM overdue
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING tenant_id, id
), queued AS (
    INSERT INTO outbox (tenant_id, id, job, payload, created_at, available_at, attempts)
    SELECT tenant_id, {_UUID7}, :job, json_build_object('event_id', id), :now, :now, 0 FROM emitted
    RETURNING tenant_id
)
SELECT tenant_id, count(*) AS n FROM queued GROUP BY tenant_id
"""


def local_today(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


async def sweep_overdue(
    database: Database, *, tenant_ids: list[uuid.UUID] | None = None,
    today_by_tenant: dict[uuid.UUID, date] | None = None,
) -> dict[uuid.UUID, int]:
    """Turn past-due pending charges overdue; returns how many ``payment.overdue`` events were emitted,
    by tenant (every swept tenant is a key, with 0 when nothing was overdue).

    ``tenant_ids`` limits the sweep (default: every active tenant); ``today_by_tenant`` overrides a
    tenant's local date (the daily routine passes the date it runs for, so a missed day catches up
    with that day's calendar).
    """
    now = clock.now()
    overrides = today_by_tenant or {}
    async with database.system() as session:
        todays = await _todays(session, tenant_ids, overrides, now)
        if not todays:
            return {}
        return await sweep_session(session, todays, now)


async def sweep_session(session: AsyncSession, todays: dict[uuid.UUID, date], now: datetime) -> dict[uuid.UUID, int]:
    """The sweep in the caller's transaction: a system session for many tenants, or a tenant's own
    session for that one tenant (RLS lets it see and write only its rows either way)."""
    if session.bind.dialect.name == "postgresql":
        return await _sweep_postgres(session, todays, now)
    return await _sweep_per_tenant(session, todays, now)


async def _todays(
    session: AsyncSession, tenant_ids: list[uuid.UUID] | None, overrides: dict[uuid.UUID, date], now: datetime
) -> dict[uuid.UUID, date]:
    # Every tenant's zone in one small read (a few thousand rows), filtered here rather than through an
    # IN list that could outgrow asyncpg's bind-parameter limit.
    rows = (await session.execute(select(Tenant.id, Tenant.timezone, Tenant.status))).all()
    wanted = set(tenant_ids) if tenant_ids is not None else None
    return {
        row.id: overrides.get(row.id) or local_today(row.timezone, now)
        for row in rows
        if (row.id in wanted if wanted is not None else row.status == TenantStatus.ACTIVE)
    }


async def _sweep_postgres(session: AsyncSession, todays: dict[uuid.UUID, date], now: datetime) -> dict[uuid.UUID, int]:
    statement = text(_SWEEP_POSTGRES).bindparams(
        bindparam("tenant_ids", type_=ARRAY(Uuid())), bindparam("todays", type_=ARRAY(Date())),
        bindparam("now", type_=UTCDateTime()), bindparam("latest_today", type_=Date()),
        bindparam("event_type", type_=String()), bindparam("source", type_=String()),
        bindparam("job", type_=String()),
    )
    result = await session.execute(statement, {
        "tenant_ids": list(todays), "todays": list(todays.values()), "latest_today": max(todays.values()),
        "now": now, "event_type": EVENT_TYPE, "source": SOURCE, "job": PROCESS_JOB,
    })
    emitted = dict.fromkeys(todays, 0)
    emitted.update({row.tenant_id: row.n for row in result})
    return emitted


async def _sweep_per_tenant(session: AsyncSession, todays: dict[uuid.UUID, date], now: datetime) -> dict[uuid.UUID, int]:
    """The embedded mode's sweep: one UPDATE ... RETURNING and one intake batch per tenant."""
    emitted = dict.fromkeys(todays, 0)
    for tenant_id, today in todays.items():
        charges = (await session.execute(
            update(Charge)
            .where(Charge.tenant_id == tenant_id, Charge.status == ChargeStatus.PENDING, Charge.due_date < today)
            .values(status=ChargeStatus.OVERDUE, updated_at=now)
            .returning(Charge.id, Charge.customer_id, Charge.source, Charge.external_id, Charge.amount_cents,
                       Charge.due_date, Charge.description)
            .execution_options(synchronize_session=False)
        )).all()
        events = [validate(overdue_event(charge, now)) for charge in charges]
        for start in range(0, len(events), MAX_BATCH):
            results = await ingest_batch(session, tenant_id, events[start:start + MAX_BATCH])
            emitted[tenant_id] += sum(result.status == "accepted" for result in results)
    return emitted


def overdue_event(charge, now: datetime) -> dict:
    """The event for one charge, as the PostgreSQL statement builds it in SQL."""
    return {
        "type": EVENT_TYPE, "source": SOURCE, "external_id": f"overdue:{charge.id}", "occurred_at": now,
        "customer": {"id": str(charge.customer_id)},
        "data": {"charge": {"source": charge.source, "external_id": charge.external_id,
                            "amount_cents": charge.amount_cents,
                            "due_date": charge.due_date.isoformat(), "description": charge.description}},
    }
