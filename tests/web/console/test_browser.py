"""The staff console in a real browser (Debian's chromium driven by Playwright): sign in with a password, enrol
TOTP by reading the key from the page, keep the recovery codes, sign out, sign in again with a fresh code and
work the overview with the keyboard; the same first sign-in in English. Screenshots of the sign-in,
enrolment, recovery codes and overview pages, in pt-BR and English, go to tests/artifacts/ (not committed)."""

from __future__ import annotations

import pytest

from backoffice.web.app import create_app
from tests.web.console.conftest import PASSWORD, Totp, make_member
from tests.web.console.test_overview import _seed_both
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


async def _enrol(page, expect, heading: str, code_label: str, confirm: str) -> Totp:
    await expect(page.get_by_role("heading", name=heading)).to_be_visible()
    await expect(page.locator(".qr svg")).to_be_visible()
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    totp = Totp(secret)
    await page.get_by_label(code_label).fill(totp.code())
    return totp


@pytest.mark.postgres_only
async def test_first_sign_in_enrolment_and_the_overview_in_a_real_browser(database, tenants):
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    ana = await make_member(database, email="ana@provider.example", name="Ana Lima", role="provider_admin",
                            enrol=False)
    bob = await make_member(database, email="bob@provider.example", name="Bob Stone", role="provider_admin",
                            enrol=False)
    await _seed_both(database, tenants)
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 800})
            await page.goto(f"{server.url}/staff/")
            await expect(page.get_by_role("heading", name="Console da equipe")).to_be_visible()
            await page.get_by_label("E-mail").fill(ana.email)
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.screenshot(path=ARTIFACTS / "console-login-pt-BR.png", full_page=True)
            await page.get_by_label("Senha").press("Enter")

            await expect(page.get_by_role("heading", name="Configure seu autenticador")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "console-enrol-pt-BR.png", full_page=True)
            totp = await _enrol(page, expect, "Configure seu autenticador", "Código do aplicativo", "")
            await page.get_by_role("button", name="Confirmar e entrar").click()
            await expect(page.get_by_role("heading", name="Seus códigos de recuperação")).to_be_visible()
            assert await page.locator("#recovery-codes li").count() == 10
            await page.screenshot(path=ARTIFACTS / "console-recovery-codes-pt-BR.png", full_page=True)
            await page.get_by_role("link", name="Já guardei — abrir o console").click()

            await expect(page.get_by_role("heading", name="Visão geral")).to_be_visible()
            rows = page.locator("#overview-rows tr")
            await expect(rows).to_have_count(2)
            await expect(rows.first).to_have_attribute("data-tenant", "alfa")  # the worst first
            await page.screenshot(path=ARTIFACTS / "console-overview-pt-BR.png", full_page=True)
            # The keyboard: "/" goes to the search, Enter filters.
            await page.locator("body").press("/")
            await expect(page.locator("#tenant-search")).to_be_focused()
            await page.keyboard.type("bet")
            await page.keyboard.press("Enter")
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_have_attribute("data-tenant", "beta")

            await page.get_by_role("button", name="Sair").click()
            await expect(page.get_by_role("heading", name="Console da equipe")).to_be_visible()
            await page.goto(f"{server.url}/staff/")
            await page.get_by_label("E-mail").fill(ana.email)
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.get_by_role("button", name="Continuar").click()
            await expect(page.get_by_role("heading", name="Código de verificação")).to_be_visible()
            await page.get_by_label("Código", exact=True).fill(totp.code())
            await page.screenshot(path=ARTIFACTS / "console-code-pt-BR.png", full_page=True)
            await page.get_by_role("button", name="Entrar").click()
            await expect(page.get_by_role("heading", name="Visão geral")).to_be_visible()
            await page.get_by_role("link", name="Detalhes de Alfa").click()
            await expect(page.get_by_role("heading", name="Últimos 14 dias")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "console-tenant-line-pt-BR.png", full_page=True)
            await page.get_by_role("button", name="Sair").click()

            # The same first sign-in in English, chosen on the sign-in page.
            await page.get_by_label("Idioma").select_option("en")
            await page.get_by_role("button", name="Trocar").click()
            await expect(page.get_by_role("heading", name="Staff console")).to_be_visible()
            await page.get_by_label("E-mail").fill(bob.email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.screenshot(path=ARTIFACTS / "console-login-en.png", full_page=True)
            await page.get_by_role("button", name="Continue").click()
            await expect(page.get_by_role("heading", name="Set up your authenticator")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "console-enrol-en.png", full_page=True)
            await _enrol(page, expect, "Set up your authenticator", "Code from the app", "")
            await page.get_by_role("button", name="Confirm and sign in").click()
            await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "console-recovery-codes-en.png", full_page=True)
            await page.get_by_role("link", name="I have saved them — open the console").click()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            await expect(page.locator("#overview-rows tr")).to_have_count(2)
            await page.screenshot(path=ARTIFACTS / "console-overview-en.png", full_page=True)
        finally:
            await browser.close()
