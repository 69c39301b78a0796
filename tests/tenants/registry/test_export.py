"""A tenant's data out, in and gone: export holds exactly one tenant, an import into an empty database
gives the same rows back, a purge waits for suspension and the grace period, keeps the other tenant."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from backoffice.platform import clock
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.registry.export import count_rows, export_tenant, import_tenant, purge_tenant, tenant_tables
from backoffice.tenants.registry.service import get_tenant_by_slug, suspend_tenant
from tests import services
from tests.conftest import RUN_ID, _admin_execute, pg_url

ACTOR = Actor.system("tests")
GRACE = timedelta(days=30)


async def _export(database: Database, slug: str) -> list[str]:
    out = io.StringIO()
    async with database.system() as session:
        await export_tenant(session, await get_tenant_by_slug(session, slug), out)
    return out.getvalue().splitlines()


async def _counts(database: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    async with database.system() as session:
        return await count_rows(session, tenant_id, await tenant_tables(session))


@asynccontextmanager
async def _empty_database(backend, tmp_path: Path) -> AsyncIterator[Database]:
    """Another database at the latest migration, with nothing in it; on PostgreSQL dropped afterwards."""
    name = f"bo_test_{RUN_ID}_import"
    if backend.name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        settings = backend.settings.model_copy(update={
            "database_url": url, "system_database_url": url, "migration_database_url": url})
    else:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        settings = backend.settings.model_copy(update={
            "database_url": pg_url(name, "backoffice_app"), "system_database_url": pg_url(name, "backoffice_system"),
            "migration_database_url": pg_url(name, services.PG_ADMIN_USER)})
    await asyncio.to_thread(upgrade, settings)
    other = Database(settings)
    try:
        yield other
    finally:
        await other.dispose()
        if backend.name != "sqlite":
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_an_export_holds_every_row_of_one_tenant_and_none_of_another(database, tenants):
    lines = await _export(database, "alfa")
    rows = [json.loads(line) for line in lines]
    assert rows[0]["table"] == "tenants" and rows[0]["row"]["slug"] == "alfa"
    for item in rows:
        owner = item["row"]["id"] if item["table"] == "tenants" else item["row"]["tenant_id"]
        assert uuid.UUID(owner) == tenants.a.id, item
    text = "\n".join(lines)
    for foreign in (tenants.b.id, tenants.b.admin_id, tenants.b.member_id, *tenants.b.customer_ids):
        assert str(foreign) not in text
    written: dict[str, int] = {}
    for item in rows:
        written[item["table"]] = written.get(item["table"], 0) + 1
    counts = await _counts(database, tenants.a.id)
    assert written == {table: n for table, n in counts.items() if n}
    assert {"tenants", "tenant_users", "customers", "audit_log"} <= set(written)
    assert "staff_assignments" not in written


async def test_an_export_imported_into_an_empty_database_gives_the_same_tenant_back(database, tenants, backend,
                                                                                  tmp_path):
    lines = await _export(database, "alfa")
    async with _empty_database(backend, tmp_path) as other:
        async with other.system() as session:
            tenant = await import_tenant(session, lines, acting=ACTOR)
        assert tenant.id == tenants.a.id
        again = await _export(other, "alfa")
        imported = [line for line in again if '"tenant.imported"' not in line]
        assert len(again) == len(imported) + 1
        assert imported == lines  # the same rows, byte for byte
        async with other.system() as session:  # it works as a tenant: its users read back through the ORM
            from backoffice.tenants.users.models import TenantUser
            users = (await session.execute(select(TenantUser.email).where(
                TenantUser.tenant_id == tenants.a.id))).scalars().all()
        assert sorted(users) == ["admin@alfa.example", "member@alfa.example"]
        with pytest.raises(ValidationFailed, match="already in this database"):  # never twice
            async with other.system() as session:
                await import_tenant(session, lines, acting=ACTOR)
        assert (await _counts(other, tenants.a.id))["customers"] == 2


async def test_an_import_refuses_a_file_that_mixes_tenants_and_writes_nothing(database, tenants, backend, tmp_path):
    mixed = (await _export(database, "alfa")) + (await _export(database, "beta"))[1:2]
    async with _empty_database(backend, tmp_path) as other:
        with pytest.raises(ValidationFailed, match="another tenant"):
            async with other.system() as session:
                await import_tenant(session, mixed, acting=ACTOR)
        assert sum((await _counts(other, tenants.a.id)).values()) == 0


async def test_a_purge_waits_for_suspension_and_grace_then_deletes_one_tenant_and_audits(database, tenants):
    before_b = await _counts(database, tenants.b.id)
    async with database.system() as session:
        alfa = await get_tenant_by_slug(session, "alfa")
        with pytest.raises(ValidationFailed, match="not suspended"):
            await purge_tenant(session, alfa, grace=GRACE, reason="LGPD request 42", acting=ACTOR)
    async with database.system() as session:
        await suspend_tenant(session, await get_tenant_by_slug(session, "alfa"), reason="contract ended",
                             acting=ACTOR)
    frozen = clock.FrozenClock(clock.now())
    previous = clock.use(frozen)
    try:
        frozen.advance(days=29)
        with pytest.raises(ValidationFailed, match="may be purged from"):
            async with database.system() as session:
                await purge_tenant(session, await get_tenant_by_slug(session, "alfa"), grace=GRACE,
                                   reason="LGPD request 42", acting=ACTOR)
        assert (await _counts(database, tenants.a.id))["customers"] == 2  # refused: nothing deleted
        frozen.advance(days=1, minutes=1)
        async with database.system() as session:
            deleted = await purge_tenant(session, await get_tenant_by_slug(session, "alfa"), grace=GRACE,
                                         reason="LGPD request 42", acting=ACTOR)
    finally:
        clock.use(previous)
    assert deleted["customers"] == 2 and deleted["tenants"] == 1 and deleted["tenant_users"] == 2
    after_a = await _counts(database, tenants.a.id)
    assert {table: n for table, n in after_a.items() if n} == {"audit_log": after_a["audit_log"]}
    assert await _counts(database, tenants.b.id) == before_b
    async with database.system() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "tenant.purged"))).scalar_one()
    assert entry.tenant_id == tenants.a.id and entry.reason == "LGPD request 42"
    assert entry.detail["slug"] == "alfa" and entry.detail["rows"]["customers"] == 2


async def test_the_cli_exports_with_a_progress_bar_and_refuses_an_early_purge(database, tenants, tmp_path):
    from tests.conftest import env_for_subprocess
    from tests.web.entry.test_cli import BACKOFFICE_CLI

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            BACKOFFICE_CLI, *args, env=env_for_subprocess(database.settings), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode, out.decode(), err.decode()

    target = tmp_path / "alfa.jsonl"
    code, _, err = await cli("tenants", "export", "alfa", "--output", str(target))
    assert code == 0, err
    assert "Exporting alfa" in err and f"exported {len(await _export(database, 'alfa'))} rows" in err
    assert target.read_text().splitlines() == await _export(database, "alfa")
    code, _, err = await cli("tenants", "purge", "alfa", "--reason", "LGPD", "--yes")
    assert code == 2 and "error: slug: alfa is not suspended" in err
    assert (await _counts(database, tenants.a.id))["customers"] == 2


async def test_secrets_leave_in_an_export_encrypted_as_stored(database, tenants):
    from backoffice.tenants.webhooks.service import create_endpoint

    settings = database.settings.model_copy(update={"allow_private_targets": True})
    async with database.provider(tenants.a.id) as session:
        _, secret = await create_endpoint(session, url="http://127.0.0.1:9/hook", acting=ACTOR, settings=settings)
    lines = await _export(database, "alfa")
    [endpoint] = [json.loads(line)["row"] for line in lines if json.loads(line)["table"] == "webhook_endpoints"]
    assert secret not in "\n".join(lines)
    assert endpoint["secrets"] and secret not in json.dumps(endpoint["secrets"])
    assert "gAAAAA" in json.dumps(endpoint["secrets"])  # a Fernet token (version byte 0x80), as stored
