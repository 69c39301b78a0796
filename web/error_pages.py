"""Error pages for people: styled, in the reader's language, branded when the company is known, with a way back.

API clients (``/api``, ``/hooks``, anything that does not ask for HTML) keep RFC 9457 problem details;
a browser gets a page. The reader's language is the one they chose in the portal, else the company's,
else their browser's first choice between Portuguese (the default) and English. Nothing here touches the
database: the page must render while the database is the thing that is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request, Response

from backoffice.tenants.registry.branding import DEFAULT_BRANDING
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.render import DEFAULT_LOCALE, LOCALES, base_path, brand, environment
from backoffice.web.tenancy import TENANT_KEY

MACHINE_PREFIXES = ("/api/", "/hooks/", "/healthz", "/readyz", "/static/")


@dataclass(frozen=True)
class Trouble:
    title: str  # English message ids, translated by the catalogue
    message: str


TROUBLES = {
    400: Trouble("The request could not be read", "Something in the address or the form was not accepted."),
    403: Trouble("Not allowed", "You do not have access to this page."),
    404: Trouble("Page not found", "The page does not exist, or it is not yours to see."),
    405: Trouble("Not allowed", "This page cannot be used this way."),
    409: Trouble("It changed meanwhile", "Someone changed this at the same time. Open the page again and retry."),
    413: Trouble("Too large", "What was sent is larger than this page accepts."),
    422: Trouble("Please check the form", "Some information was not accepted."),
    429: Trouble("Too many attempts", "Wait a few minutes and try again."),
    500: Trouble("Something went wrong on our side", "The error was recorded. Try again in a moment."),
    503: Trouble("Temporarily unavailable", "A service the platform depends on is unavailable. Nothing was lost: "
                 "try again in a moment."),
}
UNKNOWN_COMPANY = Trouble("Company not found", "No company uses this address on the platform. Check the link you "
                          "were given, or look it up below.")
SUSPENDED = Trouble("Access suspended", "Access to %(company)s is suspended. Its data is kept; the company's "
                    "administrators can ask the back-office provider to restore it.")


def wants_html(request: Request) -> bool:
    path = request.url.path
    return "text/html" in request.headers.get("accept", "") and not path.startswith(MACHINE_PREFIXES)


def reader_locale(request: Request, tenant: Tenant | None) -> str:
    session = request.scope.get("session")
    chosen = session.get("locale") if isinstance(session, dict) else None
    if chosen in LOCALES:
        return chosen
    if tenant is not None and tenant.locale in LOCALES:
        return tenant.locale
    for part in request.headers.get("accept-language", "").split(","):
        language = part.split(";")[0].strip().lower()
        if language.startswith("pt"):
            return "pt-BR"
        if language.startswith("en"):
            return "en"
    return DEFAULT_LOCALE


def error_page(request: Request, status: int, *, trouble: Trouble | None = None, tenant: Tenant | None = None,
               details: list[str] | None = None, headers: dict[str, str] | None = None) -> Response:
    tenant = tenant or request.scope.get(TENANT_KEY)
    locale = reader_locale(request, tenant)
    trouble = trouble or TROUBLES.get(status) or TROUBLES[500 if status >= 500 else 400]
    if tenant is not None:
        back, back_label = f"{base_path(request, tenant)}/", "Back to %(company)s"
    elif request.url.path.startswith("/staff"):
        back, back_label = "/staff/", "Back to the staff console"
    else:
        back, back_label = "/", "Back to the start page"
    body = environment(locale).get_template("errors/page.html").render({
        "status": status, "trouble": trouble, "tenant": tenant, "brand": brand(tenant) if tenant else DEFAULT_BRANDING,
        "locale": locale, "details": details or [], "back": back, "back_label": back_label,
        "company": tenant.display_name if tenant else "",
    })
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store", "x-frame-options": "DENY",
                             "x-content-type-options": "nosniff", **(headers or {})})
