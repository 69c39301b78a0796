"""Rendering portal pages: autoescaped Jinja2, one environment per locale with its gettext catalogue.

Catalogues are ``web/locale/<locale>/LC_MESSAGES/messages.po``, kept in the repository and compiled in
memory with Babel the first time a locale is used, so there is no build step. Message ids are English;
English therefore needs no catalogue, and a string missing from pt-BR shows in English rather than blank.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.utils.scope.state import ScopeState

from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.policies.templates import format_date, format_datetime, format_money, format_tax_id, label
from backoffice.tenants.registry.branding import DEFAULT_BRANDING
from backoffice.tenants.registry.models import Tenant
from backoffice.web.portal.wording import said, said_reason, said_task

WEB = Path(__file__).resolve().parent.parent
TEMPLATES = WEB / "templates"
LOCALE_DIR = WEB / "locale"
LOCALES = ("pt-BR", "en")
DEFAULT_LOCALE = "pt-BR"


@cache
def translations(locale: str) -> NullTranslations:
    path = LOCALE_DIR / locale.replace("-", "_") / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale.replace("-", "_"))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)
    env.filters["money"] = lambda cents: format_money(cents, locale)
    env.filters["tax_id"] = format_tax_id
    env.filters["label"] = lambda code: label(code, locale)
    # What the platform stored as message ids (timeline entries, notifications' reasons), in this locale.
    gettext = translations(locale).gettext
    env.filters["said"] = lambda entry: said(entry, gettext, locale)
    env.filters["said_task"] = lambda task: said_task(task, gettext, locale)
    env.globals["said_reason"] = lambda detail: said_reason(detail, gettext, locale)
    return env


def pick_locale(request: Request, tenant: Tenant) -> str:
    chosen = request.session.get("locale") if request.scope.get("session") else None
    for candidate in (chosen, tenant.locale):
        if candidate in LOCALES:
            return candidate
    return DEFAULT_LOCALE


def base_path(request: Request, tenant: Tenant) -> str:
    """URL prefix of the tenant's portal: "" on the tenant's own host name, "/<slug>" on the platform's."""
    return "" if request.scope.get("backoffice.host_tenant") == tenant.slug else f"/{tenant.slug}"


def brand(tenant: Tenant) -> dict[str, str]:
    return {**DEFAULT_BRANDING, **(tenant.branding or {})}


def lifecycle_badges(locale: str) -> dict[str, str]:
    _ = translations(locale).gettext
    return {Lifecycle.ONBOARDING.value: _("onboarding"), Lifecycle.ACTIVE.value: _("active"),
            Lifecycle.IN_GRACE.value: _("in grace"), Lifecycle.BLOCKED.value: _("blocked"),
            Lifecycle.TERMINATED.value: _("terminated")}


def page(request: Request, tenant: Tenant, template: str, *, status_code: int = 200, **context: Any) -> Response:
    locale = pick_locale(request, tenant)
    tz = tenant.timezone
    csrf = ScopeState.from_scope(request.scope).csrf_token
    values = {
        "tenant": tenant, "brand": brand(tenant), "base": base_path(request, tenant), "locale": locale,
        "csrf_token": csrf if isinstance(csrf, str) else "", "request_path": request.url.path,
        "when": lambda value: format_datetime(value, tz, locale), "day": lambda value: format_date(value, tz, locale),
        "badges": lifecycle_badges(locale), **context,
    }
    body = environment(locale).get_template(template).render(values)
    return Response(body, status_code=status_code, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store", "x-frame-options": "DENY",
                             "referrer-policy": "same-origin", "x-content-type-options": "nosniff"})
