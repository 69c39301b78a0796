"""What the platform stored as a message id with parameters (``tenants/timeline/messages.py``), in the reader's
language: ``say`` formats the id through the locale's gettext catalogue and each parameter for the locale.
A row without a stored message (older rows, people's notes) shows its text as stored.

The templates reach it through the ``said`` filter (``entry|said``: a timeline entry's title and reason), the
``said_task`` filter (``task|said_task``: a task's title and the platform's description) and
``said_reason(detail)`` (a notification's reason), all installed per locale in ``render.environment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backoffice.tenants.timeline.messages import Gettext, say


@dataclass(frozen=True)
class Said:
    title: str
    reason: str | None


def said(entry: Any, gettext: Gettext, locale: str) -> Said:
    """A timeline entry's title and reason in ``locale`` (what is not stored as a message: as written)."""
    message = getattr(entry, "message", None) or {}
    title = say(message["title"], gettext, locale) if "title" in message else entry.title
    reason = say(message["reason"], gettext, locale) if "reason" in message else entry.reason
    return Said(title, reason)


@dataclass(frozen=True)
class SaidTask:
    title: str
    description: str
    # The description is the platform's sentence in the reader's language (otherwise it is the company's text,
    # written once in the company's language: the page marks it with the company's ``lang``).
    description_said: bool


def said_task(task: Any, gettext: Gettext, locale: str) -> SaidTask:
    """A task's title and description in ``locale`` (what is not stored as a message: as written)."""
    message = getattr(task, "message", None) or {}
    title = say(message["title"], gettext, locale) if "title" in message else task.title
    if "description" in message:
        return SaidTask(title, say(message["description"], gettext, locale), True)
    return SaidTask(title, task.description or "", False)


def said_reason(detail: Mapping[str, Any] | None, gettext: Gettext, locale: str) -> str:
    """A notification's reason (``detail["reason"]``, with ``detail["said"]["reason"]`` when it was a message)."""
    detail = detail or {}
    stored = (detail.get("said") or {}).get("reason")
    return say(stored, gettext, locale) if stored else str(detail.get("reason") or "")
