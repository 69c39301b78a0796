"""The console is pt-BR first and English complete: every string of its pages and modules is in the pt-BR
catalogue, and a page in either language shows no words of the other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from babel.messages.pofile import read_po

from backoffice.web.portal.render import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[3]
# The string literal passed to _() (adjacent literals and escaped quotes included), as Python reads it.
LITERAL = r"""(?:"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
CALL = re.compile(r"\b_\(\s*(" + LITERAL + r"(?:\s*" + LITERAL + r")*)")


def test_every_console_string_is_translated_to_pt_br():
    with (LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {message.id for message in catalog if message.id and message.string}
    sources = [*(ROOT / "web" / "templates" / "console").glob("*.html"), *(ROOT / "web" / "console").glob("*.py")]
    used = {ast.literal_eval("(" + match.group(1) + ")") for path in sources for match in CALL.finditer(path.read_text())}
    assert len(used) > 80
    missing = sorted(used - translated)
    assert not missing, f"add to web/locale/pt_BR/LC_MESSAGES/messages.po: {missing}"


async def test_pages_in_pt_br_by_default_and_english_on_request(admin_client):
    page = (await admin_client.get("/staff/")).text
    assert '<html lang="pt-BR">' in page and "Visão geral" in page and "Mensagens mortas" in page
    assert "Overview" not in page and "Dead letters" not in page and "Sign out" not in page
    await admin_client.post_form("/staff/", "/staff/locale", {"locale": "en", "next": "/staff/"})
    english = (await admin_client.get("/staff/")).text
    assert '<html lang="en">' in english and "Overview" in english and "Dead letters" in english
    assert "Visão geral" not in english and "Sair" not in english and "Empresas" not in english
    login = await admin_client.get("/staff/login")  # signed in: straight to the console
    assert login.status_code == 303
