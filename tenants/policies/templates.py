"""The words of the standard processes: portal notifications for the front office, e-mails to end customers.

Every kind has a default in pt-BR and English (``defaults/<kind>.<locale>.txt``: the first line is the
title or e-mail subject, then one empty line, then the body). A tenant may override any kind per locale
in its policy (``PolicyConfig.templates``). :func:`render` picks the tenant's override for the locale,
else the default for the locale; a locale the platform does not speak falls back to pt-BR.

Plain text only. Bodies are rendered without autoescape and never contain HTML: the portal shows them
as escaped text with line breaks, and e-mails go out as text/plain. One text body per kind keeps a
tenant's override to one thing to write and review, and a customer's name can never become markup.

Tenant templates are untrusted code. They run in Jinja2's ``SandboxedEnvironment`` (no access to
underscore attributes, so no way to Python internals), with ``StrictUndefined`` (a misspelt variable
fails instead of printing nothing), and :func:`validate_override` refuses, before anything is saved:
syntax errors, variables and fields outside the kind's context, private attributes, method calls,
macros/includes/imports and loops nested more than two deep. The environment is ``sandbox``'s
``BoundedSandbox``: every operator, filter, concatenation and loop has a bounded cost, and a render has
a budget of time, iterations and output, so no template is a CPU or memory bomb on the shared workers.
Validation trial-renders the template, so callers on an event loop run :func:`validate_overrides` in a
worker thread (``policies.service`` does).

Formatting: ``money`` ("R$ 1.234,56" / "R$1,234.56"), ``date`` and ``datetime`` (in the tenant's time
zone: "05/03/2026", "05/03/2026 às 09:00" / "Mar 5, 2026", "Mar 5, 2026, 9:00 AM"), ``tax_id``
(CPF/CNPJ punctuation), ``label`` (codes such as ``pix`` or ``nfse`` in words). Small formatters of our
own rather than Babel: two locales, and an exact, stable output (Babel's pt-BR puts a no-break space
after "R$", and its output follows the CLDR release installed).

Context contract: what the process code passes. Objects may be dicts or ORM rows; each is projected onto
the fields listed, so a template sees nothing else. Dates and datetimes may also be ISO strings (contexts
travel as JSON); datetimes are shown in the tenant's time zone. ``!`` marks what the kind cannot do
without (render raises ValueError when it is missing); anything else left out arrives as None and the
defaults word around it.

Every kind:
    tenant!  {display_name, timezone}        customer!  {name, tax_id, tax_id_kind: cpf|cnpj, email}
    locale, tz                               injected by render()
Every front-office kind also: reason (one line, in the tenant's locale), customer_url (portal link).
Objects:
    plan, before, after, plans[]  {code, name, price_cents}
    charge                        {amount_cents, due_date (date), description, payment_url, billing_type
                                   (BOLETO|PIX|CREDIT_CARD|UNDEFINED), pix_payload (Pix copia e cola),
                                   boleto_line (linha digitável), boleto_url}
    payment                       {amount_cents, paid_at (datetime), method: pix|boleto|credit_card|...}
    document, documents[]         {kind: nfse|nfe|contract|receipt|boleto, number, url}
    task                          {title, due_date}
Per kind:
    customer.started        plan, trigger (payment.cleared|invoice.issued|contract.signed), started_at,
                            charge, payment, documents, task
    subscription.changed    before!, after!, direction (upgrade|downgrade|addon|change), effective_at
    dunning.grace_started   charge!, deadline_at!, grace_days, auto_block, plan (the late subscription;
                            None when the case reaches the whole customer)
    dunning.blocked         charge!, deadline_at!, blocked (False: the deadline passed but the policy does
                            not block, the front office decides), blocked_at, auto_unblock, terminate_at, plan
    dunning.unblocked       charge!, unblocked (False: paid, but the policy does not unblock: unblock by
                            hand), payment, unblocked_at, plan
    dunning.resolved        charge!, payment, plan
    customer.terminated     plans, terminated_at, documents (the final ones), task
    invoice.rejected        message! (the issuer's words), document, charge
    routine.item_failed     routine! (its title), period!, item!, message! (the provider's words), charge
    dunning.notice          charge!, deadline_at!, auto_block                (e-mail to the customer)
    dunning.reminder        charge!, deadline_at!, days_left, auto_block     (e-mail to the customer)
    dunning.blocked_notice  charge!, deadline_at!, blocked_at, auto_unblock  (e-mail to the customer)
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError, UndefinedError

from backoffice.platform.documents import format_cnpj, format_cpf
from backoffice.platform.errors import FieldError
from backoffice.tenants.policies.sandbox import (
    OUTPUT_MAX, RENDER_SECONDS, BoundedSandbox, bounded_filter, bounded_render, count_output,
)
from backoffice.tenants.policies.schemas import DEFAULT_LOCALE, LOCALES, TEMPLATE_KINDS, TITLE_MAX

log = logging.getLogger(__name__)

COMMON = ("tenant", "customer", "locale", "tz")
_FRONT_OFFICE = ("reason", "customer_url")
CONTEXT: dict[str, tuple[str, ...]] = {
    "customer.started": (
        "plan", "trigger", "started_at", "charge", "payment", "documents", "task", *_FRONT_OFFICE,
    ),
    "subscription.changed": ("before", "after", "direction", "effective_at", *_FRONT_OFFICE),
    "dunning.grace_started": ("charge", "deadline_at", "grace_days", "auto_block", "plan", *_FRONT_OFFICE),
    "dunning.blocked": (
        "charge", "deadline_at", "blocked", "blocked_at", "auto_unblock", "terminate_at", "plan", *_FRONT_OFFICE,
    ),
    "dunning.unblocked": ("charge", "unblocked", "payment", "unblocked_at", "plan", *_FRONT_OFFICE),
    "dunning.resolved": ("charge", "payment", "plan", *_FRONT_OFFICE),
    "customer.terminated": ("plans", "terminated_at", "documents", "task", *_FRONT_OFFICE),
    "invoice.rejected": ("message", "document", "charge", *_FRONT_OFFICE),
    "routine.item_failed": ("routine", "period", "item", "message", "charge", *_FRONT_OFFICE),
    "dunning.notice": ("charge", "deadline_at", "auto_block"),
    "dunning.reminder": ("charge", "deadline_at", "days_left", "auto_block"),
    "dunning.blocked_notice": ("charge", "deadline_at", "blocked_at", "auto_unblock"),
}
assert set(CONTEXT) == set(TEMPLATE_KINDS)
_DUNNING = ("charge", "deadline_at")
REQUIRED: dict[str, tuple[str, ...]] = {
    "subscription.changed": ("before", "after"),
    "dunning.grace_started": _DUNNING,
    "dunning.blocked": _DUNNING,
    "dunning.unblocked": ("charge",),
    "dunning.resolved": ("charge",),
    "invoice.rejected": ("message",),
    "routine.item_failed": ("routine", "period", "item", "message"),
    "dunning.notice": _DUNNING,
    "dunning.reminder": _DUNNING,
    "dunning.blocked_notice": _DUNNING,
}

_PLAN = ("code", "name", "price_cents")
_DOCUMENT = ("kind", "number", "url")
FIELDS: dict[str, tuple[str, ...]] = {
    "tenant": ("display_name", "timezone"),
    "customer": ("name", "tax_id", "tax_id_kind", "email"),
    "plan": _PLAN,
    "before": _PLAN,
    "after": _PLAN,
    "charge": ("amount_cents", "due_date", "description", "payment_url", "billing_type", "pix_payload",
               "boleto_line", "boleto_url"),
    "payment": ("amount_cents", "paid_at", "method"),
    "document": _DOCUMENT,
    "task": ("title", "due_date"),
}
LISTS: dict[str, tuple[str, ...]] = {"documents": _DOCUMENT, "plans": _PLAN}

DEFAULT_TZ = "America/Sao_Paulo"
MAX_LOOP_DEPTH = 2
VALIDATION_SECONDS = 2.0  # trial renders of all of one policy's templates together
SAFE_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "first", "int", "join", "last", "length", "lower",
    "round", "string", "title", "trim", "truncate", "upper", "wordcount",
)


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    problem: str | None = None  # why the tenant's override was not used, when it failed


class TemplateRejected(ValueError):
    pass


def resolve_locale(locale: str | None) -> str:
    return locale if locale in LOCALES else DEFAULT_LOCALE


# --- formatting ------------------------------------------------------------------------------------

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Codes the processes pass, in words. Lower case where they read mid-sentence ("via Pix", "via boleto").
_LABELS = {
    "pt-BR": {
        "pix": "Pix", "boleto": "boleto", "credit_card": "cartão de crédito", "debit_card": "cartão de débito",
        "bank_transfer": "transferência bancária", "cash": "dinheiro",
        "nfse": "NFS-e", "nfe": "NF-e", "contract": "Contrato", "receipt": "Recibo", "invoice": "Fatura",
        "payment.cleared": "pagamento confirmado", "invoice.issued": "nota fiscal emitida",
        "contract.signed": "contrato assinado",
        "upgrade": "upgrade", "downgrade": "downgrade", "addon": "contratação de adicional",
        "change": "troca de plano", "cpf": "CPF", "cnpj": "CNPJ",
    },
    "en": {
        "pix": "Pix", "boleto": "boleto", "credit_card": "credit card", "debit_card": "debit card",
        "bank_transfer": "bank transfer", "cash": "cash",
        "nfse": "NFS-e", "nfe": "NF-e", "contract": "Contract",
        "receipt": "Receipt", "invoice": "Invoice",
        "payment.cleared": "payment cleared", "invoice.issued": "invoice issued", "contract.signed": "contract signed",
        "upgrade": "upgrade", "downgrade": "downgrade", "addon": "add-on", "change": "plan change",
        "cpf": "CPF", "cnpj": "CNPJ",
    },
}


def format_money(cents: int | None, locale: str | None) -> str:
    """BRL from integer cents: "R$ 1.234,56" (pt-BR), "R$1,234.56" (en)."""
    if cents is None:
        return ""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise TypeError(f"money expects integer cents, got {type(cents).__name__}")
    units, rest = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    if resolve_locale(locale) == "en":
        return f"{sign}R${units:,}.{rest:02d}"
    return f"{sign}R$ " + f"{units:,}".replace(",", ".") + f",{rest:02d}"


def _moment(value: date | str | None, tz: str | None) -> date | datetime | None:
    """A date stays a calendar date; a datetime (aware, or naive meaning UTC) moves to the tenant's zone.

    ISO strings are accepted because contexts often travel through JSON (outbox, task messages).
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(ZoneInfo(tz or DEFAULT_TZ))
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date or datetime, got {type(value).__name__}")


