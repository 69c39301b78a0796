"""One language per reader for what the platform stores and shows later: timeline titles and reasons are kept
as message ids with parameters (``tenants/timeline/messages.py``) and rendered in the reader's locale
(``web/portal/wording.py``). Every id the code writes has its pt-BR translation, with the same placeholders."""

from __future__ import annotations

import ast
import re
from datetime import date
from pathlib import Path

from babel.messages.pofile import read_po
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.events.catalogue import CATALOGUE
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.tasks.models import Task
from backoffice.tenants.timeline.messages import Code, Day, Money, Msg, Stage, in_language, say, stored_message
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.web.app import create_app
from backoffice.web.portal.render import LOCALE_DIR, translations
from backoffice.web.portal.wording import said_task
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the running spine fixture)
from tests.web.portal.conftest import Browser

ROOT = Path(__file__).resolve().parents[3]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _message_ids() -> set[str]:
    """Every ``Msg("...")`` id written in the domain's code, plus the event catalogue's descriptions (the one
    place that passes ids through a variable: each event entry's reason). Any other non-literal id fails."""
    ids: set[str] = set()
    for path in sorted((ROOT / "tenants").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Msg"):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                ids.add(first.value)
            else:
                assert "CATALOGUE[" in ast.unparse(node), (
                    f"{path.relative_to(ROOT)}:{node.lineno}: a Msg id must be a literal string (the catalogue "
                    f"test reads them from the source): {ast.unparse(node)}")
    return ids | {description for _, description in CATALOGUE.values()}


def test_every_stored_message_id_has_a_pt_br_translation_with_the_same_placeholders():
    with (LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = {message.id: message.string for message in read_po(source) if message.id}
    ids = _message_ids()
    assert len(ids) > 60 and "Charge of {due} is overdue; policy v{version} gives {days} days of grace ({reach})" in ids
    assert {"Onboarding: {customer}", "Offboarding: {customer}"} <= ids  # the tasks' titles
    missing = sorted(i for i in ids if not catalog.get(i))
    assert not missing, f"add to web/locale/pt_BR/LC_MESSAGES/messages.po: {missing}"
    mismatched = sorted(i for i in ids if set(PLACEHOLDER.findall(i)) != set(PLACEHOLDER.findall(catalog[i])))
    assert not mismatched, f"the translation's {{placeholders}} differ from the id's: {mismatched}"


def test_a_message_is_its_english_sentence_and_renders_per_locale():
    reach = Msg("subscription {plan}", plan="Plano Pro")
    reason = Msg("Charge of {due} is overdue; policy v{version} gives {days} days of grace ({reach})",
                 due=Day(date(2026, 11, 1)), version=3, days=5, reach=reach)
    # The English columns, the effect records and the API keep what they kept before.
    assert reason == "Charge of 2026-11-01 is overdue; policy v3 gives 5 days of grace (subscription Plano Pro)"
    stored = stored_message(Msg("Lifecycle: {before} → {after}", before=Stage("active"), after=Stage("in_grace")),
                            reason)
    pt, en = translations("pt-BR").gettext, translations("en").gettext
    assert say(stored["reason"], pt, "pt-BR") == ("A cobrança de 01/11/2026 está vencida; a política v3 dá 5 dias de "
                                                  "carência (assinatura Plano Pro)")
    assert say(stored["reason"], en, "en") == ("Charge of Nov 1, 2026 is overdue; policy v3 gives 5 days of grace "
                                               "(subscription Plano Pro)")
    assert say(stored["title"], pt, "pt-BR") == "Situação: ativo → em carência"
    assert say(stored["title"], en, "en") == "Lifecycle: active → in grace"
    money = Msg("Plan {direction}: {before} → {after}", direction=Code("change"), before=Money(123456), after="B")
    assert say(money.stored(), pt, "pt-BR") == "Mudança de plano (troca de plano): R$ 1.234,56 → B"
    assert stored_message("plain title", "plain reason") is None  # people's notes and the like: as written
    # In a process step, through the catalogues the composition root handed over (tests/conftest.py composes).
    assert in_language(reason, "pt-BR").startswith("A cobrança de 01/11/2026 está vencida")
    assert in_language("a provider's own words", "pt-BR") == "a provider's own words"


async def test_a_late_payment_reads_in_portuguese_on_the_pt_br_page_and_in_english_under_en(
        spine, database, tenants):  # noqa: F811
    a = tenants.a
    customer_id = await new_customer(database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="04.252.011/0001-10", lifecycle=Lifecycle.ACTIVE)
    await spine.ingest(a.id, {"type": "payment.overdue", "source": "asaas", "external_id": "evt-overdue-1",
                              "customer": {"id": str(customer_id)},
                              "data": {"charge": {"external_id": "pay_9", "amount_cents": 19990,
                                                  "due_date": "2026-11-01"}}})
    await spine.settle()
    async with database.tenant(a.id) as session:
        [moved] = (await session.execute(select(TimelineEntry).where(
            TimelineEntry.customer_id == customer_id, TimelineEntry.kind == "transition"))).scalars().all()
    # The English text stays on the row (API, search); the message id and parameters beside it.
    assert moved.title == "Lifecycle: active → in grace" and moved.reason.startswith("Charge of 2026-11-01 is overdue")
    params = moved.message["reason"]["params"]
    version, days = params["version"], params["days"]
    async with database.tenant(a.id) as session:
        [grace] = (await session.execute(select(Notification))).scalars().all()

    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        page = (await browser.get(f"/alfa/customers/{customer_id}")).text
        for expected in ("Situação: ativo → em carência",
                         f"A cobrança de 01/11/2026 está vencida; a política v{version} dá {days} dias de carência "
                         "(todas as assinaturas do cliente)",
                         "Evento: payment.overdue de asaas",
                         "Uma cobrança passou do vencimento sem pagamento; começa a carência."):
            assert expected in page, expected
        for english in ("is overdue", "Lifecycle:", "Event:", "Notified "):
            assert english not in page, english
        notification = (await browser.get(f"/alfa/inbox/{grace.id}")).text  # its reason, in the reader's words
        assert f"A cobrança de 01/11/2026 está vencida; a política v{version}" in notification
        assert "is overdue" not in notification

        switched = await browser.post_form(f"/alfa/customers/{customer_id}", "/alfa/locale",
                                           {"locale": "en", "next": f"/customers/{customer_id}"})
        assert switched.status_code == 303
        page = (await browser.get(f"/alfa/customers/{customer_id}")).text
        for expected in ("Lifecycle: active → in grace",
                         f"Charge of Nov 1, 2026 is overdue; policy v{version} gives {days} days of grace "
                         "(every subscription of the customer)",
                         "Event: payment.overdue from asaas"):
            assert expected in page, expected
        assert "está vencida" not in page
        notification = (await browser.get(f"/alfa/inbox/{grace.id}")).text
        assert f"Charge of Nov 1, 2026 is overdue; policy v{version}" in notification

    # The company's own texts (rendered once, in its language, from its templates) say why in that language.
    await spine.ingest(a.id, {"type": "subscription.canceled", "source": "erp", "external_id": "evt-cancel-1",
                              "customer": {"id": str(customer_id)}, "data": {}})
    await spine.settle()
    async with database.tenant(a.id) as session:
        [ended] = (await session.execute(select(Notification).where(
            Notification.kind == "customer.terminated"))).scalars().all()
    assert "Motivo: A assinatura foi cancelada" in ended.body
    assert ended.detail["reason"] == "The subscription was canceled"  # the record and the API keep the English

    # The offboarding task: its title and its description (the platform's reason, not a company text) are kept
    # as messages beside the English, and said in the reader's language.
    async with database.tenant(a.id) as session:
        [offboarding] = (await session.execute(select(Task).where(Task.kind == "offboarding"))).scalars().all()
    assert offboarding.title == "Offboarding: Padaria Estrela Ltda"
    assert offboarding.description == "The subscription was canceled"
    pt = said_task(offboarding, translations("pt-BR").gettext, "pt-BR")
    assert (pt.title, pt.description, pt.description_said) == (
        "Desligamento: Padaria Estrela Ltda", "A assinatura foi cancelada", True)
    en = said_task(offboarding, translations("en").gettext, "en")
    assert (en.title, en.description) == ("Offboarding: Padaria Estrela Ltda", "The subscription was canceled")
    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        page = (await browser.get(f"/alfa/tasks/{offboarding.id}")).text
    assert "<h1>Desligamento: Padaria Estrela Ltda</h1>" in page
    assert '<div class="body">A assinatura foi cancelada<br></div>' in page  # the reader's language: no company lang
