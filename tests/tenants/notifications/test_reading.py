"""A notification in its reader's language (tenants/notifications/reading.py): the rule, without a database."""

from __future__ import annotations

import uuid

from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.notifications.reading import in_reader_locale
from backoffice.tenants.policies.templates import render, sample_context

KIND = "dunning.grace_started"


def _stored(**changes) -> Notification:
    """A grace-started notification as a pt-BR company's process step wrote it: the text and its context."""
    context = {**sample_context(KIND), "tenant": {**sample_context(KIND)["tenant"], "locale": "pt-BR"},
               "customer_url": "https://portal.example/alfa/customers/1", "reason": "Charge overdue"}
    rendered = render(KIND, "pt-BR", context)
    detail = {**context, "kind": KIND, **changes}
    return Notification(id=uuid.uuid4(), kind=KIND, title=rendered.title, body=rendered.body, detail=detail)


def test_the_reader_gets_the_default_of_their_language_when_the_company_wrote_no_words_of_its_own():
    item = _stored()
    assert item.title.startswith("Pagamento em atraso:")
    english = in_reader_locale(item, "en", {}, company_locale="pt-BR")
    assert english.lang == "en" and english.title.startswith("Late payment:")
    assert "has not been paid" in english.body and "não foi paga" not in english.body
    same = in_reader_locale(item, "pt-BR", {}, company_locale="pt-BR")
    assert (same.title, same.body, same.lang) == (item.title, item.body, "pt-BR")
    # An override of another kind changes nothing here.
    other = {"customer.started": {"pt-BR": {"title": "Novo cliente", "body": "{{ customer.name }}"}}}
    assert in_reader_locale(item, "en", other, company_locale="pt-BR").title.startswith("Late payment:")


def test_the_companys_own_words_are_used_in_the_readers_language_or_shown_as_written():
    item = _stored()
    only_pt = {KIND: {"pt-BR": {"title": "Atraso de {{ customer.name }}", "body": "Ligue para o cliente."}}}
    shown = in_reader_locale(item, "en", only_pt, company_locale="pt-BR")
    assert (shown.title, shown.body, shown.lang) == (item.title, item.body, "pt-BR")  # not translated by us
    both = {KIND: {**only_pt[KIND], "en": {"title": "{{ customer.name }} is late", "body": "Call them: {{ reason }}"}}}
    shown = in_reader_locale(item, "en", both, company_locale="pt-BR", reason="Charge of Nov 1 is overdue")
    assert shown.lang == "en" and shown.title.endswith(" is late") and shown.body == "Call them: Charge of Nov 1 is overdue"


def test_a_stored_context_that_no_longer_renders_shows_the_stored_text():
    for broken in ({"charge": None}, {"charge": {"amount_cents": "lots", "due_date": "2026-11-01"}},
                   {"deadline_at": "not a date"}, {"tenant": None}):
        item = _stored(**broken)
        shown = in_reader_locale(item, "en", {}, company_locale="pt-BR")
        assert (shown.title, shown.body, shown.lang) == (item.title, item.body, "pt-BR"), broken
    legacy = Notification(id=uuid.uuid4(), kind=KIND, title="Antigo", body="Texto", detail={})
    assert in_reader_locale(legacy, "en", {}, company_locale="pt-BR").lang == "pt-BR"
    # A row without the stored tenant view was written in the company's locale of today.
    assert in_reader_locale(legacy, "pt-BR", {}, company_locale="pt-BR").title == "Antigo"


def test_a_task_the_platform_titled_is_named_in_the_readers_language():
    """The onboarding notice quotes its task's title, written in the company's language: the stored message
    form (``task.said``) names it again in the reader's."""
    from backoffice.tenants.timeline.messages import Msg

    kind = "customer.started"
    title = Msg("Onboarding: {customer}", customer="Padaria Estrela")
    base = sample_context(kind)
    context = {**base, "tenant": {**base["tenant"], "locale": "pt-BR"}, "reason": "Payment cleared",
               "task": {"title": "Implantação: Padaria Estrela", "due_date": "2026-11-20", "said": title.stored()}}
    rendered = render(kind, "pt-BR", context)
    assert "Implantação: Padaria Estrela" in rendered.body
    item = Notification(id=uuid.uuid4(), kind=kind, title=rendered.title, body=rendered.body,
                        detail={**context, "kind": kind})
    english = in_reader_locale(item, "en", {}, company_locale="pt-BR")
    assert english.lang == "en" and "Onboarding: Padaria Estrela" in english.body
    assert "Implantação" not in english.body
