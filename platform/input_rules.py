"""The one rule every input obeys, wherever it comes in: API parameters and bodies, portal forms, provider
webhooks, events from any source.

- Text holds no NUL (U+0000) and no unpaired surrogate (U+D800..U+DFFF), and is at most ``MAX_TEXT``
  characters. PostgreSQL refuses both characters in text and ``jsonb`` (its ``json`` type keeps a
  ``\\u0000`` escape and fails later, when the value is used), and neither can be encoded as UTF-8.
- A JSON document nests at most ``MAX_DEPTH`` levels (deeper, Python's parsers and every recursive walk
  of the value raise RecursionError); its whole numbers fit in 64 bits (a 200,000-digit integer costs
  seconds to convert and cannot be stored) and its other numbers are finite.

Each problem is reported as a :class:`FieldError` naming where it is (``data.items[3].name``, the query
parameter's name), and the input is refused whole (:class:`InputRefused`, a 400) before anything reads it.
The web edge applies the rule to every request (``web/input_rules.py``); event intake applies it again, so
an event from a source that is not a request obeys it too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from backoffice.platform.errors import FieldError, InputRefused

MAX_TEXT = 65_536
MAX_DEPTH = 32
MAX_INT = 2**63 - 1
MAX_PROBLEMS = 20  # reported per input: enough to fix it, bounded for a body built to have millions

TOO_BIG = f"is a whole number beyond 64 bits (at most {MAX_INT} either side of zero)"
_UNWANTED = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str, max_length: int = MAX_TEXT) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    found = _UNWANTED.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000), which text may not hold"
    return "contains an unpaired surrogate (U+D800 to U+DFFF): not valid Unicode text"


def check_texts(pairs: Iterable[tuple[str, str]], *, max_length: int = MAX_TEXT) -> None:
    """Refuse when any (field, text) pair breaks the text rule; a bad field name is reported as the field."""
    errors: list[FieldError] = []
    for field, value in pairs:
        if (why := text_problem(field, max_length)) is not None:
            errors.append(FieldError(_printable(field), f"the name {why}"))
        elif (why := text_problem(value, max_length)) is not None:
            errors.append(FieldError(field, why))
        if len(errors) >= MAX_PROBLEMS:
            break
    if errors:
        raise InputRefused(errors)


class _HugeNumber:
    """A number literal too long to convert, kept as a marker so the walk can name where it was."""


def _parse_int(literal: str) -> int | _HugeNumber:
    return _HugeNumber() if len(literal) > 20 else int(literal)


def _parse_constant(literal: str) -> float:
    return math.nan  # NaN, Infinity, -Infinity: not JSON; refused by the walk with their place


def parse_json(body: bytes | str, *, field: str = "body") -> Any:
    """The decoded document, or :class:`InputRefused` naming the field at fault (or ``field`` when the
    body is not JSON at all). Safe on any input: never RecursionError, never a long number conversion."""
    try:
        value = json.loads(body, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise InputRefused(FieldError(field, f"is nested deeper than {MAX_DEPTH} levels")) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputRefused(FieldError(field, f"is not valid JSON: {_printable(str(error))[:200]}")) from None
    check_value(value, root=field)
    return value


def value_problems(value: Any, *, field: str = "", root: str = "body",
                   max_depth: int = MAX_DEPTH) -> list[FieldError]:
    """Every place (up to ``MAX_PROBLEMS``) where a decoded value breaks the rule, walked without recursion.

    ``field`` prefixes every path: ``""`` for a body, whose fields are then ``name``, ``data.items[3]``,
    and the value itself is called ``root``.
    """
    errors: list[FieldError] = []
    # (value, path, depth); the path is a (parent path, key) chain, spelled out only for a problem
    stack: list[tuple[Any, Any, int]] = [(value, field, 1)]
    while stack and len(errors) < MAX_PROBLEMS:
        node, path, depth = stack.pop()
        kind = type(node)
        why = None
        if kind is str:
            why = text_problem(node)
        elif kind is dict or kind is list:
            if depth > max_depth:
                why = f"is nested deeper than {max_depth} levels"
            elif kind is dict:
                for key, item in reversed(node.items()):  # popped in document order
                    if type(key) is str and (bad_key := text_problem(key)) is not None:
                        errors.append(FieldError(_spell(path) or root, f"has a key that {bad_key}"))
                        continue
                    stack.append((item, (path, key), depth + 1))
            else:
                stack.extend((node[index], (path, index), depth + 1) for index in range(len(node) - 1, -1, -1))
        elif kind is int:
            if not -MAX_INT <= node <= MAX_INT:
                why = TOO_BIG
        elif kind is _HugeNumber:
            why = TOO_BIG
        elif kind is float:
            if not math.isfinite(node):
                why = "is not a finite number"
        if why is not None:
            errors.append(FieldError(_spell(path) or root, why))
    return errors


def check_value(value: Any, *, field: str = "", root: str = "body", max_depth: int = MAX_DEPTH) -> None:
    """Refuse (:class:`InputRefused`) a decoded value that breaks the rule anywhere."""
    if errors := value_problems(value, field=field, root=root, max_depth=max_depth):
        raise InputRefused(errors)


def _spell(path: Any) -> str:
    parts: list[Any] = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(key)
    text = path
    for key in reversed(parts):
        if type(key) is int:
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


def _printable(text: str) -> str:
    """``text`` with the characters the rule forbids escaped, for a message that must itself be sayable."""
    return _UNWANTED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
