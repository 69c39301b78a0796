"""A service's refusal in the reader's language: every sentence ``web/portal/refusals.py`` knows has its pt-BR
translation, an OS error never reaches the page, and a sentence it does not know is left as written."""

from __future__ import annotations

import socket

import pytest

from backoffice.platform.errors import FieldError
from backoffice.platform.security import outbound
from backoffice.platform.settings import get_settings
from backoffice.web.portal.refusals import PATTERNS, SENTENCES, readable, readable_errors
from backoffice.web.portal.render import translations

PT = translations("pt-BR").gettext
EN = translations("en").gettext


def test_every_sentence_it_knows_is_translated_to_pt_br():
    missing = [message for message in [*SENTENCES, *(message for _, message in PATTERNS)] if PT(message) == message]
    assert missing == []


async def test_a_host_no_dns_knows_reads_as_a_sentence_not_an_os_error(monkeypatch):
    async def no_such_host(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(outbound, "lookup", no_such_host)
    settings = get_settings().model_copy(update={"allow_private_targets": False})
    with pytest.raises(outbound.TargetRefused) as refused:
        await outbound.check_target("https://nao-existe.invalid/gancho", settings)
    assert "Errno" in str(refused.value) or "Name or service" in str(refused.value)  # what the service says
    assert readable(str(refused.value), PT) == ("O endereço nao-existe.invalid não foi encontrado (DNS): confira se "
                                                "está escrito certo.")
    assert readable(str(refused.value), EN) == "The address nao-existe.invalid was not found (DNS): check it for typos."


async def test_a_private_address_is_named_in_the_readers_language():
    settings = get_settings().model_copy(update={"allow_private_targets": False})
    with pytest.raises(outbound.TargetRefused) as refused:
        await outbound.check_target("https://127.0.0.1/gancho", settings)
    assert readable(str(refused.value), PT) == ("127.0.0.1 não é um endereço da internet: a plataforma só chama "
                                                "endereços públicos.")


def test_fields_take_the_pages_names_and_an_unknown_sentence_stays_as_written():
    errors = [FieldError("expires_days", "expected a whole number of days"), FieldError("name", "something new")]
    assert readable_errors(errors, PT, {"expires_days": "Expira em (dias)"}) == [
        FieldError("Expira em (dias)", "informe um número inteiro de dias"), FieldError("name", "something new")]
