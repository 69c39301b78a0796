"""The front office's day on real cases from the running spine: the inbox with the whole case, mark read,
the onboarding task ticked and completed, the customer's timeline with a note the back office sees, the
dashboard's figures and chart; in pt-BR by default and in English on request."""

from __future__ import annotations

from datetime import date

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.billing.models import Charge, ChargeStatus
from backoffice.tenants.customers.models import Lifecycle
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.tasks.models import Task, TaskStatus
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.web.app import create_app
from tests.tenants.conftest import new_customer, spine  # noqa: F401  (the running spine fixture)
from tests.web.portal.conftest import Browser

PLAN = {"code": "pro", "name": "Plano Pro", "price_cents": 19990}


def _cleared(customer_id) -> dict:
    return {
        "type": "payment.cleared", "source": "asaas", "external_id": "pay-portal-1", "customer": {"id": str(customer_id)},
        "data": {
            "charge": {"external_id": "pay_1", "amount_cents": 19990, "due_date": "2026-11-05",
                       "description": "Mensalidade Plano Pro", "payment_url": "https://pay.example/i/abc"},
            "payment": {"amount_cents": 19990, "paid_at": "2026-11-02T14:00:00+00:00", "method": "pix"},
            "documents": [{"kind": "boleto", "number": "34191.79001", "url": "https://pay.example/b/abc.pdf"}],
            "plan": PLAN,
        },
    }


async def test_a_front_office_day_on_a_real_case(spine, database, tenants):  # noqa: F811
    a = tenants.a
    customer_id = await new_customer(database, a.id, a.member_id, name="Padaria Estrela Ltda",
                                     tax_id="04.252.011/0001-10")
    await spine.ingest(a.id, _cleared(customer_id))
    await spine.settle()

    async with AsyncTestClient(app=create_app(database.settings)) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
        inbox = await browser.get("/alfa/inbox")
        assert inbox.status_code == 200 and "Padaria Estrela Ltda" in inbox.text
        async with database.tenant(a.id) as session:
            [notification] = (await session.execute(select(Notification))).scalars().all()
            [task] = (await session.execute(select(Task))).scalars().all()
        detail = await browser.get(f"/alfa/inbox/{notification.id}")
        assert detail.status_code == 200
        for expected in ("Padaria Estrela Ltda", "04.252.011/0001-10", "Plano Pro", "R$ 199,90", "05/11/2026",
                         'href="https://pay.example/i/abc"', 'href="https://pay.example/b/abc.pdf"', "34191.79001"):
            assert expected in detail.text, expected
        assert (await browser.get("/alfa/inbox/poll")).json()["unread"] == 1
        read = await browser.post_form(f"/alfa/inbox/{notification.id}", f"/alfa/inbox/{notification.id}/read", {})
        assert read.status_code == 303
        assert (await browser.get("/alfa/inbox/poll")).json() == {"unread": 0, "latest": []}

        # The onboarding task: tick an item, then complete it; the items left open are named and confirmed.
        # Its title is the platform's, kept as a message: the English on the row, Portuguese on every pt-BR page.
        assert task.title == "Onboarding: Padaria Estrela Ltda"
        assert task.message["title"]["id"] == "Onboarding: {customer}"
        for where in ("/alfa/tasks", "/alfa/dashboard", f"/alfa/customers/{customer_id}", f"/alfa/tasks/{task.id}"):
            listed = (await browser.get(where)).text
            assert "Implantação: Padaria Estrela Ltda" in listed and "Onboarding:" not in listed, where
        page = await browser.get(f"/alfa/tasks/{task.id}")
        assert page.status_code == 200 and task.checklist[0]["item"] in page.text
        tick = await browser.post_form(f"/alfa/tasks/{task.id}", f"/alfa/tasks/{task.id}/checklist/0", {"done": "1"})
        assert tick.status_code == 303
        assert len(task.checklist) > 1
        asked = await browser.post_form(f"/alfa/tasks/{task.id}", f"/alfa/tasks/{task.id}/complete", {})
        assert asked.status_code == 409 and task.checklist[1]["item"] in asked.text
        done = await browser.post_form(f"/alfa/tasks/{task.id}", f"/alfa/tasks/{task.id}/complete",
                                       {"unticked_confirmed": "1"})
        assert done.status_code == 303
        assert "Concluída" in (await browser.get(f"/alfa/tasks/{task.id}")).text

        # The timeline shows the effects with their reasons and the transition; a note joins it.
        timeline = await browser.get(f"/alfa/customers/{customer_id}")
        assert timeline.status_code == 200 and "ativo" in timeline.text and "Motivo" in timeline.text
        empty = await browser.post_form(f"/alfa/customers/{customer_id}", f"/alfa/customers/{customer_id}/notes",
                                        {"text": "   "})
        assert empty.status_code == 422 and "O que você soube pelo cliente?: escreva o texto" in empty.text
        note = await browser.post_form(f"/alfa/customers/{customer_id}", f"/alfa/customers/{customer_id}/notes",
                                       {"text": "Cliente quer <b>treinamento</b> na sexta", "label": "feedback"})
        assert note.status_code == 303
        after = await browser.get(f"/alfa/customers/{customer_id}")
        assert "Cliente quer &lt;b&gt;treinamento&lt;/b&gt; na sexta" in after.text

        # Search and filter by stage.
        found = await browser.get("/alfa/customers?q=estrela&stage=active")
        assert "Padaria Estrela Ltda" in found.text and "Casa do Pão" not in found.text
        by_tax_id = await browser.get("/alfa/customers?q=04252011")
        assert "Padaria Estrela Ltda" in by_tax_id.text

        # Under English the same task reads in English (its description stays the company's text, in its language).
        assert (await browser.post_form("/alfa/tasks", "/alfa/locale", {"locale": "en", "next": "/tasks"})
                ).status_code == 303
        listed = (await browser.get("/alfa/tasks?status=all")).text
        assert "Onboarding: Padaria Estrela Ltda" in listed and "Implantação" not in listed
        assert "<h1>Onboarding: Padaria Estrela Ltda</h1>" in (await browser.get(f"/alfa/tasks/{task.id}")).text

    async with database.tenant(a.id) as session:
        task = await session.get(Task, (a.id, task.id))
        [entry] = (await session.execute(select(TimelineEntry).where(TimelineEntry.kind == "note"))).scalars().all()
        actions = set((await session.execute(select(AuditEntry.action))).scalars())
    assert task.status == TaskStatus.DONE and task.checklist[0]["done"] is True
    assert entry.author_id == a.member_id and entry.ref["label"] == "feedback"  # what the back office reads
    assert {"task.checklist_ticked", "task.completed", "timeline.note_added", "user.logged_in"} <= actions


