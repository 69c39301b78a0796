"""The platform's start page at ``/``: where a person picks where to sign in.

A front-office user types their company's address (the slug in ``/<slug>/``, as their welcome e-mail
shows it) and lands on its portal; the provider's staff follow the link to the console. On a company's
own host name ``/`` is that company's portal instead (``web/portal/hosts.py`` routes it before this)."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.response import Redirect

from backoffice.tenants.registry.branding import DEFAULT_BRANDING
from backoffice.tenants.registry.service import RESERVED_SLUGS, SLUG
from backoffice.web.error_pages import reader_locale
from backoffice.web.portal.render import environment


@get("/", name="home", include_in_schema=False)
async def home(request: Request, company: str = "") -> Response:
    wanted = company.strip().lower().strip("/")
    problem = None
    if wanted:
        if SLUG.match(wanted) and wanted not in RESERVED_SLUGS:
            return Redirect(f"/{wanted}/", status_code=303)  # the portal answers a styled 404 if it is unknown
        problem = "A company address has only lower-case letters, digits and hyphens, as in aurora or casa-do-pao."
    locale = reader_locale(request, None)
    body = environment(locale).get_template("home.html").render(
        {"locale": locale, "company": company[:100], "problem": problem, "brand": DEFAULT_BRANDING})
    return Response(body, status_code=400 if problem else 200, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store", "x-frame-options": "DENY",
                             "x-content-type-options": "nosniff"})
