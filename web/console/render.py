"""Rendering console pages: the portal's Jinja2 environments (autoescaped, one per locale, with gettext) and
the console's own frame: the signed-in staff member, the nav, the CSRF token and the staff's language.

The language is the staff member's choice kept in the staff session (``POST /staff/locale``), pt-BR until
they choose. Handlers call ``render(request, "console/x.html", **context)``; templates extend
``console/base.html`` and fill the ``title`` and ``content`` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Request, Response
from litestar.utils.scope.state import ScopeState

from backoffice.tenants.policies.templates import format_datetime
from backoffice.web.console.session import SCOPE_STAFF, session_data
from backoffice.web.portal.refusals import readable
from backoffice.web.portal.render import DEFAULT_LOCALE, LOCALES, environment, translations

# The provider's own clock for the console's dates (each tenant's pages may show its own zone).
CONSOLE_TZ = "America/Sao_Paulo"
HEADERS = {"cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "same-origin",
           "x-content-type-options": "nosniff"}


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    href: str


def console_locale(request: Request) -> str:
    chosen = session_data(request).get("locale")
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


def gettext_for(request: Request):
    return translations(console_locale(request)).gettext


def nav(request: Request) -> list[NavItem]:
    _ = gettext_for(request)
    return [
        NavItem("overview", _("Overview"), "/staff/"),
        NavItem("tenants", _("Companies"), "/staff/tenants"),
        NavItem("onboarding", _("New company"), "/staff/onboarding"),
        NavItem("people", _("People"), "/staff/people"),
        NavItem("feedback", _("Feedback"), "/staff/feedback"),
        NavItem("audit", _("Audit"), "/staff/audit"),
    ]


def _section(path: str) -> str:
    rest = path.removeprefix("/staff").strip("/")
    first = rest.split("/", 1)[0] if rest else ""
    return {"": "overview", "tenants": "tenants", "onboarding": "onboarding", "people": "people",
            "feedback": "feedback", "audit": "audit"}.get(first, first)


def csrf_token(request: Request) -> str:
    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else ""


def render(request: Request, template_name: str, *, status_code: int = 200, **context: Any) -> Response:
    locale = console_locale(request)
    values = {
        "locale": locale, "csrf_token": csrf_token(request), "staff": request.scope.get(SCOPE_STAFF),
        "nav": nav(request), "section": _section(request.url.path), "request_path": request.url.path,
        "request_query": request.url.query, "staff_sso": bool(getattr(request.app.state, "settings", None)
                                                              and request.app.state.settings.staff_oidc_issuer),
        "when": lambda value: format_datetime(value, CONSOLE_TZ, locale) if isinstance(value, datetime) else "",
        # A stored failure reason (a dead letter's, an unmatched event's) in the staff member's language.
        "readable": lambda text: readable(text, translations(locale).gettext) if text else "",
        **context,
    }
    body = environment(locale).get_template(template_name).render(values)
    return Response(body, status_code=status_code, media_type="text/html; charset=utf-8", headers=HEADERS)
