"""The demo seed moves its tenants' clocks, which a deployment refuses unless it says it is not production:
on PostgreSQL the test settings leave BACKOFFICE_ENVIRONMENT unset (production), so the seed runs through
a ``Database`` on the same data whose settings say ``test``, as a staging or demo deployment's would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select

from backoffice.platform.db.session import Database
from backoffice.tenants.registry.models import Tenant
from backoffice.web.entry.demo import TENANTS, DemoLogin, seed_demo
from backoffice.web.entry.demo_activity import play_month

T = TypeVar("T")


async def _as_test(database: Database, work: Callable[[Database], Awaitable[T]]) -> T:
    if database.settings.environment != "production":
        return await work(database)
    seeding = Database(database.settings.model_copy(update={"environment": "test"}))
    try:
        return await work(seeding)
    finally:
        await seeding.dispose()


async def seed_demo_for_test(database: Database) -> list[DemoLogin]:
    return await _as_test(database, seed_demo)


async def replay_month_for_test(database: Database) -> None:
    """The seeded month played again over the same data (what a seed stopped halfway would do when started
    again): every webhook the same, every timer and check already done."""
    async def replay(db: Database) -> None:
        async with db.system() as session:
            ids = {t.slug: t.id for t in (await session.execute(select(Tenant))).scalars()}
        await play_month(db, db.settings, {spec["slug"]: ids[spec["slug"]] for spec in TENANTS})

    await _as_test(database, replay)