def _day(day: date, locale: str) -> str:
    if locale == "en":
        return f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}"
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def format_date(value: date | str | None, tz: str | None, locale: str | None) -> str:
    moment = _moment(value, tz)
    if moment is None:
        return ""
    return _day(moment.date() if isinstance(moment, datetime) else moment, resolve_locale(locale))


def format_datetime(value: date | str | None, tz: str | None, locale: str | None) -> str:
    moment = _moment(value, tz)
    if not isinstance(moment, datetime):
        return format_date(moment, tz, locale)
    locale = resolve_locale(locale)
    if locale == "en":
        hour = moment.hour % 12 or 12
        return f"{_day(moment.date(), locale)}, {hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    return f"{_day(moment.date(), locale)} às {moment.hour:02d}:{moment.minute:02d}"


def format_tax_id(value: str | None, kind: str | None = None) -> str:
    """CPF "529.982.247-25" or CNPJ "45.723.174/0001-10" (alphanumeric CNPJs too), told apart by length."""
    if not value:
        return ""
    compact = re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if len(compact) == 11 and kind in (None, "cpf"):
        return format_cpf(compact)
    if len(compact) == 14 and kind in (None, "cnpj"):
        return format_cnpj(compact)
    return value


def label(code: str | None, locale: str | None) -> str:
    if code is None:
        return ""
    return _LABELS[resolve_locale(locale)].get(str(code), str(code))


