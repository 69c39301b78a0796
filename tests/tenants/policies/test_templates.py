"""The messages of the standard processes: defaults that tell everything, overrides per locale, the sandbox."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from jinja2.exceptions import SecurityError

from backoffice.tenants.policies import sandbox, templates
from backoffice.tenants.policies.schemas import EMAIL_KINDS, NOTIFICATION_KINDS, TEMPLATE_KINDS, PolicyConfig
from backoffice.tenants.policies.templates import (
    TemplateRejected, check_template, format_date, format_datetime, format_money, format_tax_id, label, render,
    validate_override,
)

# 02:30 UTC on the 11th is still the 10th in São Paulo (UTC-3) and in Manaus (UTC-4): a date printed
# in UTC would give the wrong day.
LATE_EVENING = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)
CUSTOMERS = {
    "cnpj": ({"name": "Casa do Pão Ltda", "tax_id": "45723174000110", "tax_id_kind": "cnpj",
              "email": "financeiro@casadopao.example"}, "45.723.174/0001-10"),
    "cpf": ({"name": "Maria Silva", "tax_id": "52998224725", "tax_id_kind": "cpf", "email": "maria@example.com"},
            "529.982.247-25"),
}
LOCAL = {  # the tenant's zone -> (pt-BR, en) rendering of LATE_EVENING's day and time
    "America/Sao_Paulo": ("10/03/2026 às 23:30", "Mar 10, 2026, 11:30 PM"),
    "America/Manaus": ("10/03/2026 às 22:30", "Mar 10, 2026, 10:30 PM"),
}
MONEY = {"pt-BR": "R$ 1.234,56", "en": "R$1,234.56"}


def realistic_case(kind: str, customer: dict, timezone: str) -> dict:
    """What the process code passes for each kind: Python dates and aware datetimes, amounts in cents."""
    plan = {"code": "pro-mensal", "name": "Pro Mensal", "price_cents": 123456}
    charge = {"amount_cents": 123456, "due_date": date(2026, 3, 5), "description": "Mensalidade março/2026",
              "payment_url": "https://pay.example/c/ch_1"}
    payment = {"amount_cents": 123456, "paid_at": LATE_EVENING, "method": "pix"}
    documents = [{"kind": "nfse", "number": "2026/000123", "url": "https://nfse.example/123.pdf"}]
    everything = {
        "tenant": {"display_name": "Alfa Software", "timezone": timezone}, "customer": customer,
        "plan": plan, "plans": [plan], "before": {"code": "basico", "name": "Básico", "price_cents": 49900},
        "after": plan, "direction": "upgrade", "effective_at": LATE_EVENING, "trigger": "payment.cleared",
        "started_at": LATE_EVENING, "charge": charge, "payment": payment, "documents": documents,
        "document": {"kind": "nfse", "number": None, "url": None},
        "task": {"title": "Boas-vindas", "due_date": date(2026, 3, 12)},
        "customer_url": "https://alfa.portal.example/customers/1", "deadline_at": LATE_EVENING, "grace_days": 5,
        "days_left": 1, "auto_block": True, "auto_unblock": True, "blocked": True, "unblocked": True,
        "blocked_at": LATE_EVENING, "unblocked_at": LATE_EVENING, "terminated_at": LATE_EVENING,
        "terminate_at": LATE_EVENING, "reason": "Pedido do cliente", "message": "E0160: inscrição municipal inválida",
        "routine": "Faturamento", "period": "2026-03", "item": "Mensalidade Pro Mensal, 2026-03",
    }
    return {name: everything[name] for name in ("tenant", "customer", *templates.CONTEXT[kind])}


@pytest.mark.parametrize("timezone", sorted(LOCAL))
@pytest.mark.parametrize("customer_kind", sorted(CUSTOMERS))
@pytest.mark.parametrize("locale", ["pt-BR", "en"])
@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_every_default_tells_who_how_much_and_when(kind, locale, customer_kind, timezone):
    customer, formatted_tax_id = CUSTOMERS[customer_kind]
    rendered = render(kind, locale, realistic_case(kind, customer, timezone), overrides=None)
    text = f"{rendered.title}\n{rendered.body}"

    assert rendered.title and "\n" not in rendered.title
    if kind in NOTIFICATION_KINDS:  # the inbox line says who; an e-mail's subject names the tenant instead
        assert customer["name"] in rendered.title
    else:
        assert "Alfa Software" in rendered.title
    assert customer["name"] in rendered.body
    assert f"{customer_kind.upper()}" in rendered.body and formatted_tax_id in rendered.body
    assert MONEY[locale] in text
    when = LOCAL[timezone][0 if locale == "pt-BR" else 1]
    # Kinds with a moment show it in the tenant's zone; the others show the charge's calendar due date.
    if kind in ("invoice.rejected", "routine.item_failed"):
        assert ("05/03/2026" if locale == "pt-BR" else "Mar 5, 2026") in text
    else:
        assert when in text, text
    assert "11/03/2026" not in text and "Mar 11, 2026" not in text  # the UTC day never leaks through
    assert "None" not in text and "{{" not in text and "\n\n\n" not in text


@pytest.mark.parametrize("locale", ["pt-BR", "en"])
@pytest.mark.parametrize("kind", NOTIFICATION_KINDS)
def test_front_office_notifications_link_the_customer_and_the_documents(kind, locale):
    case = realistic_case(kind, CUSTOMERS["cnpj"][0], "America/Sao_Paulo")
    body = render(kind, locale, case).body
    assert "https://alfa.portal.example/customers/1" in body
    if "documents" in case:
        assert "NFS-e" in body and "2026/000123" in body and "https://nfse.example/123.pdf" in body
    if kind.startswith("dunning.") and kind != "dunning.resolved" and kind != "dunning.unblocked":
        assert "https://pay.example/c/ch_1" in body


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_customer_emails_give_the_deadline_and_the_way_to_pay(kind):
    rendered = render(kind, "pt-BR", realistic_case(kind, CUSTOMERS["cpf"][0], "America/Sao_Paulo"))
    assert "10/03/2026 às 23:30" in rendered.body
    assert "https://pay.example/c/ch_1" in rendered.body
    assert rendered.body.rstrip().endswith("Alfa Software")  # signed by the tenant, not the platform


def test_dunning_wording_follows_what_actually_happened():
    case = realistic_case("dunning.blocked", CUSTOMERS["cpf"][0], "America/Sao_Paulo")
    blocked = render("dunning.blocked", "pt-BR", case)
    not_blocked = render("dunning.blocked", "pt-BR", {**case, "blocked": False})
    assert "bloqueado automaticamente em 10/03/2026 às 23:30" in blocked.body
    assert "será encerrado em 10/03/2026" in blocked.body
    assert "NÃO foi bloqueado" in not_blocked.body and "decida" in not_blocked.title

    case = realistic_case("dunning.unblocked", CUSTOMERS["cpf"][0], "America/Sao_Paulo")
    by_hand = render("dunning.unblocked", "en", {**case, "unblocked": False})
    assert "Unblock the customer's service by hand" in by_hand.body
    assert "No action is needed" in render("dunning.unblocked", "en", case).body

    case = realistic_case("dunning.reminder", CUSTOMERS["cpf"][0], "America/Sao_Paulo")
    assert "falta 1 dia" in render("dunning.reminder", "pt-BR", case).title
    assert "termina hoje" in render("dunning.reminder", "pt-BR", {**case, "days_left": 0}).title
    assert "faltam 3 dias" in render("dunning.reminder", "pt-BR", {**case, "days_left": 3}).title


def test_optional_details_left_out_leave_no_gaps_and_required_ones_are_demanded():
    minimal = {"tenant": {"display_name": "Alfa"}, "customer": CUSTOMERS["cpf"][0]}
    body = render("customer.started", "pt-BR", minimal).body
    assert "Maria Silva agora é cliente de Alfa." in body and "None" not in body and "Plano" not in body
    with pytest.raises(ValueError, match="charge, deadline_at"):
        render("dunning.notice", "pt-BR", minimal)
    with pytest.raises(ValueError, match="customer"):
        render("customer.started", "pt-BR", {"tenant": {"display_name": "Alfa"}})


def test_contexts_that_travelled_as_json_render_the_same():
    case = realistic_case("dunning.notice", CUSTOMERS["cnpj"][0], "America/Sao_Paulo")
    as_json = {**case, "deadline_at": LATE_EVENING.isoformat(),
               "charge": {**case["charge"], "due_date": "2026-03-05"},
               # process code may hand over an already punctuated tax id
               "customer": {**case["customer"], "tax_id": "45.723.174/0001-10"}}
    assert render("dunning.notice", "en", as_json) == render("dunning.notice", "en", case)


def test_objects_are_projected_onto_the_contract():
    @dataclass
    class Row:  # an ORM row carries more than a template may see
        name: str = "Casa do Pão Ltda"
        tax_id: str = "45723174000110"
        tax_id_kind: str = "cnpj"
        email: str | None = None
        password_hash: str = "argon2id$secret"

    context = {"tenant": {"display_name": "A"}, "customer": Row()}
    values = templates.prepare_context("customer.started", "pt-BR", context)
    assert values["customer"] == {"name": "Casa do Pão Ltda", "tax_id": "45723174000110", "tax_id_kind": "cnpj",
                                  "email": None}
    assert values["tz"] == "America/Sao_Paulo" and values["locale"] == "pt-BR"


# --- overrides -------------------------------------------------------------------------------------

def test_an_override_wins_for_its_locale_only():
    policy = PolicyConfig.model_validate({"templates": {"dunning.notice": {"pt-BR": {
        "subject": "{{ tenant.display_name }} avisa: {{ charge.amount_cents|money }} em aberto",
        "body": "Oi {{ customer.name }}, pague até {{ deadline_at|date }}.",
    }}}})
    case = realistic_case("dunning.notice", CUSTOMERS["cpf"][0], "America/Sao_Paulo")

    mine = render("dunning.notice", "pt-BR", case, policy.templates)
    assert mine == templates.Rendered(
        "Alfa Software avisa: R$ 1.234,56 em aberto", "Oi Maria Silva, pague até 10/03/2026.")
    assert render("dunning.notice", "en", case, policy.templates) == render("dunning.notice", "en", case)
    # Another kind keeps its default; an unknown locale speaks pt-BR, where the override applies.
    assert render("dunning.reminder", "pt-BR", case | {"days_left": 1}, policy.templates) == render(
        "dunning.reminder", "pt-BR", case | {"days_left": 1})
    assert render("dunning.notice", "es", case, policy.templates) == mine
    # Overrides as plain JSON (as stored in the policy version) work the same.
    assert render("dunning.notice", "pt-BR", case, policy.model_dump(mode="json")["templates"]) == mine


def test_an_override_that_fails_at_runtime_falls_back_to_the_default(caplog):
    # Valid against the sample case, but this case has no payment: the front office still hears about it.
    override = {"title": "Pago: {{ payment.amount_cents|money }}", "body": "ok"}
    assert validate_override("dunning.resolved", "pt-BR", override) == []
    case = realistic_case("dunning.resolved", CUSTOMERS["cpf"][0], "America/Sao_Paulo") | {"payment": None}
    with caplog.at_level(logging.WARNING):
        rendered = render("dunning.resolved", "pt-BR", case, {"dunning.resolved": {"pt-BR": override}})
    default = render("dunning.resolved", "pt-BR", case)
    assert (rendered.title, rendered.body) == (default.title, default.body) and default.problem is None
    assert "dunning.resolved (pt-BR) template failed" in rendered.problem and "money expects" in rendered.problem
    assert "dunning.resolved/pt-BR failed" in caplog.text


def test_titles_are_one_line_and_fit_the_notification_column():
    override = {"title": "{{ customer.name }}\n{{ customer.name * 20 }}", "body": "x"}
    case = realistic_case("dunning.resolved", CUSTOMERS["cnpj"][0], "America/Sao_Paulo")
    title = render("dunning.resolved", "pt-BR", case, {"dunning.resolved": {"pt-BR": override}}).title
    assert "\n" not in title and len(title) == 300 and title.endswith("…")


def test_tags_alone_on_a_line_leave_no_blank_line_and_errors_keep_their_line_numbers():
    source = "A\n{% if customer.email %}\nB\n{% endif %}\nC{% if reason %} ({{ reason }}){% endif %}\nD"
    case = realistic_case("dunning.resolved", CUSTOMERS["cnpj"][0], "America/Sao_Paulo")
    overrides = {"dunning.resolved": {"pt-BR": {"title": "t", "body": source}}}
    body = render("dunning.resolved", "pt-BR", case, overrides).body
    assert body == "A\nB\nC (Pedido do cliente)\nD"
    with pytest.raises(TemplateRejected, match="line 4"):
        check_template("dunning.resolved", "pt-BR", "{% if reason %}\nx\n{% endif %}\n{{ reason }")


# --- the sandbox -----------------------------------------------------------------------------------

def test_python_internals_are_out_of_reach():
    with pytest.raises(SecurityError):
        templates.ENV.from_string("{{ ''.__class__.__mro__ }}").render()
    with pytest.raises(SecurityError):
        templates.ENV.from_string("{{ customer.name.__class__.__base__.__subclasses__() }}").render(
            customer={"name": "x"})
    # Refused before saving, even where the branch would never run with the sample case.
    for source in ("{{ ''.__class__.__mro__ }}", "{% if false %}{{ customer['__class__'] }}{% endif %}"):
        with pytest.raises(TemplateRejected, match="not allowed"):
            check_template("dunning.blocked", "pt-BR", source)


@pytest.mark.parametrize(("source", "words"), [
    ("{{ customer.name.upper() }}", "calling functions or methods"),
    ("{% for i in range(10) %}{% endfor %}", "unknown variable range"),
    ("{{ cycler }}{{ lipsum }}", "unknown variable cycler, lipsum"),
    ("{% macro m() %}{% endmacro %}", "macros"),
    ("{% include 'x' %}", "macros, includes and imports"),
    ("{% for a in documents %}{% for b in documents %}{% for c in documents %}{% endfor %}{% endfor %}{% endfor %}",
     "nested at most 2"),
    ("{% for a in documents recursive %}{% endfor %}", "recursive"),
    ("{{ 'a' * 100000 }}", "too large"),
    ("{{ 9 ** 999999 }}", "exponent too large"),
    ("{{ customer.name|center(1000000000) }}", "No filter named 'center'"),
    ("{{ customer.cpf }}", "customer has no field 'cpf'"),
    ("{% for d in documents %}{{ d.pdf }}{% endfor %}", "unknown variable or field"),
    ("{{ deadline_at }}", "unknown variable deadline_at"),  # not part of the customer.started contract
    ("{{ customer.name + 1 }}", "fails with the sample"),
    ("{% if %}", "line 1"),
])
def test_templates_that_could_harm_or_break_are_refused(source, words):
    with pytest.raises(TemplateRejected) as refused:
        check_template("customer.started", "pt-BR", source)
    assert words in str(refused.value)


@contextmanager
def cpu_seconds() -> Iterator[list[float]]:
    """The CPU this thread spends inside the block, without collector pauses.

    What a template costs is the work it makes this thread do. Wall time also counts the machine stalling the
    process and the collector walking the whole test session's heap: once, in CI, 1.5 s for a refusal that
    takes 3 ms here.
    """
    spent: list[float] = []
    enabled = gc.isenabled()
    gc.disable()
    started = time.thread_time()
    try:
        yield spent
    finally:
        spent.append(time.thread_time() - started)
        if enabled:
            gc.enable()


_TEXT = "{% set s = 'a' * 10000 %}"
_SLOW = ("{% set s = 'ab ' * 3000 %}{% set t = [s,s,s,s,s,s,s,s,s,s,s]|join %}"
         "{% for c in s[:1000] %}{{ t|wordcount }}{% endfor %}")


@pytest.mark.parametrize(("source", "words"), [
    # One expression that ran for minutes in C (three of them: 0.3 s), where no timer can stop it.
    ("{{ (((9**99)**99)**99)**99 % 7 }}", "exponent too large"),
    ("{{ ((9**99)**99)**99 % 7 }}", "exponent too large"),
    ("{{ 2 ** 300 }}", "exponent too large"),
    ("{{ (2 ** 200) * (2 ** 200) }}", "number too large"),
    ("{{ '%.999999999d' % 1 }}", "formatting text with %"),
    (_TEXT + "{{ s ~ s }}", "too large"),
    (_TEXT + "{% set s = s + s %}{{ s|length }}", "too large"),
    ("{% set s = 'a' * 9000 %}{{ ([s] * 10000)|join }}", "too large"),
    ("{% set s = 'a' * 9000 %}{{ [s, s, s, s, s, s, s, s, s, s, s, s]|string }}", "the string filter was given more"),
    ("{{ ([1] * 3000)|join('x' * 10000) }}", "the join filter was given more"),
    ("{{ 1|round(1000000000, 'ceil') }}", "round to at most 15 digits"),
    # Text captured by a block never reaches the output stream, and is counted all the same.
    (_TEXT + "{% set t %}" + "{{ s }}" * 11 + "{% endset %}{{ t|length }}", "the rendered text is too long"),
    (_TEXT + "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "loops may run at most 1000 times"),
    (_SLOW, "takes longer than 0.5 s"),
    ("{{ " + "9" * 5000 + " }}", "more digits than any message needs"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nested too deeply"),
])
def test_templates_with_an_unbounded_cost_are_refused_fast(source, words):
    with cpu_seconds() as spent, pytest.raises(TemplateRejected) as refused:
        check_template("customer.started", "pt-BR", source)
    assert words in str(refused.value)
    assert spent[0] < sandbox.RENDER_SECONDS + 0.5


def test_bounded_arithmetic_and_loops_still_work():
    source = ("{{ 2 ** 255 > 0 }} {{ (charge.amount_cents * 3)|money }} {{ 2 ** -2 }} {{ 10 // 3 }} {{ 10 % 3 }} "
              "{% for d in documents %}{{ loop.index }}/{{ loop.length }} {{ d.kind|label ~ ' ' ~ d.number }}"
              "{% endfor %} {{ 'ab' * 3 }} {{ [1, 2] + [3] }}")
    check_template("customer.started", "pt-BR", source)
    case = realistic_case("customer.started", CUSTOMERS["cnpj"][0], "America/Sao_Paulo")
    body = render("customer.started", "pt-BR", case,
                  {"customer.started": {"pt-BR": {"title": "t", "body": source}}}).body
    assert body == "True R$ 3.703,68 0.25 3 1 1/1 NFS-e 2026/000123 ababab [1, 2, 3]"


def test_a_hostile_template_already_stored_falls_back_fast_and_says_why():
    # Saved before these rules existed: the worker renders the default wording and reports the reason.
    case = realistic_case("dunning.resolved", CUSTOMERS["cpf"][0], "America/Sao_Paulo")
    for source in ("{{ (((9**99)**99)**99)**99 % 7 }}", _SLOW):
        with cpu_seconds() as spent:
            rendered = render("dunning.resolved", "pt-BR", case,
                              {"dunning.resolved": {"pt-BR": {"title": "t", "body": source}}})
        assert spent[0] < sandbox.RENDER_SECONDS + 0.5
        assert rendered.body == render("dunning.resolved", "pt-BR", case).body
        assert "template failed, the default wording was used" in rendered.problem


def test_the_time_cap_spans_title_and_body_and_renders_do_not_share_budgets():
    with sandbox.bounded_render(0.0):
        with pytest.raises(SecurityError, match="takes longer"):
            templates.ENV.from_string("{{ 1 + 1 }}").render()
    # Each render has its own budget: a thousand iterations in one does not eat into the next.
    loop = "{% for c in s %}{% endfor %}"
    for _ in range(3):
        with sandbox.bounded_render():
            templates.ENV.from_string(loop).render(s="x" * 1000)


def test_validation_names_the_override_path():
    problems = validate_override("dunning.notice", "en", {"subject": "{{ customer.nome }}", "body": "{{ x }}"})
    assert [p.field for p in problems] == ["templates.dunning.notice.en.title", "templates.dunning.notice.en.body"]


@pytest.mark.parametrize("locale", ["pt-BR", "en"])
@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_the_defaults_pass_the_rules_tenant_templates_must_pass(kind, locale):
    title, body = templates.default_source(kind, locale)
    check_template(kind, locale, title)
    check_template(kind, locale, body)


# --- formatting ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cents", "pt", "en"), [
    (0, "R$ 0,00", "R$0.00"),
    (5, "R$ 0,05", "R$0.05"),
    (100, "R$ 1,00", "R$1.00"),
    (123456, "R$ 1.234,56", "R$1,234.56"),
    (123456789, "R$ 1.234.567,89", "R$1,234,567.89"),
    (-73556, "-R$ 735,56", "-R$735.56"),
])
def test_money(cents, pt, en):
    assert (format_money(cents, "pt-BR"), format_money(cents, "en")) == (pt, en)


def test_money_refuses_what_is_not_integer_cents():
    for value in (12.5, "100", True):
        with pytest.raises(TypeError):
            format_money(value, "pt-BR")


def test_dates_and_times_in_the_tenants_zone():
    assert format_date(date(2026, 1, 2), "America/Sao_Paulo", "pt-BR") == "02/01/2026"
    assert format_date(date(2026, 1, 2), "Asia/Tokyo", "en") == "Jan 2, 2026"  # a calendar date never moves
    noon_utc = datetime(2026, 7, 1, 12, 5, tzinfo=UTC)
    assert format_datetime(noon_utc, "America/Sao_Paulo", "pt-BR") == "01/07/2026 às 09:05"
    assert format_datetime(noon_utc, "America/Sao_Paulo", "en") == "Jul 1, 2026, 9:05 AM"
    midnight, midday = datetime(2026, 7, 1, 3, 0, tzinfo=UTC), datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
    assert format_datetime(midnight, "America/Sao_Paulo", "en") == "Jul 1, 2026, 12:00 AM"
    assert format_datetime(midday, "America/Sao_Paulo", "en") == "Jul 1, 2026, 12:00 PM"
    assert format_datetime("2026-07-01T12:05:00", "America/Sao_Paulo", "pt-BR") == "01/07/2026 às 09:05"  # naive = UTC
    assert format_datetime("2026-07-01", "America/Sao_Paulo", "pt-BR") == "01/07/2026"
    assert format_date(None, "America/Sao_Paulo", "pt-BR") == ""


def test_tax_ids_and_labels():
    assert format_tax_id("52998224725") == "529.982.247-25"
    assert format_tax_id("529.982.247-25", "cpf") == "529.982.247-25"
    assert format_tax_id("12ABC34501DE35", "cnpj") == "12.ABC.345/01DE-35"  # alphanumeric CNPJ (2026)
    assert label("credit_card", "pt-BR") == "cartão de crédito" and label("credit_card", "en") == "credit card"
    assert label("cnpj", "en") == "CNPJ" and label("something.new", "pt-BR") == "something.new"
