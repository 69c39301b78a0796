"""What the platform stored as a message id with parameters (``tenants/timeline/messages.py``), in the reader's
language: the id through the locale's gettext catalogue, each parameter formatted for the locale (dates
dd/mm/aaaa, money R$ 1.234,56, lifecycle stages and codes in the portal's own words, nested messages
translated in turn). A row without a stored message (older rows, people's notes) shows its text as stored.

The templates reach it through the ``said`` filter (``entry|said``: a timeline entry's title and reason) and
``said_reason(detail, fallback)`` (a notification's reason), both installed per locale in ``render.environment``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backoffice.tenants.policies.templates import format_date, format_money, label
from backoffice.tenants.timeline.messages import STAGE_WORDS

log = logging.getLogger(__name__)

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Said:
    title: str
    reason: str | None


def say(stored: Mapping[str, Any], gettext: Gettext, locale: str) -> str:
    """One stored message (``{"id": .., "params": {..}}``) in ``locale``."""
    params = {name: _param(value, gettext, locale) for name, value in (stored.get("params") or {}).items()}
    message_id = str(stored.get("id", ""))
    try:
        return gettext(message_id).format(**params)
    except (KeyError, IndexError, ValueError) as error:
        # A translation whose placeholders do not match its id: the English wording still says it all.
        log.warning("translation of %r does not format (%s); shown in English", message_id, error)
        return message_id.format(**params)


def _param(value: Any, gettext: Gettext, locale: str) -> Any:
    if not isinstance(value, Mapping):
        return "" if value is None else value
    if "msg" in value:
        return say(value["msg"], gettext, locale)
    if "date" in value:
        return format_date(value["date"], None, locale)
    if "money" in value:
        return format_money(value["money"], locale)
    if "stage" in value:
        return gettext(STAGE_WORDS.get(value["stage"], value["stage"]))
    if "code" in value:
        return label(value["code"], locale)
    return str(value)


def said(entry: Any, gettext: Gettext, locale: str) -> Said:
    """A timeline entry's title and reason in ``locale`` (what is not stored as a message: as written)."""
    message = getattr(entry, "message", None) or {}
    title = say(message["title"], gettext, locale) if "title" in message else entry.title
    reason = say(message["reason"], gettext, locale) if "reason" in message else entry.reason
    return Said(title, reason)


def said_reason(detail: Mapping[str, Any] | None, gettext: Gettext, locale: str) -> str:
    """A notification's reason (``detail["reason"]``, with ``detail["said"]["reason"]`` when it was a message)."""
    detail = detail or {}
    stored = (detail.get("said") or {}).get("reason")
    return say(stored, gettext, locale) if stored else str(detail.get("reason") or "")