# --- the sandbox -----------------------------------------------------------------------------------

class _Sandbox(BoundedSandbox):
    def preprocess(self, source, name=None, filename=None):
        return super().preprocess(_standalone_tags(source), name, filename)


# A line holding only block tags ({% if %}, {% endfor %}, {# #}) leaves no empty line behind, while a
# tag inside a line keeps the line's break: what an author writing plain text expects, unlike Jinja's
# trim_blocks, which also swallows the break after `... {% endif %}` at the end of a sentence. The
# removed break moves into a comment, so error line numbers stay true.
_STANDALONE = re.compile(r"^[ \t]*((?:\{([%#]).*?\2\}[ \t]*)+)\r?\n", re.MULTILINE)


def _standalone_tags(source: str) -> str:
    return _STANDALONE.sub(lambda match: match.group(1).rstrip() + "{#\n#}", source)


def _finalize(value: Any) -> Any:
    count_output(value)
    return "" if value is None else value


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_finalize, keep_trailing_newline=False)
    env.globals.clear()  # no range(), lipsum(), namespace(): nothing a message needs, each a way to loop
    env.filters = {name: DEFAULT_FILTERS[name] for name in SAFE_FILTERS}
    env.filters.update(money=_money, date=_date, datetime=_datetime, tax_id=format_tax_id, label=_label)
    env.filters = {name: bounded_filter(name, func) for name, func in env.filters.items()}
    return env


@pass_context
def _money(context, cents, locale=None):
    return format_money(cents, locale or context.get("locale"))


