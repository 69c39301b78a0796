"""The demo seed moves its tenants' clocks, which a deployment refuses unless it says it is not production:
on PostgreSQL the test settings leave BACKOFFICE_ENVIRONMENT unset (production), so the seed runs through
a ``Database`` on the same data whose settings say ``test``, as a staging or demo deployment's would."""

from __future__ import annotations

from backoffice.platform.db.session import Database
from backoffice.web.entry.demo import DemoLogin, seed_demo


async def seed_demo_for_test(database: Database) -> list[DemoLogin]:
    if database.settings.environment != "production":
        return await seed_demo(database)
    seeding = Database(database.settings.model_copy(update={"environment": "test"}))
    try:
        return await seed_demo(seeding)
    finally:
        await seeding.dispose()
