"""The portal in a real browser (Debian's chromium driven by Playwright): log in with the keyboard, read a
case in the inbox, add a note on the customer's timeline, tick and complete a task, and (as the tenant
admin) create an API key. Screenshots of the main pages go to tests/artifacts/ (not committed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import uvicorn

from backoffice.web.app import create_app
from tests.web.portal.conftest import PASSWORD, add_case

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def _chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (CI runs as root); in CI a failure fails."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:  # stale package lists
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            subprocess.run(install, capture_output=True, timeout=600)
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing and could not be installed with apt-get"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CHROMIUM


class LiveServer:
    def __init__(self, app) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LiveServer:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError("the portal server did not start")

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 10)


@pytest.mark.postgres_only
async def test_a_day_in_the_portal_in_a_real_browser(database, tenants):
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    a = tenants.a
    notification_id, task_id = await add_case(database, a.id, a.member_id, a.customer_ids[0], title="Casa do Pão começou")
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            await page.goto(f"{server.url}/alfa/")
            await page.get_by_label("E-mail").fill("member@alfa.example")
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.get_by_label("Senha").press("Enter")  # the keyboard submits the form
            await expect(page.get_by_role("heading", name="Painel")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-dashboard.png", full_page=True)

            await page.get_by_role("link", name="Caixa de entrada").click()
            await page.get_by_role("link", name="Casa do Pão começou").click()
            await expect(page.get_by_role("heading", name="Casa do Pão começou")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-notification.png", full_page=True)
            await page.get_by_role("button", name="Marcar como lida").click()
            await expect(page.get_by_text("Nenhuma notificação.")).to_have_count(0)

            await page.get_by_role("link", name="Clientes").click()
            await page.get_by_role("link", name="Casa do Pão").click()
            await page.get_by_label("O que você soube pelo cliente?").fill("Pediu treinamento para a equipe nova")
            await page.get_by_role("button", name="Registrar na linha do tempo").click()
            await expect(page.get_by_text("Pediu treinamento para a equipe nova")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-customer-timeline.png", full_page=True)

            await page.goto(f"{server.url}/alfa/tasks/{task_id}")
            await page.get_by_role("button", name="Ligar").click()
            await expect(page.get_by_role("button", name="Ligar")).to_have_attribute("aria-pressed", "true")
            await page.get_by_role("button", name="Concluir a tarefa").click()
            await expect(page.get_by_text("Concluída")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "portal-task.png", full_page=True)
            await page.get_by_role("button", name="Sair").click()

            await page.get_by_label("E-mail").fill("admin@alfa.example")
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.get_by_role("button", name="Entrar").click()
            await page.get_by_role("link", name="Administração").click()
            await page.get_by_role("link", name="Chaves de API").click()
            await page.get_by_label("Nome", exact=True).fill("ERP da Alfa")
            for scope in await page.locator("input[name=scopes]").all():  # the widest row: every scope
                await scope.check()
            await page.get_by_role("button", name="Criar chave").click()
            secret = await page.locator("#new-secret").input_value()
            assert secret.startswith("bo_")
            await page.set_viewport_size({"width": 1280, "height": 800})
            # At 1280 px nothing spills out of its card: no card scrolls sideways, the page neither.
            spill = await page.evaluate("""() => [...document.querySelectorAll('.card')]
                .filter(card => card.scrollWidth > card.clientWidth + 1).map(card => card.innerText.slice(0, 40))""")
            assert spill == []
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await page.screenshot(path=ARTIFACTS / "portal-api-keys.png", full_page=True)

            phone = await browser.new_page(viewport={"width": 390, "height": 800})
            await phone.goto(f"{server.url}/beta/login")
            await phone.screenshot(path=ARTIFACTS / "portal-login-phone.png", full_page=True)
        finally:
            await browser.close()
    assert notification_id
