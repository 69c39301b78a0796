"""Every portal string has its pt-BR translation (the default locale), and the catalogue compiles."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from backoffice.web.portal.render import LOCALE_DIR, TEMPLATES, translations

ROOT = Path(__file__).resolve().parents[3]
CALL = re.compile(r"""\b_\((["'])(.+?)\1""")
PLURAL = re.compile(r"""\bngettext\((["'])(.+?)\1,\s*(["'])(.+?)\3""")


def _used() -> set[str]:
    sources = [*TEMPLATES.rglob("*.html"), *(ROOT / "web" / "portal").glob("*.py")]
    return {match.group(2) for path in sources for match in CALL.finditer(path.read_text())}


def test_every_portal_string_is_translated_to_pt_br():
    with (LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {message.id for message in catalog if message.id and message.string}
    used = _used()
    assert len(used) > 50
    missing = sorted(used - translated)
    assert not missing, f"add to web/locale/pt_BR/LC_MESSAGES/messages.po: {missing}"
    plurals = {(m.group(2), m.group(4)) for path in TEMPLATES.rglob("*.html") for m in PLURAL.finditer(path.read_text())}
    translated_plurals = {message.id for message in catalog
                          if isinstance(message.id, tuple) and all(message.string)}
    assert not plurals - translated_plurals, f"add the plural forms: {sorted(plurals - translated_plurals)}"
    assert translations("pt-BR").gettext("Log in") == "Entrar"
    assert translations("en").gettext("Log in") == "Log in"
