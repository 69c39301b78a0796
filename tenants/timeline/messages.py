"""What the platform says on a customer's timeline, kept as a message id with parameters so that each reader
sees it in their own language.

``Msg("Charge of {due} is overdue", due=Day(charge.due_date))`` is a ``str`` (the English sentence, what the
``title``/``reason`` columns, the effect records, the audit log and the API keep) that also carries its message
id and parameters. The id is the English sentence with ``{named}`` placeholders and is the msgid of the
portal's Babel catalogue (``web/locale/pt_BR/LC_MESSAGES/messages.po``); ``web/portal/wording.py`` renders the
stored form in the reader's locale. Because a ``Msg`` is a ``str``, code that only passes a reason along
(slices it, puts it in a payload) needs no change; code that composes a sentence around one builds a ``Msg``
with it as a parameter, so the whole sentence still translates.

Parameters are strings and numbers (shown as given: names, plan names, providers' words), or typed values
rendered per locale: ``Day`` (dd/mm/aaaa, "Mar 5, 2026"), ``Money`` (integer cents, "R$ 1.234,56"), ``Stage``
(a lifecycle stage, the portal's badge words), ``Code`` (a code the portal has words for: payment means,
triggers, plan-change directions) and a nested ``Msg``.

Every id must be written as a literal first argument of ``Msg(...)``: ``tests/web/portal/test_wording.py`` reads
those calls out of the source and fails when one has no pt-BR translation.

The catalogues are the portal's (``web/locale``); the composition root hands them over with
:func:`use_catalogues`, so a process step can also say a reason in the company's language inside the texts it
renders from the company's templates (:func:`in_language`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from backoffice.tenants.policies.templates import format_date, format_money, label

log = logging.getLogger(__name__)
Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Day:
    value: date

    def english(self) -> str:
        return self.value.isoformat()

    def stored(self) -> dict[str, Any]:
        return {"date": self.value.isoformat()}


@dataclass(frozen=True)
class Money:
    cents: int

    def english(self) -> str:
        units, rest = divmod(abs(self.cents), 100)
        return f"{'-' if self.cents < 0 else ''}R${units:,}.{rest:02d}"

    def stored(self) -> dict[str, Any]:
        return {"money": self.cents}


# The English words of the lifecycle stages (the portal's badge msgids).
STAGE_WORDS = {"onboarding": "onboarding", "active": "active", "in_grace": "in grace", "blocked": "blocked",
               "terminated": "terminated"}


@dataclass(frozen=True)
class Stage:
    code: str

    def english(self) -> str:
        return STAGE_WORDS.get(self.code, self.code)

    def stored(self) -> dict[str, Any]:
        return {"stage": self.code}


@dataclass(frozen=True)
class Code:
    """A code shown in words (``policies.templates.label``); its English form is the code as written before."""
    code: str

    def english(self) -> str:
        return self.code

    def stored(self) -> dict[str, Any]:
        return {"code": self.code}


class Msg(str):
    """An English sentence that remembers its message id and parameters."""

    id: str
    params: dict[str, Any]

    def __new__(cls, message_id: str, /, **params: Any) -> Msg:
        english = message_id.format(**{name: _english(value) for name, value in params.items()})
        self = super().__new__(cls, english)
        self.id = message_id
        self.params = params
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON form kept on the row (``TimelineEntry.message``)."""
        return {"id": self.id, "params": {name: _stored(value) for name, value in self.params.items()}}


_TYPED = (Day, Money, Stage, Code)


def _english(value: Any) -> Any:
    if isinstance(value, _TYPED):
        return value.english()
    return "" if value is None else value  # a nested Msg formats as its English sentence


def _stored(value: Any) -> Any:
    if isinstance(value, Msg):
        return {"msg": value.stored()}
    if isinstance(value, _TYPED):
        return value.stored()
    if value is None or isinstance(value, int | float):
        return value
    return str(value)  # a plain string (or a str-like such as an enum value): shown as given


def stored_message(title: str, reason: str | None) -> dict[str, Any] | None:
    """What a timeline row keeps of ``title`` and ``reason`` beside their English text (None: neither is a Msg)."""
    message = {}
    if isinstance(title, Msg):
        message["title"] = title.stored()
    if isinstance(reason, Msg):
        message["reason"] = reason.stored()
    return message or None


# --- in a reader's language ----------------------------------------------------------------------------------

_catalogues: Callable[[str], Gettext] | None = None


def use_catalogues(gettext_for: Callable[[str], Gettext]) -> None:
    """The composition root's catalogues: ``gettext_for(locale)`` answers that locale's gettext."""
    global _catalogues
    _catalogues = gettext_for


def say(stored: Mapping[str, Any], gettext: Gettext, locale: str) -> str:
    """One stored message (``{"id": .., "params": {..}}``) in ``locale``: the id through ``gettext``, each
    parameter formatted for the locale (dates, money, stages and codes in words, nested messages in turn)."""
    params = {name: _said(value, gettext, locale) for name, value in (stored.get("params") or {}).items()}
    message_id = str(stored.get("id", ""))
    try:
        return gettext(message_id).format(**params)
    except (KeyError, IndexError, ValueError) as error:
        # A translation whose placeholders do not match its id: the English wording still says it all.
        log.warning("translation of %r does not format (%s); shown in English", message_id, error)
        return message_id.format(**params)


def _said(value: Any, gettext: Gettext, locale: str) -> Any:
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


def in_language(text: str, locale: str) -> str:
    """``text`` in ``locale`` when it is a ``Msg`` and the catalogues were handed over; otherwise as it is."""
    if not isinstance(text, Msg) or _catalogues is None:
        return text
    return say(text.stored(), _catalogues(locale), locale)


def stored_in_language(stored: Mapping[str, Any], locale: str) -> str | None:
    """A stored message (``Msg.stored()``) in ``locale``; None when the catalogues were not handed over."""
    if _catalogues is None:
        return None
    return say(stored, _catalogues(locale), locale)
