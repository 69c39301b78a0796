"""The demo in a real browser (Debian's chromium driven by Playwright): a demo user who forgot the password
asks for a link, opens it from the demo mailbox, sets a new password and logs in to a dashboard the seeded
month filled. Screenshots go to tests/artifacts/ (not committed)."""

from __future__ import annotations

from playwright.async_api import async_playwright, expect

from backoffice.web.entry.demo_activity import Spine
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.effects.ports import RecordingPort, set_port
from backoffice.web.app import create_app
from tests.demo_support import seed_demo_for_test
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


async def test_a_forgotten_password_is_reset_from_the_demo_mailbox(database):
    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    await seed_demo_for_test(database)
    settings = database.settings.model_copy(update={"environment": "demo"})
    # Recorded whatever the backend (on PostgreSQL the embedded mode's recording fallback is off).
    previous = set_port(Channel.EMAIL, RecordingPort(Channel.EMAIL))
    async with LiveServer(create_app(settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            await page.goto(f"{server.url}/aurora/password/forgot")
            await page.get_by_label("E-mail").fill("bruno@aurora.example")
            await page.get_by_role("button", name="Enviar um link").click()
            with Spine(database, database.settings) as spine:  # the worker delivers (records) the e-mail
                await spine.settle()
            await page.get_by_role("link", name="Demonstração: o e-mail está na caixa de correio da demonstração").click()
            await expect(page.get_by_role("heading", name="Caixa de correio da demonstração")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-demo-mailbox-pt-BR.png", full_page=True)
            await page.locator("a[href*='/aurora/password/reset/']").first.click()
            await page.get_by_label("Nova senha (pelo menos 10 caracteres)").fill("uma-senha-nova-e-longa")
            await page.get_by_label("Repita a nova senha").fill("uma-senha-nova-e-longa")
            await page.get_by_role("button", name="Salvar a nova senha").click()
            await page.get_by_label("E-mail").fill("bruno@aurora.example")
            await page.get_by_label("Senha").fill("uma-senha-nova-e-longa")
            await page.get_by_role("button", name="Entrar").click()
            await expect(page.get_by_role("heading", name="Painel")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-demo-dashboard-pt-BR.png", full_page=True)
        finally:
            await browser.close()
            set_port(Channel.EMAIL, previous)
