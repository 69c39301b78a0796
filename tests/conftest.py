"""Fixtures: real PostgreSQL and Redis, a migrated database per run and backend, two tenants everywhere.

Every test that takes ``database`` runs on PostgreSQL (as the app role, under RLS) and on the embedded
SQLite, unless marked ``postgres_only``. Databases get their schema only through Alembic.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backoffice.platform.audit.service import Actor
from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings
from backoffice.web.entry.wiring import compose
from tests import services

# The tests run what production runs: every registry filled and every port plugged by the composition root.
compose()

RUN_ID = uuid.uuid4().hex[:8]
APP_ROLE, SYSTEM_ROLE = "backoffice_app", "backoffice_system"
SECRET = "test-secret-key-" + "x" * 32
SECRETS_KEYS = "YmFja29mZmljZS10ZXN0cy1zZWNyZXRzLWtleS0zMmI="  # a Fernet key: required on PostgreSQL


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        backend = params.params.get("backend") if params else None
        (dropped if backend == "sqlite" and item.get_closest_marker("postgres_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_service_problems: dict[str, str | None] = {}


def require(name: str) -> None:
    if name not in _service_problems:
        _service_problems[name] = services.ensure(name)
    problem = _service_problems[name]
    if problem:
        if services.in_ci():
            pytest.fail(f"{problem} (CI=true: a missing service is a failure)", pytrace=False)
        pytest.skip(problem)


def pg_url(database: str, user: str) -> str:
    return f"postgresql+asyncpg://{user}@{services.PG_HOST}:{services.PG_PORT}/{database}"


def redis_url(db: int = 15) -> str:
    return f"redis://{services.REDIS_HOST}:{services.REDIS_PORT}/{db}"


async def _admin_execute(*statements: str) -> None:
    engine = create_async_engine(pg_url("postgres", services.PG_ADMIN_USER), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@dataclass
class Backend:
    name: str
    settings: Settings
    owner_url: str


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backoffice")


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def backend(request, tmp_root) -> Backend:
    if request.param == "postgres":
        require("postgres")
        name = f"bo_test_{RUN_ID}"
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
        settings = Settings(
            database_url=pg_url(name, APP_ROLE),
            system_database_url=pg_url(name, SYSTEM_ROLE),
            migration_database_url=pg_url(name, services.PG_ADMIN_USER),
            broker_url="memory://", secret_key=SECRET, secrets_keys=SECRETS_KEYS, data_dir=tmp_root / "pg", db_pool_size=5,
        )
        upgrade(settings)
        request.addfinalizer(lambda: asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
        return Backend("postgres", settings, settings.migration_database_url)
    template = tmp_root / "template.sqlite3"
    settings = Settings(data_dir=tmp_root / "sqlite", database_url=f"sqlite+aiosqlite:///{template}",
                        broker_url="memory://")
    upgrade(settings)
    return Backend("sqlite", settings, settings.database_url)


@pytest.fixture
async def database(backend: Backend, tmp_path) -> AsyncIterator[Database]:
    """A clean, migrated database for one test."""
    if backend.name == "sqlite":
        template = Path(backend.settings.database_url.removeprefix("sqlite+aiosqlite:///"))
        copy = tmp_path / "test.sqlite3"
        shutil.copy(template, copy)
        settings = backend.settings.model_copy(update={
            "database_url": f"sqlite+aiosqlite:///{copy}", "system_database_url": f"sqlite+aiosqlite:///{copy}",
            "migration_database_url": f"sqlite+aiosqlite:///{copy}"})
        db = Database(settings)
    else:
        await _truncate_all(backend.owner_url)
        db = Database(backend.settings)
    try:
        yield db
    finally:
        await db.dispose()


async def _truncate_all(owner_url: str) -> None:
    """Empty every table (the schema stays), as the owner, leaving each one as TRUNCATE would: no pages.

    A test writes a handful of rows to a few of the ~45 tables. TRUNCATE gives every table new files, which
    cost ~100 ms a test (~80 s a run); deleting the rows of the tables that have pages and vacuuming them
    takes ~20 ms. Replica mode skips the foreign-key and append-only triggers, so the order does not matter
    and the audit log empties too (RLS does not apply to the owner). The VACUUM gives the emptied pages back,
    so the next test's rows are stored, and read back by a query with no ORDER BY, in the order they were
    written, as after TRUNCATE: without it a new row could take a freed slot ahead of an older one.
    """
    connection = await asyncpg.connect(owner_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        tables = [row[0] for row in await connection.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
            "AND relname <> 'alembic_version' AND pg_relation_size(oid) > 0")]
        if tables:
            await connection.execute("BEGIN; SET LOCAL session_replication_role = replica; "
                                     + "".join(f'DELETE FROM "{table}"; ' for table in tables) + "COMMIT")
            for table in tables:  # one by one: VACUUM cannot run inside a transaction block
                await connection.execute(f'VACUUM "{table}"')
    finally:
        await connection.close()


@dataclass
class TenantFixture:
    id: uuid.UUID
    slug: str
    admin_id: uuid.UUID
    member_id: uuid.UUID
    customer_ids: list[uuid.UUID]


@dataclass
class TwoTenants:
    a: TenantFixture
    b: TenantFixture


async def make_tenant(database: Database, slug: str, cnpj: str, customers: list[tuple[str, str]]) -> TenantFixture:
    from backoffice.platform.documents import normalize_tax_id
    from backoffice.tenants.customers.models import Customer
    from backoffice.tenants.registry.service import create_tenant
    from backoffice.tenants.users.service import create_tenant_user

    actor = Actor.system("tests")
    async with database.system() as session:
        tenant = await create_tenant(session, slug=slug, display_name=slug.title(), legal_name=f"{slug.title()} Ltda",
                                     cnpj=cnpj, acting=actor)
    async with database.provider(tenant.id) as session:  # the provider sets the company up: a provider actor
        admin = await create_tenant_user(session, email=f"admin@{slug}.example", name=f"Admin {slug}",
                                         role="tenant_admin", password="correct-horse-battery", acting=actor)
        member = await create_tenant_user(session, email=f"member@{slug}.example", name=f"Member {slug}",
                                          role="tenant_member", password="correct-horse-battery", acting=actor)
        ids = []
        for name, tax_id in customers:
            kind, number = normalize_tax_id(tax_id)
            customer = Customer(name=name, tax_id_kind=kind, tax_id=number, email=f"{number}@example.com",
                                account_manager_id=admin.id)
            session.add(customer)
            await session.flush()
            ids.append(customer.id)
    return TenantFixture(tenant.id, slug, admin.id, member.id, ids)


@pytest.fixture
async def tenants(database: Database) -> TwoTenants:
    a = await make_tenant(database, "alfa", "11.222.333/0001-81",
                          [("Casa do Pão", "45.723.174/0001-10"), ("Maria Silva", "529.982.247-25")])
    b = await make_tenant(database, "beta", "34.028.316/0001-03",
                          [("João Pereira", "111.444.777-35"), ("Maria Silva", "529.982.247-25")])
    return TwoTenants(a, b)


@pytest.fixture(scope="session")
def redis_available() -> str:
    require("redis")
    return redis_url()


def env_for_subprocess(settings: Settings) -> dict[str, str]:
    """The environment a CLI subprocess needs to use the same database as the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOFFICE_")}
    env.update({
        "BACKOFFICE_DATABASE_URL": settings.database_url,
        "BACKOFFICE_SYSTEM_DATABASE_URL": settings.system_database_url,
        "BACKOFFICE_MIGRATION_DATABASE_URL": settings.migration_database_url,
        "BACKOFFICE_BROKER_URL": settings.broker_url,
        "BACKOFFICE_DATA_DIR": str(settings.data_dir),
    })
    if settings.secret_key:
        env["BACKOFFICE_SECRET_KEY"] = settings.secret_key
    if settings.secrets_keys:
        env["BACKOFFICE_SECRETS_KEYS"] = settings.secrets_keys
    return env


@pytest.fixture(scope="session", autouse=True)
async def kept_webhook_clients_closed():
    """The webhook lanes' kept-alive clients on the session's event loop are closed at its end, as a worker's
    shutdown closes those of its loop (left to the collector, each prints "Unclosed client session")."""
    from backoffice.tenants.webhooks.port import close_kept

    yield
    await close_kept()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing():
    """argon2id at its production cost (~130 ms a hash on two cores) would be most of the suite's
    time: every tenant fixture hashes four passwords. In this process only, hash with argon2's
    cheapest parameters; the algorithm and the verify path are the same. CLI and demo subprocesses
    keep the production cost."""
    from argon2 import PasswordHasher, profiles

    from backoffice.platform.security import passwords

    production, passwords._hasher = passwords._hasher, PasswordHasher.from_parameters(profiles.CHEAPEST)
    yield
    passwords._hasher = production
