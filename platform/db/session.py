"""Engines and sessions, and the one door to tenant data.

``Database.tenant(tenant_id)`` opens a session bound to one tenant. Every ORM query it runs on a
:class:`TenantOwned` model is filtered to that tenant, every new tenant-owned row is stamped with it (a row
for another tenant is refused), and on PostgreSQL every transaction starts with
``set_config('app.tenant_id', ..., true)`` (the ``SET LOCAL`` form: it ends with the transaction, so a
pooled connection never carries one tenant into the next request), under which Row-Level Security
policies filter again. A session with no tenant sees no tenant-owned rows at all: closed when unset.

``Database.provider(tenant_id)`` is the same tenant door for work the provider does in one tenant (staff,
the CLI, the workers' jobs): it connects as the system role and takes the app role for each transaction
(``set_config('role', ..., true)``, i.e. ``SET LOCAL ROLE``), so Row-Level Security still walls it into the
tenant, while the audit log knows the connection is the provider's and accepts provider actors (staff, CLI,
the platform) from it. A tenant's own request (``Database.tenant``) may record only the tenant's principals.

``Database.system()`` is the cross-tenant door for the relay, the scheduler and provider-wide views; it
connects with the system role and must filter explicitly. Provider tables (staff, their assignments and
tokens) are reachable through it only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Row, event, false, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, with_loader_criteria
from sqlalchemy.pool import NullPool

from backoffice.platform import metrics
from backoffice.platform.db.base import TenantOwned
from backoffice.platform.db.retry import again_if_disconnected
from backoffice.platform.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

TENANT_KEY = "tenant_id"
SYSTEM_KEY = "system"
# Set on provider sessions: the role each of their transactions takes (the app role's name).
PROVIDER_KEY = "provider_role"


class NotFound(LookupError):
    """The row does not exist for this tenant (a missing row and a foreign row look the same)."""

    def __init__(self, model: type, ident: Any) -> None:
        super().__init__(f"{model.__name__} {ident} not found")
        self.model = model
        self.ident = ident


class TenantMismatch(RuntimeError):
    """An attempt to write a row of another tenant through a tenant-bound session."""


class ScopedSession(Session):
    """The sync session behind every AsyncSession; its events implement the tenant scope."""


@event.listens_for(ScopedSession, "do_orm_execute")
def _scope_queries(state) -> None:
    if state.session.info.get(SYSTEM_KEY) or not (state.is_select or state.is_update or state.is_delete):
        return
    tenant_id = state.session.info.get(TENANT_KEY)
    if tenant_id is None:
        criteria = with_loader_criteria(TenantOwned, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(TenantOwned, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)
    state.statement = state.statement.options(criteria)


@event.listens_for(ScopedSession, "before_flush")
def _stamp_tenant(session: Session, flush_context, instances) -> None:
    if session.info.get(SYSTEM_KEY):
        for obj in session.new:
            if isinstance(obj, TenantOwned) and obj.tenant_id is None:
                raise TenantMismatch(f"{type(obj).__name__} written through the system session without tenant_id")
        return
    tenant_id = session.info.get(TENANT_KEY)
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantOwned):
            continue
        if tenant_id is None:
            raise TenantMismatch(f"{type(obj).__name__} written without a tenant in scope")
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise TenantMismatch(f"{type(obj).__name__} of another tenant written in tenant {tenant_id}")


@event.listens_for(ScopedSession, "after_begin")
def _set_tenant_guc(session: Session, transaction, connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    tenant_id = session.info.get(TENANT_KEY)
    # Always set it, empty when unset: policies treat '' as no tenant (closed).
    tenant = str(tenant_id) if tenant_id else ""
    role = session.info.get(PROVIDER_KEY)
    if role:  # one round trip for both; both end with the transaction
        connection.execute(text("SELECT set_config('app.tenant_id', :tenant, true), set_config('role', :role, true)"),
                           {"tenant": tenant, "role": role})
    else:
        connection.execute(text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant})


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _engine(url: str, settings: Settings, *, autocommit: bool = False) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite":
        ensure_sqlite_dir(url)
        engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # SQLAlchemy, not the driver, opens transactions (see _sqlite_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection) -> None:
            # A deferred transaction that reads and then writes fails with "database is locked" when
            # another writer committed in between (busy_timeout cannot help); taking the write lock up
            # front makes concurrent writers (web, worker threads, scheduler) queue instead.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        # The one-statement calls wait for one of theirs rather than open a connection to close it again at
        # once: under a burst, an overflow connection per call was a connect (and a server process) each.
        max_overflow=0 if autocommit else settings.db_pool_size,
        # No pre-ping: it costs a round trip on every checkout. A connection the server dropped fails on
        # its first statement instead, which invalidates the pool's older connections, and every unit of
        # work tries that statement once more (Database._unit, platform/db/retry.py).
        connect_args={"server_settings": {"application_name": "backoffice"}},
        # Set once per connection, not per checkout (an execution option costs CPU on every checkout).
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )


class Database:
    """The process's engines and the doors to them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = _engine(settings.database_url, settings)
        self.system_engine = (
            self.engine
            if settings.system_database_url == settings.database_url
            else _engine(settings.system_database_url, settings)
        )
        metrics.instrument_pool(self.engine, "app")
        if self.system_engine is not self.engine:
            metrics.instrument_pool(self.system_engine, "system")
        self._app_sessions = async_sessionmaker(self.engine, sync_session_class=ScopedSession, expire_on_commit=False)
        self._system_sessions = async_sessionmaker(
            self.system_engine, sync_session_class=ScopedSession, expire_on_commit=False
        )
        self._app_role = make_url(settings.database_url).username or ""
        # Each statement its own transaction, for calls that scope themselves (see call()): a pool of its own,
        # opened on first use (only the web process's single-event intake calls today).
        self.calls_engine = (_engine(settings.database_url, settings, autocommit=True)
                             if self.engine.dialect.name == "postgresql" else None)
        if self.calls_engine is not None:
            metrics.instrument_pool(self.calls_engine, "app_calls")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def tenant_session(self, tenant_id: uuid.UUID) -> AsyncSession:
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("tenant_id must be a UUID")
        return self._app_sessions(info={TENANT_KEY: tenant_id})

    def provider_session(self, tenant_id: uuid.UUID) -> AsyncSession:
        """The tenant door on the system role's connection, under the app role's privileges and RLS."""
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("tenant_id must be a UUID")
        info: dict[str, Any] = {TENANT_KEY: tenant_id}
        if self.system_engine.dialect.name == "postgresql":
            if not self._app_role:
                raise RuntimeError("BACKOFFICE_DATABASE_URL names no role: a provider session cannot take it")
            info[PROVIDER_KEY] = self._app_role
        else:
            info[PROVIDER_KEY] = True
        return self._system_sessions(info=info)

    def anonymous_session(self) -> AsyncSession:
        """App role, no tenant: sees platform tables only (tenant resolution, staff log-in)."""
        return self._app_sessions(info={})

    def system_session(self) -> AsyncSession:
        return self._system_sessions(info={SYSTEM_KEY: True})

    @asynccontextmanager
    async def _unit(self, make: Callable[[], AsyncSession]) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success and rolls back on any error.

        On PostgreSQL the transaction is opened before the caller's first statement (it costs nothing more:
        the tenant setting is its first statement anyway), and opening it is tried once more when the pooled
        connection turned out dead (a restarted server, ``pg_terminate_backend``): the failure invalidates
        every older pooled connection, so the second try runs on a fresh one, and the first request after a
        restart succeeds without a ping on every checkout. SQLite has no pool (NullPool): nothing to check.
        """
        if self.dialect != "postgresql":
            async with make() as session, session.begin():
                yield session
            return

        async def open_transaction() -> AsyncSession:
            session = make()
            try:
                await session.begin()
                await session.connection()
            except BaseException:
                await session.close()
                raise
            return session

        session = await again_if_disconnected(open_transaction)
        async with session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    def tenant(self, tenant_id: uuid.UUID) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work for one tenant: commits on success, rolls back on any error."""
        return self._unit(lambda: self.tenant_session(tenant_id))

    def provider(self, tenant_id: uuid.UUID) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work the provider (staff, the CLI, a worker's job) does in one tenant's data."""
        return self._unit(lambda: self.provider_session(tenant_id))

    def anonymous(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._unit(self.anonymous_session)

    def system(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._unit(self.system_session)

    async def call(self, sql: str, parameters: tuple) -> Row | None:
        """One statement alone in its own transaction, on the app role's pool and without a session: for a
        database function that scopes itself to one tenant for its call (``bo_ingest_event`` sets the tenant
        transaction-locally, and row-level security checks its rows), so a request that writes nothing else
        costs one round trip instead of BEGIN, the tenant setting, the statement and COMMIT. Tried once more
        when the pooled connection turned out dead, as a unit of work's first statement is. PostgreSQL only.
        """
        if self.calls_engine is None:
            raise RuntimeError("Database.call needs PostgreSQL")

        async def once() -> Row | None:
            async with self.calls_engine.connect() as connection:
                return (await connection.exec_driver_sql(sql, parameters)).first()

        return await again_if_disconnected(once)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.calls_engine is not None:
            await self.calls_engine.dispose()
        if self.system_engine is not self.engine:
            await self.system_engine.dispose()


def dialect_insert(session: AsyncSession):
    """``insert`` of the session's dialect, for ``ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite alike."""

    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


def ensure_scope(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Core statements bypass the ORM door: refuse writing for a tenant other than the session's own."""
    scoped = session.info.get(TENANT_KEY)
    if scoped is not None and scoped != tenant_id:
        raise TenantMismatch(f"a write for tenant {tenant_id} through a session bound to {scoped}")


async def get_owned(session: AsyncSession, model: type[T], ident: uuid.UUID) -> T:
    """Fetch one tenant-owned row by id within the session's tenant, or raise NotFound."""
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise NotFound(model, ident)
    row = await session.get(model, (tenant_id, ident))
    if row is None:
        raise NotFound(model, ident)
    return row


async def owned_by_ids(session: AsyncSession, model: type[T], ids: list[uuid.UUID], *, job: str) -> dict[uuid.UUID, T]:
    """Tenant-owned rows by id within the session's tenant, in one statement; an id that is missing (or
    another tenant's: the same thing) is logged and left out. For batch jobs, whose items name rows."""
    found = {row.id: row for row in (await session.execute(select(model).where(model.id.in_(ids)))).scalars()}
    for ident in set(ids) - found.keys():
        log.error("%s: %s %s does not exist for tenant %s", job, model.__name__, ident, session.info.get(TENANT_KEY))
    return found
