"""A connection that dies under the intake's own statement answers 503 with Retry-After, never a bare 500
(issue 18: the fault soak saw one 500 without Retry-After while PostgreSQL restarted).

The intake writes an event and its outbox row straight through asyncpg (``tenants/events/intake.py``), so
a server that drops the connection under that statement raises asyncpg's own error, which SQLAlchemy never
translated: it was not recognised as an outage and became a 500. Here the server terminates the intake's
connection in the middle of the INSERT (a trigger, on a PostgreSQL of the test's own), every time.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from backoffice.platform.availability import unavailable
from backoffice.platform.db.migrate import upgrade
from backoffice.platform.db.session import Database
from backoffice.tenants.apikeys.service import ALL_SCOPES
from backoffice.web.app import create_app
from tests.outages import ThrowawayPostgres, ThrowawayRedis
from tests.web.api.conftest import bearer, make_key
from tests.conftest import make_tenant
from tests.web.test_outages import assert_unavailable, event, settings_for

DIE_UNDER_INSERT = """
CREATE FUNCTION die_under_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    RETURN NEW;
END $$;
CREATE TRIGGER die_under_insert BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION die_under_insert();
"""


@pytest.fixture(scope="module")
def servers():
    postgres = ThrowawayPostgres().init()
    postgres.start()
    redis = ThrowawayRedis().start()
    yield postgres, redis
    redis.stop()
    try:
        postgres.stop()
    except RuntimeError:
        pass
    postgres.remove()


async def test_a_connection_dropped_under_the_intake_statement_is_a_503_with_retry_after(servers, tmp_path):
    postgres, redis = servers
    settings = settings_for(postgres, redis, tmp_path)
    await asyncio.to_thread(upgrade, settings)
    database = Database(settings)
    try:
        tenant = await make_tenant(database, "alfa", "11.222.333/0001-81", [("Casa do Pão", "45.723.174/0001-10")])
        key = bearer(await make_key(database, tenant.id, scopes=ALL_SCOPES))
    finally:
        await database.dispose()
    admin = await asyncpg.connect(postgres.url("postgres", "postgres").replace("+asyncpg", ""))
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            assert (await client.post("/api/v1/events", json=event(0), headers=key)).status_code == 202
            await admin.execute(DIE_UNDER_INSERT)
            assert_unavailable(await client.post("/api/v1/events", json=event(1), headers=key))
            assert_unavailable(await client.post("/api/v1/events/batch", json={"events": [event(2)]}, headers=key))
            await admin.execute("DROP TRIGGER die_under_insert ON events")
            after = await client.post("/api/v1/events", json=event(3), headers=key)
            assert after.status_code == 202, after.text  # the dead connection was not handed out again
    finally:
        await admin.close()


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process"),
    asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
])
def test_the_drivers_own_outage_errors_are_outages(error):
    assert unavailable(error)


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.exceptions.InterfaceError("the server expects 3 arguments for this query, 2 were passed"),
])
def test_the_drivers_other_errors_are_bugs(error):
    assert not unavailable(error)