@pass_context
def _date(context, value, tz=None, locale=None):
    return format_date(value, tz or context.get("tz"), locale or context.get("locale"))


@pass_context
def _datetime(context, value, tz=None, locale=None):
    return format_datetime(value, tz or context.get("tz"), locale or context.get("locale"))


@pass_context
def _label(context, code, locale=None):
    return label(code, locale or context.get("locale"))


ENV = _make_env()


# --- defaults --------------------------------------------------------------------------------------

@cache
def default_source(kind: str, locale: str) -> tuple[str, str]:
    """(title, body) template source of the platform's default for a kind in a locale."""
    text = (resources.files(__package__) / "defaults" / f"{kind}.{locale}.txt").read_text(encoding="utf-8")
    title, _, rest = text.partition("\n")
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise RuntimeError(f"defaults/{kind}.{locale}.txt: the second line must be empty")
    return title, body


@cache
def _samples() -> dict[str, Any]:
    return json.loads((resources.files(__package__) / "defaults" / "samples.json").read_text(encoding="utf-8"))


def sample_context(kind: str) -> dict[str, Any]:
    """A realistic case of this kind (defaults/samples.json): for validating and previewing templates."""
    samples = _samples()
    return {"tenant": samples["tenant"], "customer": samples["customer"],
            **{name: samples["values"][name] for name in CONTEXT[kind]}}


@lru_cache(maxsize=1024)
def _compiled(source: str):
    # Keyed by source only: a template is a pure function of its context, so tenants can share the cache.
    return ENV.from_string(source)


# --- rendering -------------------------------------------------------------------------------------

def render(kind: str, locale: str, context: Mapping[str, Any], overrides: Mapping | None = None) -> Rendered:
    """The title and body of one message; a tenant override that fails at runtime falls back to the default.

    The fallback matters more than the override: a notification about a blocked customer must reach the
    front office even if the tenant's wording references something this case lacks, or a template saved
    before a sandbox rule existed now breaks it. Why the override was not used is in ``Rendered.problem``,
    for the caller to record. Each message has one render budget (see ``sandbox``): a hostile override
    stops within ``RENDER_SECONDS`` and the default gets a budget of its own.
    """
    if kind not in CONTEXT:
        raise KeyError(f"unknown template kind {kind!r}")
    locale = resolve_locale(locale)
    missing = [name for name in ("tenant", "customer", *REQUIRED.get(kind, ())) if context.get(name) is None]
    if missing:
        raise ValueError(f"{kind} cannot be rendered without {', '.join(missing)}")
    values = prepare_context(kind, locale, context)
    override = _override(overrides, kind, locale)
    if override is not None:
        try:
            return _render_pair(override, values)
        except _RENDER_ERRORS as error:
            problem = f"the company's {kind} ({locale}) template failed, the default wording was used: {_why(error)}"
            log.warning("tenant template %s/%s failed, using the default: %s", kind, locale, error)
            return replace(_render_pair(default_source(kind, locale), values), problem=problem)
    return _render_pair(default_source(kind, locale), values)


# What a tenant's template can raise at runtime: the sandbox's refusals are TemplateErrors; RecursionError
# comes from compiling a deeply nested expression saved before validation refused those.
_RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, RecursionError)


