"""In a real browser (Debian's chromium, Playwright): the inbox badge moves when the back office writes a
notification, without a reload (the page's event stream); the preferences page in pt-BR and in English.
Screenshots go to tests/artifacts/."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backoffice.platform import clock
from backoffice.platform import live as bus_module
from backoffice.tenants.effects.service import EffectRows
from backoffice.tenants.notifications.live import announce_run
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.routines.models import RoutineRun, RunStatus, Trigger
from backoffice.web.app import create_app
from tests.web.portal.conftest import PASSWORD
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


async def _notify(database, tenant_id, recipient_id, title: str) -> None:
    rows = EffectRows(tenant_id)
    rows.add(Notification, effect_key=f"browser:{uuid.uuid4()}", recipient_id=recipient_id, kind="customer.started",
             title=title, body="Corpo", detail={}, customer_id=None, event_id=None, read_at=None, created_at=clock.now())
    async with database.tenant(tenant_id) as session:
        await rows.write(session)
    await bus_module.drain()


@pytest.mark.postgres_only
async def test_the_badge_moves_without_a_reload_and_preferences_read_in_both_languages(database, tenants):
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    a = tenants.a
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})
            polls: list[str] = []
            page.on("request", lambda request: polls.append(request.url) if "/inbox/poll" in request.url else None)
            await page.goto(f"{server.url}/alfa/login")
            await page.get_by_label("E-mail").fill("member@alfa.example")
            await page.get_by_label("Senha").fill(PASSWORD)
            await page.get_by_label("Senha").press("Enter")
            await expect(page.get_by_role("heading", name="Painel")).to_be_visible()
            badge = page.locator("#unread-count")
            await expect(badge).to_be_hidden()
            hub = bus_module.bus_for(database.settings).hub
            for _ in range(100):  # the page's stream is open on the server
                if hub.connections():
                    break
                await page.wait_for_timeout(50)
            assert hub.connections() == 1
            await page.evaluate("window.__same_page = 'yes'")
            await _notify(database, a.id, a.member_id, "Cliente novo: Padaria Aurora")
            await expect(badge).to_have_text("1", timeout=5000)
            await expect(page.locator("#live")).to_have_text("Cliente novo: Padaria Aurora")
            await _notify(database, a.id, a.member_id, "Cliente bloqueado: Maria Silva")
            await expect(badge).to_have_text("2", timeout=5000)
            assert await page.evaluate("window.__same_page") == "yes"  # no reload happened
            # Pushed, not polled: one poll at load and one per event, not one every 15 s.
            assert len(polls) <= 3, polls
            await page.screenshot(path=ARTIFACTS / "portal-live-badge.png", full_page=True)

            # A run under way: its page's card follows the run's progress as the workers push it.
            async with database.tenant(a.id) as session:
                run = RoutineRun(routine="billing", period="2026-12", trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
                                 requested_by="ana@provider.example", items_total=40, items_done=12, items_failed=0,
                                 summary={})
                session.add(run)
                await session.flush()
                run_id = run.id
            await page.goto(f"{server.url}/alfa/routines/runs/{run_id}")
            await page.evaluate("window.__same_page = 'run'")
            progress = page.locator(f'[data-run="{run_id}"] progress')
            await expect(progress).to_have_attribute("value", "12")
            async with database.tenant(a.id) as session:
                (await session.get(RoutineRun, (a.id, run_id))).items_done = 30
                announce_run(session, a.id, run_id, settled=30, total=40, finished=False)
            await bus_module.drain()
            await expect(progress).to_have_attribute("value", "30", timeout=5000)
            assert await page.evaluate("window.__same_page") == "run"  # the card changed, the page stayed
            await page.screenshot(path=ARTIFACTS / "portal-live-run.png", full_page=True)

            await page.get_by_role("link", name="Preferências").click()
            await expect(page.get_by_role("heading", name="Preferências de notificação")).to_be_visible()
            await page.get_by_label("Um cliente começou: E-mail").check()
            await page.get_by_label("Toda manhã, um e-mail com as notificações do dia anterior").check()
            await page.get_by_role("button", name="Salvar preferências").click()
            await expect(page.get_by_text("Preferências salvas.")).to_be_visible()
            await expect(page.get_by_label("Um cliente começou: E-mail")).to_be_checked()
            await page.screenshot(path=ARTIFACTS / "portal-preferences-pt-BR.png", full_page=True)

            await page.get_by_label("Idioma", exact=True).select_option("en")
            await page.get_by_role("button", name="Trocar").click()
            await expect(page.get_by_role("heading", name="Notification preferences")).to_be_visible()
            await expect(page.get_by_label("A customer started: E-mail")).to_be_checked()
            body = await page.locator("main").inner_text()
            assert "Preferências" not in body and "Resumo" not in body
            await page.screenshot(path=ARTIFACTS / "portal-preferences-en.png", full_page=True)

            # Where the stream is refused (an old proxy, the server away), the page polls every 15 s instead.
            polls.clear()
            await page.route("**/alfa/live", lambda route: route.fulfill(status=503, body=""))
            await page.clock.install()
            await page.goto(f"{server.url}/alfa/dashboard")
            await expect(page.locator("#unread-count")).to_have_text("2")
            first = len(polls)
            await page.wait_for_timeout(500)  # the refused stream's error event has come
            await page.clock.run_for(16_000)
            for _ in range(50):
                if len(polls) > first:
                    break
                await asyncio.sleep(0.1)
            assert len(polls) > first, "no poll after the stream was refused"
        finally:
            await browser.close()
