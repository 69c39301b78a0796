"""The API reference works with no internet: every file it needs comes from the app itself.

The browser test blocks every request that is not to the app and checks the reference renders the
operations; the plain test checks the page names no outside address at all."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from backoffice.web.app import create_app
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


async def test_the_docs_page_names_no_outside_address(client):
    page = await client.get("/api/v1/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    addresses = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    assert addresses, "the page loads its viewer from somewhere"
    outside = [a for a in addresses if urlsplit(a).scheme not in ("", "data") or a.startswith("//")]
    assert outside == []
    script = next(a for a in addresses if a.endswith(".js"))
    served = await client.get(script)
    assert served.status_code == 200 and len(served.content) > 100_000


@pytest.mark.postgres_only
async def test_the_docs_page_renders_with_the_network_blocked_to_anything_but_the_app(database):
    from playwright.async_api import async_playwright

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            blocked: list[str] = []

            async def only_the_app(route):
                if route.request.url.startswith(server.url):
                    await route.continue_()
                else:
                    blocked.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_app)
            await page.goto(f"{server.url}/api/v1/schema")
            # Redoc renders each operation's summary in the side menu once the document is loaded.
            await page.get_by_text("staffCreateToken").or_(page.get_by_role("menuitem").first).first.wait_for(
                timeout=30_000)
            await page.wait_for_selector("h1", timeout=30_000)
            assert "Back office API" in await page.inner_text("h1")
            assert await page.locator("[role=menuitem], li[data-item-id]").count() > 20
            await page.screenshot(path=str(ARTIFACTS / "api-docs-offline.png"), full_page=False)
            assert blocked == []
        finally:
            await browser.close()
