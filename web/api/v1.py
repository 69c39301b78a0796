"""/api/v1 assembled: the tenant API's routes behind its key, rate limit and idempotency layers, and the
OpenAPI 3.1 document (``/api/v1/schema/openapi.json``, rendered at ``/api/v1/schema``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from backoffice.platform.ratelimit import build_rate_limiter
from backoffice.web.api import billing, customers, events, inbox, keys, routines, webhooks
from backoffice.web.api.auth import ApiKeyMiddleware, CredentialsInUrlMiddleware, require_scope
from backoffice.web.api.common import provide_principal, provide_session
from backoffice.web.api.idempotency import IdempotencyMiddleware
from backoffice.web.api.staff.routes import staff_router

MAX_BODY = 2 * 1024 * 1024

tenant_api = Router(
    "/",
    route_handlers=[customers.router, billing.router, events.router, inbox.router, keys.router, webhooks.router,
                    routines.router],
    # Outermost first: who is calling, their rate limit and the route's scope, then idempotency (so a replay
    # is only answered to a key that may make the request), then the route.
    middleware=[ApiKeyMiddleware, IdempotencyMiddleware],
    guards=[require_scope],
    dependencies={"principal": Provide(provide_principal, sync_to_thread=False), "session": Provide(provide_session)},
    security=[{"apiKey": []}],
)

api_router = Router("/api/v1", route_handlers=[tenant_api, staff_router], request_max_body_size=MAX_BODY,
                    middleware=[CredentialsInUrlMiddleware])


REDOC_JS = "/static/vendor/redoc/redoc.standalone.js"
NO_FAVICON = "<link rel='icon' href='data:,'>"
# Redoc's attribution names a logo on its CDN: the page's policy keeps every fetch on our own origin (its
# search worker starts from a blob: URL), so the browser never asks a third party for anything.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
DOCS_STYLE = ("<style>body { margin: 0; padding: 0 }</style>"
              f'<meta http-equiv="Content-Security-Policy" content="{DOCS_POLICY}">')


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Back office API",
        version="1.0.0",
        description="The tenant API: authenticate with `Authorization: Bearer bo_live_...` (a key in the URL, "
                    "such as `?api_key=`, is refused with 400). Errors are RFC 9457 problem details.\n\n"
                    "POST accepts an `Idempotency-Key` header: a retry by the same API key with the same key and "
                    "body within 24 h gets the first answer again, with `Idempotent-Replayed: true`; the scope "
                    "is checked first, and another API key never gets this key's answers. A one-time secret "
                    "(a new API key, a webhook signing secret) is shown only in the first answer: a replay has "
                    "it as `null` and names the field in `Idempotent-Secret-Withheld` (the object was created; "
                    "roll or rotate if the secret was lost).",
        path="/api/v1/schema",
        # The reference is rendered by Redoc, served from our own /static (web/static/vendor/README.md says which
        # version): the page works with no internet, and no third party learns who reads our API docs.
        render_plugins=[RedocRenderPlugin(js_url=REDOC_JS, google_fonts=False, path="/", favicon=NO_FAVICON,
                                         style=DOCS_STYLE)],
        components=Components(security_schemes={
            "apiKey": SecurityScheme(type="http", scheme="bearer", description="An API key (bo_live_...)."),
            "staffToken": SecurityScheme(type="http", scheme="bearer",
                                         description="A staff token (bo_staff_) from POST /api/v1/staff/tokens."),
        }),
        use_handler_docstrings=True,
    )


@asynccontextmanager
async def api_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The per-key rate limiter: Redis when configured, in process in the embedded mode."""
    app.state.rate_limiter = build_rate_limiter(app.state.settings)
    try:
        yield
    finally:
        await app.state.rate_limiter.close()