async def test_dashboard_figures_chart_and_english(browser: Browser, tenants, database):
    a = tenants.a
    grace = await new_customer(database, a.id, a.admin_id, name="Em Carência", tax_id="390.533.447-05",
                               lifecycle=Lifecycle.IN_GRACE)
    today = date.today()
    async with database.tenant(a.id) as session:
        for days, cents in ((10, 10000), (45, 20000), (200, 5000)):
            session.add(Charge(customer_id=grace, amount_cents=cents, due_date=date.fromordinal(today.toordinal() - days),
                               status=ChargeStatus.OVERDUE, source="asaas", external_id=f"c{days}"))
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    page = await browser.get("/alfa/dashboard")
    assert page.status_code == 200
    assert "<svg" in page.text and "chart-bar" in page.text and "<script src=\"http" not in page.text
    for expected in ("R$ 100,00", "R$ 200,00", "R$ 50,00", "R$ 350,00", "clientes em carência"):
        assert expected in page.text, expected
    switched = await browser.post_form("/alfa/dashboard", "/alfa/locale", {"locale": "en", "next": "/dashboard"})
    assert switched.status_code == 303 and switched.headers["location"] == "/alfa/dashboard"
    english = await browser.get("/alfa/dashboard")
    assert 'lang="en"' in english.text and "customers in grace" in english.text and "R$350.00" in english.text


async def test_an_anonymous_visitor_picks_english_and_keeps_it_after_log_in(browser: Browser, tenants):
    switched = await browser.post_form("/alfa/login", "/alfa/locale", {"locale": "en", "next": "/login"})
    assert switched.status_code == 303
    login_page = await browser.get("/alfa/login")
    assert 'lang="en"' in login_page.text and "Forgot your password?" in login_page.text
    assert 'lang="pt-BR"' in (await browser.get("/beta/login")).text  # only for this tenant
    assert (await browser.get("/alfa/dashboard")).status_code == 303  # a language is not a log-in
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    assert 'lang="en"' in (await browser.get("/alfa/dashboard")).text


async def test_everyones_tasks_filter_shows_the_other_peoples_tasks(browser: Browser, tenants, database):
    from tests.web.portal.conftest import add_case

    a = tenants.a
    await add_case(database, a.id, a.member_id, a.customer_ids[0], title="Do membro")
    assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
    mine = await browser.get("/alfa/tasks")
    assert "Tarefa Do membro" not in mine.text
    everyone = await browser.get("/alfa/tasks?whose=all")
    assert everyone.status_code == 200 and "Tarefa Do membro" in everyone.text
    assert '<option value="all" selected' in everyone.text


