"""The Litestar application: health, the tenant portal, and (as they land) the API and webhook intake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dramatiq
from litestar import Litestar
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings, get_settings
from backoffice.platform.worker.broker import build_broker
from backoffice.web.errors import EXCEPTION_HANDLERS
from backoffice.web.health import healthz, readyz
from backoffice.web.portal import portal_router

TEMPLATES = Path(__file__).parent / "templates"


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    broker: dramatiq.Broker | None = None,
    on_startup: list | None = None,
    on_shutdown: list | None = None,
) -> Litestar:
    """Build the app. The database and broker are created in the lifespan unless given (embedded mode
    passes the ones its worker threads share; tests pass their own)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        own_database = database is None
        app.state.settings = settings
        app.state.database = database or Database(settings)
        app.state.broker = broker or build_broker(settings, database=app.state.database)
        try:
            yield
        finally:
            if own_database:
                await app.state.database.dispose()

    return Litestar(
        route_handlers=[healthz, readyz, portal_router],
        lifespan=[lifespan],
        on_startup=on_startup or [],
        on_shutdown=on_shutdown or [],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        logging_config=None,
        debug=False,
    )


def app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory backoffice.web.app:app_from_env``."""
    logging.basicConfig(level=get_settings().log_level)
    return create_app()
