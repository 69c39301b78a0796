"""Each request's log context and its one access line (``platform/logs.py``).

The request id is the caller's ``X-Request-ID`` when it is a plain token (letters, digits, ``-_.:``, up to
64), else a new one; it is sent back in the same header. The access line names the route's template
(``/api/v1/events/{event_id:uuid}``), never the path or the query string, which may carry tokens.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backoffice.platform import logs, metrics

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
log = logging.getLogger("backoffice.request")


SCOPE_KEY = "backoffice.request_id"


def request_log_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope[SCOPE_KEY] = request_id  # type: ignore[literal-required]  (read by ``send_request_id``)
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with logs.scope(request_id=request_id):
            try:
                await app(scope, receive, send_with_status)
            except Exception as error:  # answered by the app's exception handlers, outside this middleware
                status = getattr(error, "status_code", 500)
                raise
            finally:
                metrics.HTTP_REQUESTS.labels(scope.get("method", ""), scope.get("path_template") or "unrouted",
                                             str(status)).inc()
                log.info("request", extra={"method": scope.get("method"), "route": scope.get("path_template"),
                                           "status": status,
                                           "duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    return middleware


async def send_request_id(message: Message, scope: Scope) -> None:
    """``before_send`` hook: every response, an error page too, names its request."""
    request_id = scope.get(SCOPE_KEY)  # type: ignore[call-overload]
    if message["type"] == "http.response.start" and request_id:
        message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
