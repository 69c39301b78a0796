"""People and feedback in a real browser (Debian's chromium driven by Playwright): a provider admin demobilises
an operator, handing their open routine run over, and the operator's console, open in another browser, loses
the company at its next request; a front-office user records feedback through the portal, staff answer it
from the inbox, and the answer shows on the portal's customer page. Screenshots of the people board, a
person's page, the feedback inbox and item, and the audit log, in pt-BR and English, go to tests/artifacts/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform.audit.service import Actor
from backoffice.tenants.staff.models import Staff
from backoffice.tenants.staff.service import assign_staff
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from backoffice.web.app import create_app
from tests.web.console.conftest import PASSWORD, make_member
from tests.web.portal.conftest import PASSWORD as PORTAL_PASSWORD
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


async def _sign_in(page, expect, url: str, member) -> None:
    await page.goto(f"{url}/staff/")
    await page.get_by_label("E-mail").fill(member.email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_label("Senha").press("Enter")
    await expect(page.get_by_role("heading", name="Código de verificação")).to_be_visible()
    await page.get_by_label("Código", exact=True).fill(member.totp.code())
    await page.get_by_label("Código", exact=True).press("Enter")
    await expect(page.get_by_role("heading", name="Visão geral")).to_be_visible()


@pytest.mark.postgres_only
async def test_demobilise_an_operator_and_answer_front_office_feedback_in_a_real_browser(database, tenants):
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    ana = await make_member(database, email="ana@provider.example", name="Ana Lima", role="provider_admin")
    otto = await make_member(database, email="otto@provider.example", name="Otto Operador",
                             role="provider_operator")
    async with database.system() as session:
        await assign_staff(session, staff=await session.get(Staff, otto.id),
                           tenant=await session.get(Tenant, tenants.a.id), acting=Actor.system("tests"),
                           reason="fechamento de novembro")
    async with database.provider(tenants.a.id) as session:
        session.add(RoutineRun(routine="billing", period="2026-11", trigger=Trigger.MANUAL, status=RunStatus.PARTIAL,
                               requested_by=otto.email, handled_by=otto.id, items_total=40, items_done=38,
                               items_failed=2, summary={}))
    alfa = tenants.a.id
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            admin = await (await browser.new_context(viewport={"width": 1366, "height": 860})).new_page()
            operator = await (await browser.new_context(viewport={"width": 1366, "height": 860})).new_page()
            front = await (await browser.new_context(viewport={"width": 1200, "height": 860})).new_page()

            # The operator works on Alfa in their own browser.
            await _sign_in(operator, expect, server.url, otto)
            answer = await operator.goto(f"{server.url}/staff/overview/tenants/{alfa}")
            assert answer.status == 200
            await operator.goto(f"{server.url}/staff/people")
            await expect(operator.locator("#board tbody tr")).to_have_count(1)
            await operator.screenshot(path=ARTIFACTS / "console-people-operator-pt-BR.png", full_page=True)

            # The front office records feedback on a customer, through the portal.
            await front.goto(f"{server.url}/alfa/")
            await front.get_by_label("E-mail").fill("member@alfa.example")
            await front.get_by_label("Senha").fill(PORTAL_PASSWORD)
            await front.get_by_label("Senha").press("Enter")
            await front.goto(f"{server.url}/alfa/customers/{tenants.a.customer_ids[0]}")
            await front.get_by_label("Tipo").select_option("feedback")
            await front.get_by_label("O que você soube pelo cliente?").fill(
                "A cliente achou a cobrança de novembro confusa; quer o detalhamento por unidade.")
            await front.get_by_role("button", name="Registrar na linha do tempo").click()
            await expect(front.get_by_text("quer o detalhamento por unidade")).to_be_visible()

            # The admin demobilises the operator from Alfa, handing the open run to herself.
            await _sign_in(admin, expect, server.url, ana)
            await admin.get_by_role("link", name="Pessoas").click()
            await expect(admin.get_by_role("heading", name="Pessoas")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-people-pt-BR.png", full_page=True)
            await admin.locator(f'a[href="/staff/people/{alfa}/{otto.id}"]').click()
            await expect(admin.get_by_role("heading", name="Otto Operador")).to_be_visible()
            await expect(admin.get_by_text("2026-11")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-people-member-pt-BR.png", full_page=True)
            await admin.get_by_label("Passar as rotinas em aberto para").select_option(str(ana.id))
            await admin.locator("#u-reason").fill("Otto vai para o cliente Beta")
            await admin.get_by_role("button", name="Desmobilizar").click()
            await expect(admin.get_by_text("Desmobilizado: o acesso à empresa terminou.")).to_be_visible()

            # The operator's open console loses Alfa at its next request, like a company that does not exist.
            answer = await operator.goto(f"{server.url}/staff/overview/tenants/{alfa}")
            assert answer.status == 404
            await expect(operator.get_by_role("heading", name="Não encontrado")).to_be_visible()
            async with database.system() as session:
                [run] = (await session.execute(select(RoutineRun))).scalars().all()
            assert run.handled_by == ana.id

            # Staff answer the feedback from the inbox.
            await admin.get_by_role("link", name="Feedback", exact=True).click()
            await expect(admin.get_by_role("heading", name="Feedback do front office")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-feedback-pt-BR.png", full_page=True)
            await admin.get_by_role("link", name="A cliente achou a cobrança de novembro confusa").click()
            await admin.get_by_label("Sua resposta (o front office a vê na página do cliente)").fill(
                "Enviamos hoje o detalhamento por unidade; a partir de dezembro ele vai junto com o boleto.")
            await admin.get_by_role("button", name="Responder").click()
            await expect(admin.get_by_text("Resposta registrada na linha do tempo do cliente.")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-feedback-item-pt-BR.png", full_page=True)

            # The front office sees the answer on the customer's page.
            await front.reload()
            await expect(front.get_by_text("a partir de dezembro ele vai junto com o boleto")).to_be_visible()
            await expect(front.locator(".entry-reply").first).to_contain_text("resposta do back office")
            await expect(front.locator(".entry-reply").first).to_contain_text("Ana Lima")
            await front.screenshot(path=ARTIFACTS / "portal-customer-staff-reply-pt-BR.png", full_page=True)
            await front.get_by_label("Idioma").select_option("en")
            await front.get_by_role("button", name="Trocar").click()
            await expect(front.locator(".entry-reply").first).to_contain_text("back-office reply")
            await expect(front.locator(".entry-reply").first).to_contain_text("Back office")
            await front.screenshot(path=ARTIFACTS / "portal-customer-staff-reply-en.png", full_page=True)

            await admin.get_by_role("link", name="Auditoria").click()
            await admin.get_by_label("Ação").fill("staff.")
            await admin.get_by_label("Ação").press("Enter")
            await expect(admin.locator("#audit tbody")).to_contain_text("staff.unassigned")
            await expect(admin.locator("#audit tbody")).to_contain_text("Otto vai para o cliente Beta")
            await admin.screenshot(path=ARTIFACTS / "console-audit-pt-BR.png", full_page=True)

            # The same pages in English.
            await admin.get_by_label("Idioma").select_option("en")
            await admin.get_by_role("button", name="Trocar").click()
            await expect(admin.get_by_role("heading", name="Audit log")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-audit-en.png", full_page=True)
            await admin.get_by_role("link", name="People").click()
            await expect(admin.get_by_role("heading", name="People")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-people-en.png", full_page=True)
            await admin.goto(f"{server.url}/staff/people/{alfa}/{ana.id}")
            await expect(admin.get_by_role("heading", name="Hand over open work")).to_be_visible()
            await expect(admin.locator("#no-receivers")).to_be_visible()  # nobody else serves Alfa now
            await admin.screenshot(path=ARTIFACTS / "console-people-member-en.png", full_page=True)
            await admin.get_by_role("link", name="Feedback").first.click()
            await expect(admin.get_by_role("heading", name="Feedback from the front office")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-feedback-en.png", full_page=True)
            await admin.get_by_role("link", name="A cliente achou a cobrança de novembro confusa").click()
            await expect(admin.get_by_role("heading", name="Replies")).to_be_visible()
            await admin.screenshot(path=ARTIFACTS / "console-feedback-item-en.png", full_page=True)
        finally:
            await browser.close()
