"""No dead ends: the start page, and error pages a person can read (their language, the company's brand, a
way back), while programs keep problem+json."""

from __future__ import annotations

import re

import pytest

from babel.messages.pofile import read_po
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from backoffice.web.app import create_app
from backoffice.web.error_pages import SUSPENDED, TROUBLES, UNKNOWN_COMPANY
from backoffice.web.errors import EXCEPTION_HANDLERS
from backoffice.web.portal.render import LOCALE_DIR

HTML = {"accept": "text/html,application/xhtml+xml", "accept-language": "pt-BR,pt;q=0.9"}
HTML_EN = {"accept": "text/html", "accept-language": "en-GB,en;q=0.8"}
JSON = {"accept": "application/json"}


def _client(database) -> AsyncTestClient:
    return AsyncTestClient(app=create_app(database.settings))


async def test_the_start_page_leads_to_a_companys_portal_and_to_the_staff_console(database, tenants):
    async with _client(database) as client:
        start = await client.get("/", headers=HTML)
        english = await client.get("/", headers=HTML_EN)
        chosen = await client.get("/?company=Alfa", headers=HTML, follow_redirects=False)
        bad = await client.get("/?company=alfa%3Cscript%3E", headers=HTML)
    assert start.status_code == 200 and 'lang="pt-BR"' in start.text
    assert "Onde você quer entrar?" in start.text and 'href="/staff/"' in start.text
    assert english.status_code == 200 and "Where do you want to sign in?" in english.text
    assert "Onde" not in english.text
    assert chosen.status_code == 303 and chosen.headers["location"] == "/alfa/"
    assert bad.status_code == 400 and "letras minúsculas" in bad.text and "<script>" not in bad.text


async def test_an_unknown_company_is_a_page_with_a_way_back_for_people_and_a_problem_for_programs(database, tenants):
    async with _client(database) as client:
        page = await client.get("/gama/", headers=HTML)
        english = await client.get("/gama/", headers=HTML_EN)
        problem = await client.get("/gama/", headers=JSON)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Empresa não encontrada" in page.text and 'href="/"' in page.text and 'name="company"' in page.text
    assert english.status_code == 404 and "Company not found" in english.text and "Empresa" not in english.text
    assert problem.status_code == 404 and problem.headers["content-type"].startswith("application/problem+json")


async def test_a_missing_page_inside_a_portal_wears_the_company_brand_and_leads_back_to_it(database, tenants):
    async with _client(database) as client:
        page = await client.get(f"/alfa/customers/{tenants.b.customer_ids[0]}", headers=HTML, follow_redirects=False)
    # Not logged in: the portal asks for a log-in first; after it, another company's customer is a 404 page.
    assert page.status_code in (303, 302)
    from tests.web.portal.conftest import Browser

    async with _client(database) as client:
        browser = Browser(client)
        assert (await browser.login("/alfa", "admin@alfa.example")).status_code == 303
        foreign = await browser.get(f"/alfa/customers/{tenants.b.customer_ids[0]}")
        unknown_route = await browser.get("/alfa/no-such-page")
    for response in (foreign, unknown_route):
        assert response.status_code == 404 and "Página não encontrada" in response.text
        assert "Alfa" in response.text and 'href="/alfa/"' in response.text and "Beta" not in response.text


async def test_the_api_and_the_hooks_keep_problem_json_even_for_a_browser(database, tenants):
    async with _client(database) as client:
        api = await client.get("/api/v1/customers", headers=HTML)
        missing = await client.get("/api/v1/no-such", headers=HTML)
    assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")


async def test_an_unexpected_error_is_a_page_that_says_so_and_a_problem_for_programs():
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, with a secret: hunter2")

    app = Litestar([boom], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as client:
        page = await client.get("/boom", headers=HTML)
        english = await client.get("/boom", headers=HTML_EN)
        problem = await client.get("/boom", headers=JSON)
    assert page.status_code == 500 and "Algo deu errado do nosso lado" in page.text and 'href="/"' in page.text
    assert english.status_code == 500 and "Something went wrong on our side" in english.text
    assert problem.json() == {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    assert all("hunter2" not in r.text for r in (page, english, problem))


def test_every_error_page_text_has_its_portuguese():
    with (LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        translated = {m.id for m in read_po(source) if m.id and m.string}
    texts = {t for trouble in [*TROUBLES.values(), UNKNOWN_COMPANY, SUSPENDED] for t in (trouble.title, trouble.message)}
    source = (LOCALE_DIR.parent / "home.py").read_text()
    texts |= set(re.findall(r'problem = "([^"]+)"', source))
    assert texts and not texts - translated, sorted(texts - translated)


@pytest.mark.postgres_only
async def test_the_start_page_and_error_pages_in_a_real_browser(database, tenants):
    from playwright.async_api import async_playwright, expect

    from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    async with LiveServer(create_app(database.settings)) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            for locale, heading in (("pt-BR", "Onde você quer entrar?"), ("en-US", "Where do you want to sign in?")):
                context = await browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
                page = await context.new_page()
                await page.goto(f"{server.url}/")
                await expect(page.get_by_role("heading", name=heading)).to_be_visible()
                await page.screenshot(path=ARTIFACTS / f"start-page-{locale}.png", full_page=True)
                await page.goto(f"{server.url}/gama/")
                await page.screenshot(path=ARTIFACTS / f"error-unknown-company-{locale}.png", full_page=True)
                await page.goto(f"{server.url}/alfa/no-such-page")
                await page.screenshot(path=ARTIFACTS / f"error-not-found-branded-{locale}.png", full_page=True)
                await context.close()
            # From the start page to a company's log-in, with the keyboard.
            page = await browser.new_page()
            await page.goto(f"{server.url}/")
            await page.locator("#company").fill("alfa")
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(f"{server.url}/alfa/")
        finally:
            await browser.close()
