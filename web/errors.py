"""Errors as RFC 9457 problem details (``application/problem+json``), naming the field at fault."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.registry.service import TenantNotFound, TenantSuspended

PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")


def tenant_not_found(request: Request, exc: TenantNotFound) -> Response:
    return problem(404, "Not Found", "No company with this address exists on the platform.")


def tenant_suspended(request: Request, exc: TenantSuspended) -> Response:
    detail = (
        f"Access to {exc.tenant.display_name} is suspended. Its data is kept; "
        "contact your back-office provider to restore access."
    )
    if _wants_html(request):
        return Response(
            f"<!doctype html><html lang='en'><meta charset='utf-8'><title>Suspended</title>"
            f"<main><h1>Access suspended</h1><p>{_escape(detail)}</p></main></html>",
            status_code=403,
            media_type=MediaType.HTML,
        )
    return problem(403, "Tenant suspended", detail, tenant=exc.tenant.slug)


def not_found(request: Request, exc: NotFound | NotFoundException) -> Response:
    return problem(404, "Not Found", "The resource does not exist.")


def validation_failed(request: Request, exc: ValidationFailed) -> Response:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    title = "Conflict" if exc.status == 409 else "Invalid input"
    return problem(exc.status, title, str(exc), errors=errors)


def litestar_validation(request: Request, exc: ValidationException) -> Response:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [{"field": str(item.get("key", "")), "message": str(item.get("message", ""))} for item in extra]
    return problem(400, "Invalid request", exc.detail, errors=errors)


def http_error(request: Request, exc: HTTPException) -> Response:
    headers = exc.headers or {}
    response = problem(exc.status_code, exc.detail or "Error")
    response.headers.update(headers)
    return response


def internal_error(request: Request, exc: Exception) -> Response:
    # Not request.logger: it raises when the app has no Litestar logging_config (ours has none, the
    # process configures logging), which turned every 500 into an empty body and an unlogged error.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


EXCEPTION_HANDLERS = {
    TenantNotFound: tenant_not_found,
    TenantSuspended: tenant_suspended,
    NotFound: not_found,
    NotFoundException: not_found,
    ValidationFailed: validation_failed,
    ValidationException: litestar_validation,
    HTTPException: http_error,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}