def _why(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "expressions nested too deeply"
    return str(error)[:300]


def prepare_context(kind: str, locale: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Project the caller's values onto the kind's contract: documented names and fields only."""
    values: dict[str, Any] = {}
    for name in (*COMMON, *CONTEXT[kind]):
        value = context.get(name)
        if name in FIELDS:
            value = _project(value, FIELDS[name])
        elif name in LISTS:
            value = [_project(item, LISTS[name]) for item in value or ()]
        values[name] = value
    values["locale"] = locale
    values["tz"] = (values["tenant"] or {}).get("timezone") or DEFAULT_TZ
    return values


def _project(value: Any, fields: tuple[str, ...]) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {field: value.get(field) for field in fields}
    return {field: getattr(value, field, None) for field in fields}


def _override(overrides: Mapping | None, kind: str, locale: str) -> tuple[str, str] | None:
    chosen = ((overrides or {}).get(kind) or {}).get(locale)
    if chosen is None:
        return None
    if isinstance(chosen, Mapping):
        return chosen.get("title") or chosen.get("subject") or "", chosen.get("body") or ""
    return chosen.title, chosen.body


def _render_pair(source: tuple[str, str], values: dict[str, Any]) -> Rendered:
    with bounded_render():
        title = " ".join(_render_text(source[0], values).split())
        body = _render_text(source[1], values)
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1].rstrip() + "…"
    body = "\n".join(line.rstrip() for line in body.strip().splitlines())
    return Rendered(title=title, body=re.sub(r"\n{3,}", "\n\n", body))


def _render_text(source: str, values: dict[str, Any]) -> str:
    template = _compiled(source)
    parts, size = [], 0
    with bounded_render():
        for chunk in template.generate(values):
            size += len(chunk)  # literal text too: the printed values are counted by the sandbox
            if size > OUTPUT_MAX:
                raise SecurityError("the rendered text is too long")
            parts.append(chunk)
    return "".join(parts)


# --- validating tenant templates -------------------------------------------------------------------

def validate_overrides(templates: Mapping[str, Mapping[str, Any]]) -> list[FieldError]:
    """Every problem of a policy's template overrides, each named by its path in the policy.

    Trial-renders every template: on an event loop, call it in a worker thread. All of a policy's
    templates together get ``VALIDATION_SECONDS``, so two dozen slow ones cannot hold a thread for long.
    """
    deadline = time.monotonic() + VALIDATION_SECONDS
    problems: list[FieldError] = []
    for kind, by_locale in templates.items():
        for locale, override in by_locale.items():
            problems += validate_override(kind, locale, override, deadline=deadline)
    return problems


def validate_override(kind: str, locale: str, override: Any, *, deadline: float | None = None) -> list[FieldError]:
    title, body = _override({kind: {locale: override}}, kind, locale)
    problems = []
    for part, source in (("title", title), ("body", body)):
        seconds = RENDER_SECONDS if deadline is None else min(RENDER_SECONDS, deadline - time.monotonic())
        try:
            if seconds <= 0:
                raise TemplateRejected("not checked: the policy's other templates took too long to render")
            check_template(kind, locale, source, seconds=seconds)
        except TemplateRejected as error:
            problems.append(FieldError(f"templates.{kind}.{locale}.{part}", str(error)))
    return problems


def check_template(kind: str, locale: str, source: str, *, seconds: float = RENDER_SECONDS) -> None:
    """Compile, inspect and trial-render one template source; raise TemplateRejected saying why."""
    try:
        tree = ENV.parse(source)
        _compiled(source)  # also resolves filters: an unknown one is refused here
    except TemplateSyntaxError as error:
        raise TemplateRejected(f"line {error.lineno}: {error.message}") from None
    except RecursionError:
        raise TemplateRejected("expressions are nested too deeply") from None
    except ValueError:  # the lexer met a number literal longer than Python converts (4,300 digits)
        raise TemplateRejected("not allowed: a number with more digits than any message needs") from None
    _inspect(kind, tree)
    try:
        with bounded_render(seconds):
            _render_text(source, prepare_context(kind, locale, sample_context(kind)))
    except SecurityError as error:
        raise TemplateRejected(f"not allowed: {error}") from None
    except UndefinedError as error:
        raise TemplateRejected(f"unknown variable or field: {error}") from None
    except _RENDER_ERRORS as error:
        raise TemplateRejected(f"fails with the sample {kind} case: {_why(error)}") from None


def _inspect(kind: str, tree: nodes.Template) -> None:
    allowed = {*COMMON, *CONTEXT[kind]}
    unknown = sorted(meta.find_undeclared_variables(tree) - allowed)
    if unknown:
        raise TemplateRejected(
            f"unknown variable {', '.join(unknown)}; this template can use {', '.join(sorted(allowed))}"
        )
    for node in tree.find_all((nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport,
                               nodes.Extends, nodes.Call)):
        what = "calling functions or methods" if isinstance(node, nodes.Call) else "macros, includes and imports"
        raise TemplateRejected(f"line {node.lineno}: {what} are not allowed in message templates")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateRejected(f"line {node.lineno}: access to {name!r} is not allowed")
        if isinstance(node.node, nodes.Name) and node.node.name in FIELDS and isinstance(name, str):
            fields = FIELDS[node.node.name]
            if name not in fields:
                raise TemplateRejected(
                    f"line {node.lineno}: {node.node.name} has no field {name!r}; it has {', '.join(fields)}"
                )
    _check_loops(tree, depth=0)


def _check_loops(node: nodes.Node, depth: int) -> None:
    for child in node.iter_child_nodes():
        inner = depth
        if isinstance(child, nodes.For):
            if child.recursive:
                raise TemplateRejected(f"line {child.lineno}: recursive loops are not allowed")
            inner = depth + 1
            if inner > MAX_LOOP_DEPTH:
                raise TemplateRejected(f"line {child.lineno}: loops may be nested at most {MAX_LOOP_DEPTH} deep")
        _check_loops(child, inner)