async def test_completing_a_task_with_unticked_items_asks_first(browser: Browser, tenants, database):
    from tests.web.portal.conftest import add_case

    a = tenants.a
    _, task_id = await add_case(database, a.id, a.member_id, a.customer_ids[0], title="Checklist aberto")
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    page = f"/alfa/tasks/{task_id}"
    asked = await browser.post_form(page, f"{page}/complete", {})
    assert asked.status_code == 409
    assert "1 item do checklist não foi marcado" in asked.text and "Ligar" in asked.text
    assert "Concluir mesmo assim" in asked.text
    async with database.tenant(a.id) as session:
        assert (await session.get(Task, (a.id, task_id))).status == TaskStatus.OPEN
    done = await browser.post_form(page, f"{page}/complete", {"unticked_confirmed": "1"})
    assert done.status_code == 303
    async with database.tenant(a.id) as session:
        assert (await session.get(Task, (a.id, task_id))).status == TaskStatus.DONE
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "task.completed"))).scalar_one()
        assert entry.detail["unticked_items"] == ["Ligar"]


async def test_the_customer_page_is_armed_with_the_customers_file(browser: Browser, tenants, database):
    from datetime import datetime, timedelta, timezone

    from backoffice.tenants.billing.models import Contract, ContractStatus, Payment
    from backoffice.tenants.dunning.models import CaseStatus, DunningCase
    from backoffice.tenants.fiscal.models import FiscalDocument, FiscalStatus
    from backoffice.tenants.signatures.models import Signature, SignatureStatus

    a = tenants.a
    customer_id = a.customer_ids[0]
    today = date.today()
    now = datetime.now(timezone.utc)
    async with database.tenant(a.id) as session:
        contract = Contract(customer_id=customer_id, plan_code="pro", plan_name="Plano Pro", price_cents=19990,
                            status=ContractStatus.ACTIVE, started_at=now - timedelta(days=90))
        session.add(contract)
        await session.flush()
        late = Charge(customer_id=customer_id, contract_id=contract.id, amount_cents=19990, due_date=today - timedelta(days=3),
                      description="Mensalidade de novembro", status=ChargeStatus.OVERDUE, source="asaas",
                      external_id="pay_late", payment_url="https://pay.example/i/late")
        paid = Charge(customer_id=customer_id, contract_id=contract.id, amount_cents=19990, due_date=today - timedelta(days=33),
                      description="Mensalidade de outubro", status=ChargeStatus.PAID, source="asaas", external_id="pay_ok")
        session.add_all([late, paid])
        await session.flush()
        session.add_all([
            Payment(customer_id=customer_id, charge_id=paid.id, amount_cents=19990, method="pix",
                    paid_at=now - timedelta(days=32), source="asaas", external_id="pay_ok"),
            FiscalDocument(customer_id=customer_id, charge_id=paid.id, number="2026/118", status=FiscalStatus.AUTHORIZED,
                           pdf_url="https://nota.example/118.pdf", source="focusnfe", external_id="ref-118"),
            Signature(customer_id=customer_id, contract_id=contract.id, status=SignatureStatus.SIGNED,
                      document_url="https://sign.example/env-1.pdf", source="clicksign", external_id="env-1",
                      signed_at=now - timedelta(days=91)),
            DunningCase(customer_id=customer_id, charge_id=late.id, policy_version=1, status=CaseStatus.GRACE,
                        deadline_at=now + timedelta(days=2)),
        ])
    await timeline_note(database, a, customer_id)
    assert (await browser.login("/alfa", "member@alfa.example")).status_code == 303
    page = await browser.get(f"/alfa/customers/{customer_id}")
    assert page.status_code == 200
    for expected in ("Plano Pro", "R$ 199,90 por mês", "saldo em aberto", "em atraso", "Mensalidade de novembro",
                     "paga", "Pix", "Nota fiscal de serviço (NFS-e) 2026/118",
                     "https://nota.example/118.pdf", "Contrato assinado", "https://sign.example/env-1.pdf",
                     "Inadimplência: em carência até", "https://pay.example/i/late", "Ligou pedindo desconto"):
        assert expected in page.text, expected
    notes_only = await browser.get(f"/alfa/customers/{customer_id}?show=notes")
    assert "Ligou pedindo desconto" in notes_only.text and 'aria-current="page">Anotações' in notes_only.text
    events_only = await browser.get(f"/alfa/customers/{customer_id}?show=events")
    assert "Ligou pedindo desconto" not in events_only.text
    other = await browser.get(f"/alfa/customers/{tenants.b.customer_ids[0]}")
    assert other.status_code == 404 and "Plano Pro" not in other.text


async def timeline_note(database, tenant, customer_id) -> None:
    from backoffice.platform.audit.service import Actor
    from backoffice.tenants.timeline.service import add_note

    async with database.tenant(tenant.id) as session:
        await add_note(session, customer_id, text="Ligou pedindo desconto", author_id=tenant.member_id, label="feedback",
                       acting=Actor(type="tenant_user", label="member@alfa.example", id=str(tenant.member_id)))
