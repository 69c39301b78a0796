"""Errors as RFC 9457 problem details (``application/problem+json``), naming the field at fault."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backoffice.platform.availability import RETRY_AFTER_SECONDS, unavailable
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.registry.service import TenantNotFound, TenantSuspended
from backoffice.web.error_pages import SUSPENDED, UNKNOWN_COMPANY, error_page, wants_html

PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM)


def tenant_not_found(request: Request, exc: TenantNotFound) -> Response:
    if wants_html(request):
        return error_page(request, 404, trouble=UNKNOWN_COMPANY)
    return problem(404, "Not Found", "No company with this address exists on the platform.")


def tenant_suspended(request: Request, exc: TenantSuspended) -> Response:
    detail = (
        f"Access to {exc.tenant.display_name} is suspended. Its data is kept; "
        "contact your back-office provider to restore access."
    )
    if wants_html(request):
        return error_page(request, 403, trouble=SUSPENDED, tenant=exc.tenant)
    return problem(403, "Tenant suspended", detail, tenant=exc.tenant.slug)


def not_found(request: Request, exc: NotFound | NotFoundException) -> Response:
    if wants_html(request):
        return error_page(request, 404)
    return problem(404, "Not Found", "The resource does not exist.")


def validation_failed(request: Request, exc: ValidationFailed) -> Response:
    if wants_html(request):
        return error_page(request, exc.status, details=[f"{e.field}: {e.message}" for e in exc.errors])
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    title = "Conflict" if exc.status == 409 else "Invalid input"
    return problem(exc.status, title, str(exc), errors=errors)


def litestar_validation(request: Request, exc: ValidationException) -> Response:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [{"field": str(item.get("key", "")), "message": str(item.get("message", ""))} for item in extra]
    return problem(400, "Invalid request", exc.detail, errors=errors)


def http_error(request: Request, exc: HTTPException) -> Response:
    headers = exc.headers or {}
    if wants_html(request):
        return error_page(request, exc.status_code, headers=dict(headers))
    response = problem(exc.status_code, exc.detail or "Error")
    response.headers.update(headers)
    return response


def internal_error(request: Request, exc: Exception) -> Response:
    # Not request.logger: it raises when the app has no Litestar logging_config (ours has none, the
    # process configures logging), which turned every 500 into an empty body and an unlogged error.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if wants_html(request):
        return error_page(request, HTTP_500_INTERNAL_SERVER_ERROR)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")


def dependency_error(request: Request, exc: Exception) -> Response:
    """PostgreSQL or Redis cannot be reached (down, restarting, a dropped connection, a full pool): 503 with
    Retry-After, on every route (the API's intake and the provider webhooks first: their senders retry on
    5xx and read Retry-After). Nothing was acknowledged, so a retry loses nothing. Any other database or
    Redis error is a bug: 500, logged with its traceback."""
    if not unavailable(exc):
        return internal_error(request, exc)
    cause = type(getattr(exc, "orig", None) or exc).__name__  # the class only: a statement may carry data
    log.warning("%s %s: a dependency is unavailable (%s: %s); answered 503", request.method, request.url.path,
                type(exc).__name__, cause)
    if wants_html(request):
        return error_page(request, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    response = problem(503, "Service unavailable",
                       "A service the platform depends on is unavailable right now; nothing was stored. Retry later.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


EXCEPTION_HANDLERS = {
    TenantNotFound: tenant_not_found,
    TenantSuspended: tenant_suspended,
    NotFound: not_found,
    NotFoundException: not_found,
    ValidationFailed: validation_failed,
    ValidationException: litestar_validation,
    HTTPException: http_error,
    DBAPIError: dependency_error,
    PoolTimeout: dependency_error,
    RedisError: dependency_error,
    OSError: dependency_error,  # asyncpg's connect raises ConnectionRefusedError and the like bare
    # The intake writes through asyncpg directly: a connection dropped under it raises the driver's own error.
    asyncpg.PostgresError: dependency_error,
    asyncpg.InterfaceError: dependency_error,
    # Litestar groups what failed while closing a request's dependencies (the session's rollback on that same
    # dead connection): an outage when every one of them is.
    ExceptionGroup: dependency_error,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}
