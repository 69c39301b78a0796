"""A notification in its reader's language.

A process step renders a notification once, in the company's locale, from the company's templates, and stores
the text with the context it rendered from (``detail``: the kind's context, the tenant's view with its locale,
the reason). A reader whose portal speaks another language gets the kind's template rendered again, from that
stored context, through the same sandboxed renderer (``policies.templates.render``):

- the company's own wording of this kind for the reader's locale, when it wrote one;
- else, when the company wrote no wording of this kind in any locale, the platform's default for the locale;
- else (the company wrote its own words only in its language) the stored text, marked with its language:
  translating a company's own words is not ours to do.

A stored context that no longer renders (a row written before a field became required, a hand-edited row)
shows the stored text: reading a notification never fails because of how it was worded. Nothing is cached
here: the templates come from the reader's own tenant session, per request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.policies.service import current_policy
from backoffice.tenants.policies.templates import CONTEXT, render, resolve_locale
from backoffice.tenants.timeline.messages import stored_in_language

log = logging.getLogger(__name__)

# What a stored context can make the renderer raise (a missing required object, a string where integer cents
# were, an unparsable date, a list that is not one): the stored text is shown instead.
_STALE = (TemplateError, TypeError, ValueError, KeyError, AttributeError, ArithmeticError, RecursionError)


@dataclass(frozen=True)
class Shown:
    title: str
    body: str
    lang: str  # the language the words are in (the page marks them with it when it is not the page's)


async def company_wording(session: AsyncSession) -> Mapping[str, Any]:
    """The session's tenant's template overrides (its current policy), by kind and locale."""
    _version, policy = await current_policy(session)
    return policy.templates


def written_in(item: Notification, company_locale: str | None) -> str:
    """The locale the stored text was rendered in: the tenant's, as the step saw it (the stored tenant view),
    or the company's today for a row that lacks it."""
    tenant = (item.detail or {}).get("tenant")
    stored = tenant.get("locale") if isinstance(tenant, Mapping) else None
    return resolve_locale(stored or company_locale)


def in_reader_locale(item: Notification, locale: str, wording: Mapping[str, Any] | None, *,
                     company_locale: str | None, reason: str | None = None) -> Shown:
    """``item``'s title and body for a reader of ``locale`` (``reason``: the notification's reason already in
    that locale, for templates that quote it)."""
    written = written_in(item, company_locale)
    stored = Shown(item.title, item.body, written)
    locale = resolve_locale(locale)
    if locale == written or item.kind not in CONTEXT:
        return stored
    own = (wording or {}).get(item.kind) or {}
    if own and locale not in own:
        return stored
    detail = item.detail if isinstance(item.detail, Mapping) else {}
    context = {**detail, "reason": reason}
    task = detail.get("task")
    if isinstance(task, Mapping) and isinstance(task.get("said"), Mapping):  # a task the platform titled
        context["task"] = {**task, "title": stored_in_language(task["said"], locale) or task.get("title")}
    try:
        rendered = render(item.kind, locale, context, {item.kind: own} if own else None)
    except _STALE as error:
        log.warning("notification %s (%s) does not render in %s from its stored context, shown as stored: %s",
                    item.id, item.kind, locale, error)
        return stored
    return Shown(rendered.title, rendered.body, locale)
