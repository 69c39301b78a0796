"""The Litestar application: health, the tenant portal, and (as they land) the API and webhook intake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dramatiq
from litestar import Litestar
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from backoffice.platform.db.session import Database
from backoffice.platform.settings import Settings, get_settings
from backoffice.platform.worker.broker import build_broker
from backoffice.web.errors import EXCEPTION_HANDLERS
from backoffice.web.api.v1 import api_lifespan, api_router, openapi_config
from backoffice.web.request_log import request_log_middleware, send_request_id
from backoffice.web.health import healthz, metrics_endpoint, readyz
from backoffice.web.home import home
from backoffice.web.clients import trusted_proxy_middleware
from backoffice.web.console import build_console_router
from backoffice.web.console.session import STAFF_STORE, staff_store
from backoffice.web.hooks import receive_hook
from backoffice.web.input_rules import InputRuleMiddleware
from backoffice.web.portal import portal_router
from backoffice.web.portal.hosts import TenantHostApp
from backoffice.web.portal.live import live_lifespan
from backoffice.web.portal.sessions import csrf_config, same_origin_middleware, session_config, session_store

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


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

    # TenantHostApp: a Litestar that serves a tenant's portal at / on the tenant's own host name.
    return TenantHostApp(
        route_handlers=[healthz, readyz, metrics_endpoint, home, api_router, receive_hook, portal_router,
                        build_console_router(settings),
                        create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)],
        lifespan=[lifespan, api_lifespan, live_lifespan],
        stores={"portal_sessions": session_store(settings), STAFF_STORE: staff_store(settings)},
        # Outermost first: the client's real address and scheme (web/clients.py), the input rule (no NUL,
        # bounded text, nesting and numbers: web/input_rules.py) before anything reads the request, then the
        # portal's Origin/Referer check (sessions.py); the CSRF token check sits inside, around each route.
        middleware=[request_log_middleware, trusted_proxy_middleware(settings), InputRuleMiddleware, same_origin_middleware(settings),
                    session_config(settings).middleware],
        csrf_config=csrf_config(settings),
        on_startup=on_startup or [],
        on_shutdown=on_shutdown or [],
        openapi_config=openapi_config(),
        before_send=[send_request_id],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        logging_config=None,
        debug=False,
    )

